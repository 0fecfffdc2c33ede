"""Which optional install (``pip install 'synthoct-bench[EXTRA]'``) a feature needs.

The light core (``pip install synthoct-bench``) loads, verifies and scores. Building
needs numba (the compiled NLME solvers and the phantom); the ResNet18 baseline, the
torch dataset and the VAE family need torch; the diffusion generator needs diffusers. A
feature whose extra is missing raises :class:`MissingExtraError` (an ImportError)
naming the extra to install, instead of a bare "No module named ...".
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MODULE_EXTRA", "MissingExtraError", "require", "extra_for"]

#: extra -> the modules it installs that the code imports.
EXTRAS: dict[str, tuple[str, ...]] = {
    "build": ("numba", "isal", "matplotlib"),
    "torch": ("torch", "torchvision", "safetensors", "matplotlib"),
    "diffusion": ("torch", "torchvision", "safetensors", "diffusers", "accelerate"),
}
#: module -> the first extra (in EXTRAS' order, smallest first) that installs it.
MODULE_EXTRA: dict[str, str] = {}
for _extra, _modules in EXTRAS.items():
    for _module in _modules:
        MODULE_EXTRA.setdefault(_module, _extra)


class MissingExtraError(ImportError):
    """A feature's optional dependencies are not installed; the message says which
    extra installs them."""


def _install_hint(extra: str) -> str:
    return f"pip install 'synthoct-bench[{extra}]'"


def require(feature: str, extra: str) -> None:
    """Raise MissingExtraError unless every module of ``extra`` can be imported."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{feature} needs {', '.join(missing)}, which the light install leaves out: "
            f"{_install_hint(extra)}"
        )


def extra_for(error: ImportError) -> MissingExtraError | None:
    """A MissingExtraError for an ImportError of a module some extra installs, else None."""
    if isinstance(error, MissingExtraError):
        return error
    name = (getattr(error, "name", None) or "").split(".")[0]
    extra = MODULE_EXTRA.get(name)
    if extra is None:
        return None
    return MissingExtraError(
        f"this needs {name}, which the light install leaves out: {_install_hint(extra)}"
    )
