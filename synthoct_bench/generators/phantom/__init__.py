"""The procedural OCT phantom, the CPU default: ``generator.py`` maps z to the
phantom's named factors and renders them (``render.py``, numba kernels)."""

from synthoct_bench.lazy import lazy_exports

_LAZY = {
    "PhantomGenerator": "synthoct_bench.generators.phantom.generator:PhantomGenerator",
    "PARAMETER_SPECS": "synthoct_bench.generators.phantom.generator:PARAMETER_SPECS",
    "PHANTOM_VERSION": "synthoct_bench.generators.phantom.generator:PHANTOM_VERSION",
}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
