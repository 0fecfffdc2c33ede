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

import numpy as np
from scipy.optimize import minimize

from synthoct_bench.nlme.ebe import EBEResult, ebe
from synthoct_bench.nlme.model import PAPER_MODEL, PopulationParams
from synthoct_bench.nlme.population import (
    SE_STEP,
    PopulationFit,
    central_differences,
    history_entry,
    inverse_or_none,
    pack,
    standard_errors,
    subjects_to_fit,
    unpack,
)

__all__ = ["fit_foce", "foce_objective", "REFERENCE_INIT"]

#: The reference's initial values (DESIGN.md): tvKa 1.0, tvImax 1.1, tvIC50 0.6, Ω = 0.2 I, σ 0.1.
REFERENCE_INIT = {"theta": (1.0, 1.1, 0.6), "omega": (0.2, 0.2, 0.2), "sigma": 0.1}


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
        params = unpack(psi, self.p, self.d)
        local = {} if keep or self.eta is None else {"n_restarts": 0}
        res = ebe(
            self.y, params, model=self.model, times=self.times, eta0=self.warm(psi),
            **self.ebe_kwargs, **local,
        )  # fmt: skip
        self.n_calls += 1
        if keep:
            self.eta, self.log_theta = res.eta, psi[: self.p].copy()
        return foce_objective(res, params), res, params


def _central_scores(ev: _Evaluator, psi: np.ndarray, h: float) -> np.ndarray:
    """(N, K) per-subject central differences of the FOCE objective in ψ (EBEs refined locally)."""
    return central_differences(lambda x: ev(x, keep=False)[0], psi, h)


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
    ofv_stall_tol: float = 0.01,
) -> PopulationFit:
    """Fit θ, diagonal Ω and σ by FOCE from ``init`` (default: the reference's initial values).

    ``y`` is (N, T) with NaN for missing observations; subjects beyond
    ``max_subjects`` are left out by a deterministic subsample keyed by ``seed``.
    ``em_iter`` Laplace-EM iterations precede at most ``max_iter`` BFGS
    iterations on the exact FOCE objective (``max_iter=0`` stops after EM).
    BFGS also stops once two successive iterations each lower the OFV by less
    than ``ofv_stall_tol``: near the optimum the finite-difference gradients sit
    at their noise floor, and the line searches would spend most of a fit
    chasing thousandths of an OFV unit before failing on precision loss. (One
    such iteration is not enough: along the Imax-IC50 ridge a small step can
    precede larger ones.) The fit counts as converged when BFGS meets
    ``gtol`` (or 10×), or when it stops early (stalled, or on precision loss)
    and a Newton step on a central-difference gradient promises less than
    ``ofv_gain_tol`` OFV units (``info`` keeps the figure).
    """
    t0 = time.perf_counter()
    mdl = model if model is not None else PAPER_MODEL
    if init is None and model is None:
        init = REFERENCE_INIT
    init = PopulationParams.coerce(init, model)
    p, d = len(init.theta), len(init.omega)
    subjects, y_fit = subjects_to_fit(y, times, max_subjects, seed)
    mask = ~np.isnan(y_fit)
    n_obs_total = int(mask.sum())
    mu_ref = bool(getattr(mdl, "mu_referenced", False)) and p == d
    ev = _Evaluator(y_fit, model, times, mu_ref, p, d, {"tol": ebe_tol})
    history: list[dict] = []
    psi = pack(init)

    def record(phase, ofv, psi_now):
        prm = unpack(psi_now, p, d)
        history.append(history_entry(len(history), phase, ofv, prm, time.perf_counter() - t0))

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

    # Phase 2: BFGS on the FOCE objective, forward-difference gradients, until it stalls.
    n_sub = y_fit.shape[0]

    def fun(x):
        li, _, _ = ev(x)
        f0 = li.sum() / n_sub
        grad = np.empty_like(x)
        for k in range(x.size):
            xk = x.copy()
            xk[k] += fd_step
            lk, _, _ = ev(xk, keep=False)
            grad[k] = (lk.sum() / n_sub - f0) / fd_step
        return f0, grad

    stalls = [0]  # successive BFGS iterations that lowered the OFV by < ofv_stall_tol

    def callback(intermediate_result):
        ofv_before = history[-1]["ofv"]
        ofv_now = 2.0 * n_sub * float(intermediate_result.fun)
        record("bfgs", ofv_now, intermediate_result.x)
        if bar is not None:
            bar.update(1)
        stalls[0] = stalls[0] + 1 if ofv_before - ofv_now < ofv_stall_tol else 0
        if stalls[0] == 2:
            raise StopIteration

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
        if opt.status == 99:
            opt_info["message"] = (
                f"stalled: two iterations each lowered the OFV by less than {ofv_stall_tol}"
            )
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

    cov_log = None
    if compute_se:
        if scores is None or fd_step != SE_STEP:
            scores = _central_scores(ev, psi, SE_STEP)
        cov_log = inverse_or_none(scores.T @ scores)
    se = standard_errors(
        psi, p, d, "S-matrix (sum of outer products of per-subject scores)", cov_log
    )
    return PopulationFit(
        method="foce",
        params=params,
        ofv=ofv,
        se=se,
        history=history,
        n_subjects_used=int(n_sub),
        converged=converged,
        ebe=res,
        subjects=subjects,
        seconds=time.perf_counter() - t0,
        description="FOCE (= FOCEI: additive residual error), Gauss-Newton Laplace",
        info={"ebe_calls": ev.n_calls, **opt_info},
    )
