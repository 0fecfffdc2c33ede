"""The paper's model solved with scipy alone, for installs without numba.

The light install (``pip install synthoct-bench``: load, verify, score) has no numba,
so the compiled kernel of :mod:`synthoct_bench.nlme.solver` is not there; the scorer
still needs f(η) for Table 2's NLLs. Here all subjects' Central ODEs

    dC/dt = Ka·dose·e^(-Ka·t) - Imax·C/(IC50 + C),   C(0) = 0,

(and, with ``sensitivities``, the forward sensitivities dS_k/dt = J·S_k + ∂f/∂η_k)
are stacked into one system and integrated by one ``solve_ivp`` Radau call with a
sparse diagonal Jacobian: no per-subject Python loop. The subjects share steps, so
the step count is that of the hardest subject, and scipy's error norm is an RMS over
the components, so the tolerances are set tight (rtol 1e-8, atol 1e-10): against scipy solved per
subject at rtol 1e-10 it is off by about 2e-10, below the compiled kernel's 3e-7.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.integrate import solve_ivp

__all__ = ["solve_mm_oral", "RTOL", "ATOL"]

#: Tolerances of the stacked solve (tight: scipy's error norm averages over subjects).
RTOL = 1e-8
ATOL = 1e-10


def solve_mm_oral(
    ka: np.ndarray,
    imax: np.ndarray,
    ic50: np.ndarray,
    times: np.ndarray,
    *,
    dose: float = 1.0,
    sensitivities: bool = False,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Central at ``times`` for each subject's (Ka, Imax, IC50), all arrays (N,):
    pred (N, T), and with ``sensitivities`` also d pred / d η (N, T, 3) for the
    log-scale random effects of (Ka, Imax, IC50). Same contract as the compiled
    :func:`synthoct_bench.nlme.solver.solve_mm_oral`."""
    ka, imax, ic50 = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (ka, imax, ic50))
    times = np.asarray(times, dtype=np.float64)
    n, n_t = ka.size, times.size
    width = 4 if sensitivities else 1
    out = np.zeros((width, n, n_t))
    if n == 0 or n_t == 0:
        return _shaped(out, sensitivities)
    t_eval, back = np.unique(times, return_inverse=True)  # solve_ivp wants them increasing
    t_eval = t_eval[t_eval > 0.0]  # C and S are 0 at t = 0
    if t_eval.size == 0:
        return _shaped(out, sensitivities)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        c = y[:n]
        absorbed = ka * dose * np.exp(-ka * t)
        sat = imax * c / (ic50 + c)
        if not sensitivities:
            return absorbed - sat
        j = -imax * ic50 / (ic50 + c) ** 2
        s = y[n:].reshape(3, n)
        forcing = np.stack([absorbed * (1.0 - ka * t), -sat, sat * ic50 / (ic50 + c)])
        return np.concatenate([absorbed - sat, (j * s + forcing).reshape(-1)])

    diag = np.arange(width * n)
    rows = np.concatenate([diag, np.arange(n, width * n)])
    cols = np.concatenate([diag, np.tile(np.arange(n), width - 1)])

    def jac(t: float, y: np.ndarray) -> sparse.csc_matrix:
        # block lower-triangular: ∂f/∂C on every diagonal block, and each sensitivity's
        # dependence on C, ∂(J·S_k + ∂f/∂η_k)/∂C, in the first block column
        c = y[:n]
        denom = ic50 + c
        j = -imax * ic50 / denom**2
        if not sensitivities:
            return sparse.diags(j, format="csc")
        dj = 2.0 * imax * ic50 / denom**3  # ∂J/∂C
        s = y[n:].reshape(3, n)
        coupling = dj * s + np.stack([np.zeros(n), j, imax * ic50 * (ic50 - c) / denom**3])
        values = np.concatenate([np.tile(j, width), coupling.reshape(-1)])
        return sparse.csc_matrix((values, (rows, cols)), shape=(width * n, width * n))

    sol = solve_ivp(
        rhs,
        (0.0, float(t_eval[-1])),
        np.zeros(width * n),
        method="Radau",
        t_eval=t_eval,
        jac=jac,
        rtol=rtol,
        atol=atol,
    )
    if not sol.success:
        raise ValueError(f"the scipy solve of the NLME model failed: {sol.message}")
    solved = np.zeros((width, n, t_eval.size + 1))  # column 0: t = 0
    solved[:, :, 1:] = sol.y.reshape(width, n, t_eval.size)
    positive = np.unique(times)
    column = np.searchsorted(t_eval, positive) + (positive > 0.0)
    out[:] = solved[:, :, column[back]]
    return _shaped(out, sensitivities)


def _shaped(out: np.ndarray, sensitivities: bool) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    if not sensitivities:
        return out[0]
    return out[0], np.moveaxis(out[1:], 0, -1)
