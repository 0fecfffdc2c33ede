"""Conditional log-likelihood of observations given η (Gaussian, additive error)."""

from __future__ import annotations

import math

import numpy as np

from synthoct_bench.nlme.model import NLMEModel, PopulationParams
from synthoct_bench.nlme.simulate import predict, resolve

__all__ = ["loglik", "gaussian_loglik"]


def gaussian_loglik(y: np.ndarray, pred: np.ndarray, sigma: float) -> np.ndarray:
    """Σ_j log N(y_ij | pred_ij, σ²) over the observed (non-NaN) entries: shape (N,)."""
    resid = y - pred
    observed = ~np.isnan(y)
    sq = np.where(observed, resid * resid, 0.0).sum(axis=1)
    n_obs = observed.sum(axis=1)
    return -0.5 * (n_obs * math.log(2.0 * math.pi * sigma * sigma) + sq / (sigma * sigma))


def loglik(
    y: np.ndarray,
    eta: np.ndarray,
    params: PopulationParams | None = None,
    *,
    model: NLMEModel | None = None,
    times: np.ndarray | None = None,
) -> np.ndarray:
    """Conditional log-likelihood log p(y_i | η_i) per subject, shape (N,).

    ``y`` is (N, T); NaN marks a missing observation (it contributes nothing).
    The negative of this is the paper's "conditional NLL" (Table 2).
    """
    eta, params, model, times = resolve(eta, params, model, times)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (eta.shape[0], times.size):
        raise ValueError(
            f"y must have shape (N, T) = ({eta.shape[0]}, {times.size}) to match eta and "
            f"times, got {y.shape}"
        )
    if np.isinf(y).any():
        raise ValueError("y has infinite values; mark missing observations with NaN")
    pred = predict(eta, params, model=model, times=times)
    return gaussian_loglik(y, pred, params.sigma)
