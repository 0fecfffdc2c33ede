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
"""

from synthoct_bench.nlme.diagnostics import diagnostics, gof_plot
from synthoct_bench.nlme.ebe import EBEResult, ebe
from synthoct_bench.nlme.foce import fit_foce
from synthoct_bench.nlme.importance import fit_importance
from synthoct_bench.nlme.likelihood import gaussian_loglik, loglik
from synthoct_bench.nlme.model import (
    OBS_TIMES,
    PAPER_MODEL,
    NLMEModel,
    PopulationParams,
    paper_rhs,
)
from synthoct_bench.nlme.population import PopulationFit
from synthoct_bench.nlme.reference import PAPER_THETA, reference_predict
from synthoct_bench.nlme.simulate import predict, simulate

__all__ = [
    "OBS_TIMES",
    "PAPER_MODEL",
    "PAPER_THETA",
    "EBEResult",
    "NLMEModel",
    "PopulationFit",
    "PopulationParams",
    "diagnostics",
    "ebe",
    "fit_foce",
    "fit_importance",
    "gaussian_loglik",
    "gof_plot",
    "loglik",
    "paper_rhs",
    "predict",
    "reference_predict",
    "simulate",
]
