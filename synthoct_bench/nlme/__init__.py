"""The NLME model of the paper: decoder (simulation) and encoder (empirical Bayes).

Decoder API (this module): :class:`NLMEModel` / :data:`PAPER_MODEL` (the model
spec), :class:`PopulationParams` (θ, diagonal Ω, σ), :func:`predict`
(noise-free series, optionally with d pred / d η), :func:`simulate` (plus
residual error, reproducible per subject) and :func:`loglik` (conditional
log-likelihood per subject).
"""

from synthoct_bench.nlme.likelihood import gaussian_loglik, loglik
from synthoct_bench.nlme.model import (
    OBS_TIMES,
    PAPER_MODEL,
    NLMEModel,
    PopulationParams,
    paper_rhs,
)
from synthoct_bench.nlme.reference import PAPER_THETA, reference_predict
from synthoct_bench.nlme.simulate import predict, simulate

__all__ = [
    "OBS_TIMES",
    "PAPER_MODEL",
    "PAPER_THETA",
    "NLMEModel",
    "PopulationParams",
    "gaussian_loglik",
    "loglik",
    "paper_rhs",
    "predict",
    "reference_predict",
    "simulate",
]

# Encoder (issue 3): empirical Bayes estimates, FOCE population fit, diagnostics.
from synthoct_bench.nlme.diagnostics import diagnostics, gof_plot  # noqa: E402
from synthoct_bench.nlme.ebe import EBEResult, ebe  # noqa: E402
from synthoct_bench.nlme.foce import fit_foce  # noqa: E402
from synthoct_bench.nlme.population import PopulationFit  # noqa: E402

__all__ += ["EBEResult", "PopulationFit", "diagnostics", "ebe", "fit_foce", "gof_plot"]
