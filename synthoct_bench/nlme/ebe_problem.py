"""What one empirical Bayes search is given: its options, checked observations and
the per-chunk problem (data plus the calls into the decoder).

Both search engines and the start grid read these, so they sit below
:mod:`synthoct_bench.nlme.ebe` (which runs them) and the compiled
:mod:`synthoct_bench.nlme.ebe_search` and :mod:`synthoct_bench.nlme.ebe_grid`
(which it calls): the three import this module and never each other upward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthoct_bench.nlme.simulate import predict

__all__ = [
    "ABANDON",
    "COARSE_ATOL",
    "COARSE_RTOL",
    "COARSE_SWITCH",
    "ENGINES",
    "STALL_TOL",
    "EBEOptions",
    "EBEProblem",
    "check_observations",
]


#: Each search runs on a coarse solver (local rtol 1e-3: 31 steps and half the
#: cost of the accurate solver's 59 at rtol 2e-5) until its Newton decrement is
#: below ``COARSE_SWITCH``, then on the accurate one, which alone can declare
#: convergence: far from the answer a step needs the direction, not six digits.
COARSE_RTOL = 1e-3
COARSE_ATOL = 1e-6
COARSE_SWITCH = 1e-3
#: a search whose step fails to lower the objective measurably while the Newton
#: decrement is below this has hit the solver's floor: its sensitivities are
#: exact derivatives of the steps taken, not of the adaptive solver's output,
#: which leaves decrements of up to ~1e-6 that no step can remove
STALL_TOL = 1e-6
#: a restart stops when its objective less this many Newton decrements (the
#: quadratic model's whole remaining decrease is half of one) is above the cap:
#: on 20,000 subjects this saves 0.12 solves per subject and changes no answer
ABANDON = 4.0


#: the search engines of :func:`ebe`
ENGINES = ("auto", "compiled", "batched")


@dataclass(frozen=True)
class EBEOptions:
    """Every option of :func:`ebe` and of its search, with its default.

    :func:`ebe` takes its keyword defaults from here and builds one of these
    per call, resolving ``grid_points`` (from the number of random effects),
    ``restart_margin`` (per engine) and ``engine="auto"``; see its docstring
    for their meaning. The fields from ``lam0`` on are tuning not exposed by
    :func:`ebe`: the initial Levenberg-Marquardt damping, the stall rule
    (:data:`STALL_TOL`), when a restart is
    abandoned, and the compiled engine's coarse ODE solver (``coarse_switch=0``
    searches on the accurate solver alone).
    """

    tol: float = 1e-10
    max_iter: int = 60
    grid_points: int | None = None
    grid_span: float = 4.0
    n_restarts: int = 3
    restart_margin: float | None = None
    eta_bound: float = 8.0
    chunk_size: int = 4096
    engine: str = "auto"
    lam0: float = 1e-3
    stall_tol: float = STALL_TOL
    abandon: float = ABANDON
    coarse_rtol: float = COARSE_RTOL
    coarse_atol: float = COARSE_ATOL
    coarse_switch: float = COARSE_SWITCH

    def __post_init__(self) -> None:
        if self.tol <= 0 or self.max_iter < 1 or self.chunk_size < 1:
            raise ValueError("tol must be > 0, max_iter and chunk_size >= 1")
        if self.grid_points is not None and self.grid_points < 2:
            raise ValueError(f"grid_points must be >= 2, got {self.grid_points}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be 'auto', 'compiled' or 'batched', got {self.engine!r}")


def check_observations(y: np.ndarray, n_times: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate observations (N, T); return (y with NaN set to 0, mask of observed)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise ValueError(f"y must have shape (N, T), got {y.shape}")
    if y.shape[1] != n_times:
        raise ValueError(
            f"y has {y.shape[1]} observations per subject but the model has {n_times} "
            "observation times; pass times= matching the columns of y"
        )
    if y.shape[0] == 0:
        raise ValueError("y holds no subjects")
    if np.isinf(y).any():
        rows = np.unique(np.nonzero(np.isinf(y))[0])
        raise ValueError(
            f"y holds infinite values (subjects {rows[:10].tolist()}); "
            "mark missing observations with NaN"
        )
    mask = ~np.isnan(y)
    empty = np.nonzero(~mask.any(axis=1))[0]
    if empty.size:
        raise ValueError(
            f"{empty.size} subject(s) have no observations (e.g. rows {empty[:10].tolist()}); "
            "drop them before estimating"
        )
    return np.where(mask, y, 0.0), mask


class EBEProblem:
    """Per-chunk data and the calls into the decoder."""

    def __init__(self, y, mask, params, model, times, eta_bound):
        self.y = y
        self.mask = mask.astype(np.float64)
        self.params = params
        self.model = model
        self.times = times
        self.omega = np.asarray(params.omega, dtype=np.float64)
        self.inv_omega = 1.0 / self.omega
        self.inv_s2 = 1.0 / float(params.sigma) ** 2
        self.lower = -eta_bound * np.sqrt(self.omega)
        self.upper = eta_bound * np.sqrt(self.omega)
        self.n_evaluations = 0
        self.n_coarse_evaluations = 0

    def evaluate(self, eta: np.ndarray, sensitivities: bool = True):
        kwargs = {"sensitivities": sensitivities}
        if self.model is not None:
            kwargs["model"] = self.model
        if self.times is not None:
            kwargs["times"] = self.times
        out = predict(eta, self.params, **kwargs)
        self.n_evaluations += eta.shape[0]
        if not sensitivities:
            return np.asarray(out, dtype=np.float64)
        return np.asarray(out[0], dtype=np.float64), np.asarray(out[1], dtype=np.float64)

    def phi(self, idx, eta, f):
        """Φ without its constant for subjects ``idx``."""
        r = (self.y[idx] - f) * self.mask[idx]
        return 0.5 * self.inv_s2 * np.einsum("nt,nt->n", r, r) + 0.5 * np.einsum(
            "nd,d,nd->n", eta, self.inv_omega, eta
        )

    def grad_hess(self, idx, eta, f, s):
        m = self.mask[idx]
        r = (self.y[idx] - f) * m
        g = -self.inv_s2 * np.einsum("ntd,nt->nd", s, r) + eta * self.inv_omega
        h = self.inv_s2 * np.einsum("ntd,nte,nt->nde", s, s, m)
        h[:, np.arange(eta.shape[1]), np.arange(eta.shape[1])] += self.inv_omega
        return g, h
