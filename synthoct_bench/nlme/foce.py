"""Population fit by FOCE (first-order conditional estimation).

The marginal likelihood of subject i is approximated at its EBE η̂_i by
Laplace's method with the Gauss-Newton Hessian (FOCE; with additive residual
error FOCE and FOCEI coincide, so this is also FOCEI):

    L_i = Φ_i(η̂_i) + ½ log det Ω + ½ log det(Ω⁻¹ + W_i),  W_i = Σ_j ∇f_ij∇f_ijᵀ/σ²

with Φ_i the EBE objective of :mod:`synthoct_bench.nlme.ebe` (full conditional
NLL + ½η̂ᵀΩ⁻¹η̂), and OFV = -2 log L = 2 Σ_i L_i (Pumas/NONMEM report it
without the n log 2π constant; here it is included).

Parameters ψ = (log θ, log diag Ω, log σ) are fitted in two phases:
1. Laplace-EM updates (closed form given the EBEs and their Laplace
   covariances C_i): for a mu-referenced model log θ ← log θ + mean η̂,
   ω_k ← mean(η̂_k² + C_i,kk), σ² ← mean squared residual plus the
   C_i-weighted curvature term. Cheap, monotone-ish, gets close fast.
2. BFGS on the FOCE objective itself with forward-difference gradients, every
   evaluation a full batched EBE warm-started from the previous modes (shifted
   by the change in log θ, which mu-referencing makes exact).

Standard errors come from the S matrix Σ_i g_i g_iᵀ of per-subject score
vectors (central differences), NONMEM's ``$COV MATRIX=S``; NaN where it is
singular. Large data are fitted on a deterministic subsample (``max_subjects``,
chosen by :mod:`synthoct_bench.rng`): 20,000 subjects recover the paper's
parameters to well within 3% (θ), 10% (Ω) and 5% (σ); see BENCHMARKS.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from synthoct_bench import rng
from synthoct_bench.nlme.ebe import EBEResult, check_observations, ebe
from synthoct_bench.nlme.model import OBS_TIMES, PAPER_MODEL, PopulationParams

__all__ = ["FOCEResult", "fit_foce", "foce_objective", "REFERENCE_INIT"]

#: The reference's initial values (DESIGN.md): tvKa 1.0, tvImax 1.1, tvIC50 0.6, Ω = 0.2 I, σ 0.1.
REFERENCE_INIT = {"theta": (1.0, 1.1, 0.6), "omega": (0.2, 0.2, 0.2), "sigma": 0.1}


@dataclass(frozen=True)
class FOCEResult:
    """A FOCE population fit.

    ``se`` holds standard errors on the natural scale (θ, Ω variances, σ),
    delta method from the log-scale S-matrix covariance; NaN where unavailable.
    ``history`` has one dict per outer iteration (phase, ofv, parameters, seconds).
    """

    params: object
    ofv: float
    se: dict
    history: list
    n_subjects_used: int
    converged: bool
    ebe: EBEResult
    subjects: np.ndarray
    seconds: float
    method: str = "FOCE (= FOCEI: additive residual error), Gauss-Newton Laplace"
    info: dict = field(default_factory=dict)


def _unpack(psi: np.ndarray, p: int, d: int):
    theta = tuple(float(v) for v in np.exp(psi[:p]))
    omega = tuple(float(v) for v in np.exp(psi[p : p + d]))
    return PopulationParams(theta=theta, omega=omega, sigma=float(np.exp(psi[p + d])))


def _pack(params) -> np.ndarray:
    return np.log(
        np.concatenate(
            [
                np.asarray(params.theta, dtype=np.float64),
                np.asarray(params.omega, dtype=np.float64),
                [float(params.sigma)],
            ]
        )
    )


def foce_objective(ebe_result: EBEResult, params) -> np.ndarray:
    """Per-subject FOCE objective L_i (so OFV = 2 Σ L_i) from EBEs at ``params``."""
    omega = np.asarray(params.omega, dtype=np.float64)
    logdet_cov = np.linalg.slogdet(ebe_result.cov)[1]
    return ebe_result.objective + 0.5 * float(np.sum(np.log(omega))) - 0.5 * logdet_cov


class _Evaluator:
    """FOCE objective of ψ with warm-started EBEs (keeps the latest modes)."""

    def __init__(self, y, model, times, mu_ref, p, d, ebe_kwargs):
        self.y, self.model, self.times = y, model, times
        self.mu_ref, self.p, self.d = mu_ref, p, d
        self.ebe_kwargs = ebe_kwargs
        self.eta = None
        self.log_theta = None
        self.n_calls = 0

    def warm(self, psi):
        if self.eta is None:
            return None
        if self.mu_ref:
            return self.eta + (self.log_theta - psi[: self.p])[None, :]
        return self.eta

    def __call__(self, psi, keep=True):
        """Per-subject FOCE objective at ψ. ``keep=False`` marks a finite-difference
        probe: its EBEs are refined locally from the kept modes, so a derivative
        never mixes two basins of a subject's posterior."""
        params = _unpack(psi, self.p, self.d)
        local = {} if keep or self.eta is None else {"n_restarts": 0}
        res = ebe(
            self.y, params, model=self.model, times=self.times, eta0=self.warm(psi),
            **self.ebe_kwargs, **local,
        )  # fmt: skip
        self.n_calls += 1
        if keep:
            self.eta, self.log_theta = res.eta, psi[: self.p].copy()
        return foce_objective(res, params), res, params


#: log-scale step of the per-subject central differences behind the S-matrix
SE_STEP = 1e-4


def _central_scores(ev: _Evaluator, psi: np.ndarray, h: float) -> np.ndarray:
    """(N, K) per-subject central differences of the FOCE objective in ψ (EBEs refined locally)."""
    cols = []
    for k in range(psi.size):
        up, dn = psi.copy(), psi.copy()
        up[k] += h
        dn[k] -= h
        cols.append((ev(up, keep=False)[0] - ev(dn, keep=False)[0]) / (2 * h))
    return np.stack(cols, axis=1)


def _fill_se(se: dict, psi: np.ndarray, cov_log: np.ndarray, p: int, d: int) -> None:
    """Standard errors on the natural scale (delta method) from the covariance of ψ = log params.

    Leaves ``se`` as it is when a variance is not finite and positive.
    """
    var = np.diag(cov_log)
    if np.all(np.isfinite(var)) and np.all(var > 0):
        nat = np.exp(psi) * np.sqrt(var)
        se["theta"] = [float(v) for v in nat[:p]]
        se["omega"] = [float(v) for v in nat[p : p + d]]
        se["sigma"] = float(nat[p + d])


def _subsample(n: int, max_subjects: int | None, seed: int) -> np.ndarray:
    if max_subjects is None or n <= max_subjects:
        return np.arange(n)
    u = rng.uniform(seed, rng.stream_id("foce-subsample"), np.arange(n), 1)[:, 0]
    return np.sort(np.argsort(u, kind="stable")[:max_subjects])


def fit_foce(
    y: np.ndarray,
    init=None,
    *,
    model=None,
    times: np.ndarray | None = None,
    max_subjects: int | None = 20_000,
    seed: int = 0,
    em_iter: int = 40,
    em_tol: float = 1e-4,
    max_iter: int = 40,
    gtol: float = 1e-4,
    fd_step: float = 1e-4,
    compute_se: bool = True,
    progress: bool = False,
    ebe_tol: float = 1e-12,
    ofv_gain_tol: float = 0.1,
) -> FOCEResult:
    """Fit θ, diagonal Ω and σ by FOCE from ``init`` (default: the reference's initial values).

    ``y`` is (N, T) with NaN for missing observations; subjects beyond
    ``max_subjects`` are left out by a deterministic subsample keyed by ``seed``.
    ``em_iter`` Laplace-EM iterations precede at most ``max_iter`` BFGS
    iterations on the exact FOCE objective (``max_iter=0`` stops after EM).
    The fit counts as converged when BFGS meets ``gtol`` (or 10×), or when it
    stops on precision loss and a Newton step on a central-difference gradient
    promises less than ``ofv_gain_tol`` OFV units (``info`` keeps the figure).
    """
    t0 = time.perf_counter()
    mdl = model if model is not None else PAPER_MODEL
    if init is None and model is None:
        init = REFERENCE_INIT
    init = PopulationParams.coerce(init, model)
    p, d = len(init.theta), len(init.omega)
    t_arr = OBS_TIMES if times is None else np.asarray(times, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    check_observations(y_arr, int(np.asarray(t_arr).size))  # raises on bad input
    if y_arr.ndim == 1:
        y_arr = y_arr[None, :]
    if max_subjects is not None and max_subjects < 1:
        raise ValueError(f"max_subjects must be >= 1 or None, got {max_subjects}")
    subjects = _subsample(y_arr.shape[0], max_subjects, seed)
    y_fit = y_arr[subjects]
    mask = ~np.isnan(y_fit)
    n_obs_total = int(mask.sum())
    mu_ref = bool(getattr(mdl, "mu_referenced", False)) and p == d
    ev = _Evaluator(y_fit, model, times, mu_ref, p, d, {"tol": ebe_tol})
    history: list[dict] = []
    psi = _pack(init)

    def record(phase, ofv, psi_now):
        prm = _unpack(psi_now, p, d)
        history.append(
            {
                "iteration": len(history),
                "phase": phase,
                "ofv": float(ofv),
                "theta": list(prm.theta),
                "omega": list(prm.omega),
                "sigma": prm.sigma,
                "seconds": time.perf_counter() - t0,
            }
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=em_iter + max_iter, desc="FOCE", unit="iter")

    # Phase 1: Laplace-EM, while it lowers the FOCE objective. (It is not an
    # exact EM for the FOCE objective: near the optimum it drifts along the
    # Imax-IC50 ridge, so it stops at its best iterate and BFGS takes over.)
    best_ofv, best_psi = math.inf, psi.copy()
    for _ in range(em_iter):
        li, res, prm = ev(psi)
        ofv_now = 2.0 * float(li.sum())
        record("em", ofv_now, psi)
        if ofv_now > best_ofv - 1e-3 * abs(best_ofv) * em_tol:
            psi = best_psi
            break
        best_ofv, best_psi = ofv_now, psi.copy()
        eta = res.eta
        new = psi.copy()
        if mu_ref:
            shift = eta.mean(axis=0)
            new[:p] = psi[:p] + shift
            eta = eta - shift
        cdiag = np.diagonal(res.cov, axis1=1, axis2=2)
        new[p : p + d] = np.log(np.mean(eta**2 + cdiag, axis=0))
        sse = float(np.nansum((y_fit - res.ipred) ** 2))
        omega = np.asarray(prm.omega)
        curv = float(np.sum(d - np.sum(cdiag / omega, axis=1)))
        new[p + d] = 0.5 * math.log((sse + prm.sigma**2 * curv) / n_obs_total)
        step = np.max(np.abs(new - psi))
        psi = new
        if bar is not None:
            bar.update(1)
        if step < em_tol:
            break

    # Phase 2: BFGS on the FOCE objective, forward-difference gradients.
    n_sub = y_fit.shape[0]
    state = {"ofv": None}

    def fun(x):
        li, _, _ = ev(x)
        f0 = li.sum() / n_sub
        grad = np.empty_like(x)
        for k in range(x.size):
            xk = x.copy()
            xk[k] += fd_step
            lk, _, _ = ev(xk, keep=False)
            grad[k] = (lk.sum() / n_sub - f0) / fd_step
        state["ofv"] = 2.0 * li.sum()
        return f0, grad

    def callback(xk):
        record("bfgs", state["ofv"], xk)
        if bar is not None:
            bar.update(1)

    converged = False
    opt_info: dict = {}
    opt = None
    if max_iter > 0:
        opt = minimize(
            fun, psi, jac=True, method="BFGS", callback=callback,
            options={"gtol": gtol, "maxiter": max_iter},
        )  # fmt: skip
        psi = opt.x
        gnorm = float(np.max(np.abs(opt.jac)))
        converged = bool(opt.success) or gnorm < 10 * gtol
        opt_info = {"message": str(opt.message), "grad_max": gnorm, "nit": int(opt.nit)}
    if bar is not None:
        bar.close()

    li, res, params = ev(psi)  # also re-centres the kept EBEs on the final point
    ofv = 2.0 * float(li.sum())
    record("final", ofv, psi)
    if max_iter == 0:
        converged = bool(history[-2]["iteration"] < em_iter - 1) if len(history) > 1 else False

    scores = None
    if opt is not None and not converged:
        # BFGS stopped on precision loss: the gradient is at the noise floor of
        # the finite differences (ODE and EBE tolerances, ~1e-3 per subject),
        # which can sit above gtol. Judge the stop by what is left to gain: the
        # OFV decrease a Newton step on a central-difference gradient predicts.
        scores = _central_scores(ev, psi, fd_step)
        g_c = scores.sum(axis=0) / n_sub
        gain = float(2.0 * n_sub * 0.5 * g_c @ np.asarray(opt.hess_inv) @ g_c)
        converged = gain < ofv_gain_tol
        opt_info["predicted_ofv_decrease"] = gain

    se = {
        "theta": [math.nan] * p,
        "omega": [math.nan] * d,
        "sigma": math.nan,
        "method": "S-matrix (sum of outer products of per-subject scores)",
    }
    if compute_se:
        if scores is None or fd_step != SE_STEP:
            scores = _central_scores(ev, psi, SE_STEP)
        try:
            _fill_se(se, psi, np.linalg.inv(scores.T @ scores), p, d)
        except np.linalg.LinAlgError:
            pass
    return FOCEResult(
        params=params,
        ofv=ofv,
        se=se,
        history=history,
        n_subjects_used=int(n_sub),
        converged=converged,
        ebe=res,
        subjects=subjects,
        seconds=time.perf_counter() - t0,
        info={"ebe_calls": ev.n_calls, **opt_info},
    )
