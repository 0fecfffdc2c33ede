"""What the population fits share: their result, the log-scale parameter vector,
standard errors and the subjects they are fitted on.

Both estimators (:mod:`~synthoct_bench.nlme.foce` and
:mod:`~synthoct_bench.nlme.importance`) optimise over ψ = (log θ, log diag Ω,
log σ), report standard errors on the natural scale by the delta method from a
covariance of ψ, fit large data on the same deterministic subsample, and
return a :class:`PopulationFit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from synthoct_bench import rng
from synthoct_bench.nlme.ebe import EBEResult
from synthoct_bench.nlme.ebe_problem import check_observations
from synthoct_bench.nlme.model import OBS_TIMES, PopulationParams

__all__ = [
    "METHODS",
    "MIN_FIT_SUBJECTS",
    "SE_STEP",
    "PopulationFit",
    "central_differences",
    "history_entry",
    "inverse_or_none",
    "pack",
    "standard_errors",
    "subjects_to_fit",
    "unpack",
]

#: the estimators a :class:`PopulationFit` can come from
METHODS = ("foce", "importance")
#: log-scale step of the central differences behind the standard errors
SE_STEP = 1e-4


@dataclass(frozen=True)
class PopulationFit:
    """A population fit of θ, diagonal Ω and σ.

    ``method`` is the estimator (one of :data:`METHODS`), ``description`` says
    how it was run. ``se`` holds standard errors on the natural scale (θ, Ω
    variances, σ) by the delta method, NaN where unavailable; its ``"method"``
    entry says where the covariance came from. ``history`` has one dict per
    outer iteration (phase, ofv, parameters, seconds). ``ebe`` holds the EBEs of
    the fitted subjects at ``params``, ``subjects`` their rows in the data.
    """

    method: str
    params: PopulationParams
    ofv: float
    se: dict
    history: list
    n_subjects_used: int
    converged: bool
    ebe: EBEResult
    subjects: np.ndarray
    seconds: float
    description: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")


def pack(params: PopulationParams) -> np.ndarray:
    """ψ = (log θ, log diag Ω, log σ): the vector both fits optimise over."""
    return np.log(
        np.concatenate(
            [
                np.asarray(params.theta, dtype=np.float64),
                np.asarray(params.omega, dtype=np.float64),
                [float(params.sigma)],
            ]
        )
    )


def unpack(psi: np.ndarray, p: int, d: int) -> PopulationParams:
    """The parameters of ψ, for a model with ``p`` typical values and ``d`` random effects."""
    theta = tuple(float(v) for v in np.exp(psi[:p]))
    omega = tuple(float(v) for v in np.exp(psi[p : p + d]))
    return PopulationParams(theta=theta, omega=omega, sigma=float(np.exp(psi[p + d])))


def central_differences(
    fn: Callable[[np.ndarray], np.ndarray], psi: np.ndarray, h: float
) -> np.ndarray:
    """(fn(ψ + h e_k) − fn(ψ − h e_k)) / 2h for every k, stacked along a new last axis."""
    cols = []
    for k in range(psi.size):
        up, dn = psi.copy(), psi.copy()
        up[k] += h
        dn[k] -= h
        cols.append((fn(up) - fn(dn)) / (2 * h))
    return np.stack(cols, axis=-1)


def inverse_or_none(matrix: np.ndarray) -> np.ndarray | None:
    """The inverse of ``matrix``, or None where it is singular."""
    try:
        return np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return None


def standard_errors(
    psi: np.ndarray, p: int, d: int, method: str, cov_log: np.ndarray | None = None
) -> dict:
    """Standard errors of θ, Ω and σ on the natural scale from the covariance of ψ.

    Delta method: SE(e^ψ_k) = e^ψ_k · SD(ψ_k). All entries are NaN when
    ``cov_log`` is None or one of its variances is not finite and positive.
    ``method`` is kept in the result to say where ``cov_log`` came from.
    """
    se = {"theta": [math.nan] * p, "omega": [math.nan] * d, "sigma": math.nan, "method": method}
    if cov_log is None:
        return se
    var = np.diag(cov_log)
    if np.all(np.isfinite(var)) and np.all(var > 0):
        nat = np.exp(psi) * np.sqrt(var)
        se["theta"] = [float(v) for v in nat[:p]]
        se["omega"] = [float(v) for v in nat[p : p + d]]
        se["sigma"] = float(nat[p + d])
    return se


#: Fewest subjects a population fit accepts. It estimates 7 parameters (3 typical values,
#: 3 between-subject variances, σ); with 20 subjects a variance is known to about ±30%,
#: and with fewer Ω collapses (one subject gives Ω ≈ 2e-7, reported as converged).
MIN_FIT_SUBJECTS = 20


def subjects_to_fit(
    y: np.ndarray, times: np.ndarray | None, max_subjects: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check the observations and pick the subjects to fit: (row indices, their rows of y).

    With more than ``max_subjects`` rows a subsample keyed by ``seed`` is taken
    (:mod:`synthoct_bench.rng`), so the same data and seed fit the same subjects
    with either estimator.
    """
    t_arr = OBS_TIMES if times is None else np.asarray(times, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    check_observations(y_arr, int(np.asarray(t_arr).size))  # raises on bad input
    if y_arr.ndim == 1:
        y_arr = y_arr[None, :]
    if max_subjects is not None and max_subjects < 1:
        raise ValueError(f"max_subjects must be >= 1 or None, got {max_subjects}")
    n = y_arr.shape[0]
    used = n if max_subjects is None else min(n, max_subjects)
    if used < MIN_FIT_SUBJECTS:
        raise ValueError(
            f"a population fit needs at least {MIN_FIT_SUBJECTS} subjects (it estimates 3 "
            f"typical values, 3 variances and sigma), got {used}; fit more subjects"
        )
    if max_subjects is None or n <= max_subjects:
        subjects = np.arange(n)
    else:
        u = rng.uniform(seed, rng.stream_id("foce-subsample"), np.arange(n), 1)[:, 0]
        subjects = np.sort(np.argsort(u, kind="stable")[:max_subjects])
    return subjects, y_arr[subjects]


def history_entry(
    iteration: int, phase: str, ofv: float, params: PopulationParams, seconds: float, **extra
) -> dict:
    """One row of :attr:`PopulationFit.history`."""
    return {
        "iteration": iteration,
        "phase": phase,
        "ofv": float(ofv),
        "theta": list(params.theta),
        "omega": list(params.omega),
        "sigma": params.sigma,
        "seconds": seconds,
        **extra,
    }
