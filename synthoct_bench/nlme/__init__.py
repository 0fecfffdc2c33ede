"""The NLME model of the paper: decoder (simulation) and encoder (empirical Bayes).

Decoder: :class:`NLMEModel` / :data:`PAPER_MODEL` (the model spec),
:class:`PopulationParams` (θ, diagonal Ω, σ), :func:`predict` (noise-free
series, optionally with d pred / d η), :func:`simulate` (plus residual error,
reproducible per subject) and :func:`loglik` (conditional log-likelihood per
subject).

Encoder: :func:`ebe` (empirical Bayes estimates, :class:`EBEResult`), the
population fits :func:`fit_foce` (the paper's FOCE) and :func:`fit_importance`
(importance sampling of the exact likelihood), both returning a
:class:`PopulationFit`, and :func:`diagnostics` / :func:`gof_plot`.

Every name is imported on first use, so ``import synthoct_bench.nlme`` (the scorer
reads ``PopulationParams``) does not load numba, which the solvers compile with.
"""

from __future__ import annotations

import sys
import types

from synthoct_bench.lazy import lazy_exports

_LAZY = {
    "OBS_TIMES": "synthoct_bench.nlme.model:OBS_TIMES",
    "PAPER_MODEL": "synthoct_bench.nlme.model:PAPER_MODEL",
    "PAPER_THETA": "synthoct_bench.nlme.reference:PAPER_THETA",
    "EBEResult": "synthoct_bench.nlme.ebe:EBEResult",
    "NLMEModel": "synthoct_bench.nlme.model:NLMEModel",
    "PopulationFit": "synthoct_bench.nlme.population:PopulationFit",
    "PopulationParams": "synthoct_bench.nlme.model:PopulationParams",
    "diagnostics": "synthoct_bench.nlme.diagnostics:diagnostics",
    "ebe": "synthoct_bench.nlme.ebe:ebe",
    "fit_foce": "synthoct_bench.nlme.foce:fit_foce",
    "fit_importance": "synthoct_bench.nlme.importance:fit_importance",
    "gaussian_loglik": "synthoct_bench.nlme.likelihood:gaussian_loglik",
    "gof_plot": "synthoct_bench.nlme.diagnostics:gof_plot",
    "loglik": "synthoct_bench.nlme.likelihood:loglik",
    "paper_rhs": "synthoct_bench.nlme.model:paper_rhs",
    "predict": "synthoct_bench.nlme.simulate:predict",
    "reference_predict": "synthoct_bench.nlme.reference:reference_predict",
    "simulate": "synthoct_bench.nlme.simulate:simulate",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


class _Package(types.ModuleType):
    """Keeps ``nlme.ebe``, ``nlme.simulate`` and ``nlme.diagnostics`` the functions:
    importing a submodule binds its name on the package, which would otherwise
    shadow the function of the same name."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == f"{value.__name__}:{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
