"""Per-subject scipy reference solution of the paper's NLME model.

This is what a Python user would write without this library, and it is the
ground truth for the fast batched solver: the full two-state system (Depot,
Central) integrated by ``scipy.integrate.solve_ivp`` one subject at a time,
with the analytic Jacobian. Slow (a few subjects per second at rtol 1e-10);
use it for accuracy checks and as the benchmarks' baseline, never on a hot path.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

__all__ = ["PAPER_THETA", "OBS_TIMES", "reference_predict"]

#: Typical values (tvKa, tvImax, tvIC50) of the paper's model.
PAPER_THETA: tuple[float, float, float] = (1.0, 2.1, 0.4)
#: Observation times t = 0, 0.5, ..., 10 (21 points).
OBS_TIMES: np.ndarray = np.linspace(0.0, 10.0, 21)


def _rhs(t: float, y: np.ndarray, ka: float, imax: float, ic50: float) -> list[float]:
    depot, central = y
    return [-ka * depot, ka * depot - imax * central / (ic50 + central)]


def _jac(t: float, y: np.ndarray, ka: float, imax: float, ic50: float) -> list[list[float]]:
    central = y[1]
    return [[-ka, 0.0], [ka, -imax * ic50 / (ic50 + central) ** 2]]


def reference_predict(
    eta: np.ndarray,
    theta: tuple[float, float, float] = PAPER_THETA,
    times: np.ndarray = OBS_TIMES,
    dose: float = 1.0,
    method: str = "Radau",
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> np.ndarray:
    """Central(t) at ``times`` for each row of ``eta`` (N, 3), one solve_ivp call per subject."""
    eta = np.atleast_2d(np.asarray(eta, dtype=np.float64))
    if eta.shape[1] != 3:
        raise ValueError(f"eta must have shape (N, 3), got {eta.shape}")
    times = np.asarray(times, dtype=np.float64)
    tv = np.asarray(theta, dtype=np.float64)
    out = np.empty((eta.shape[0], times.size))
    for i, row in enumerate(eta):
        ka, imax, ic50 = tv * np.exp(row)
        sol = solve_ivp(
            _rhs,
            (0.0, float(times[-1])),
            [dose, 0.0],
            method=method,
            t_eval=times,
            args=(ka, imax, ic50),
            jac=_jac,
            rtol=rtol,
            atol=atol,
        )
        if not sol.success:
            raise RuntimeError(f"reference solve failed for subject {i} (eta={row}): {sol.message}")
        out[i] = sol.y[1]
    return out
