"""How well a generator's latent space is read: disentanglement against known
factors (MIG, DCI, SAP), the two ways of Deltadahl et al. 2024 to choose η dims
(``latent_selection.py``) and how much of z an image carries (``conditioning.py``)."""

from synthoct_bench.lazy import lazy_exports

_P = "synthoct_bench.generators.metrics"
_LAZY = {
    **{n: f"{_P}.disentanglement:{n}" for n in ("mig", "dci", "sap", "r2_columns")},
    **{n: f"{_P}.latent_selection:{n}" for n in ("select_latent_dims", "SelectionResult")},
    "conditioning_check": f"{_P}.conditioning:conditioning_check",
}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
