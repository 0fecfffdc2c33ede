"""Compiled per-subject EBE search for the paper's model: Levenberg-Marquardt and restarts.

This is the encoder's hot path (``engine="compiled"`` of
:func:`~synthoct_bench.nlme.ebe.ebe`); its start candidates come from
:mod:`synthoct_bench.nlme.ebe_grid`.

The batched Levenberg-Marquardt of :mod:`synthoct_bench.nlme.ebe` pays a
Python round trip (tens of array operations and one decoder call) per
iteration for the whole active set, so its cost is set by the slowest subjects
and the per-call overhead, not by the ODE solves. Here each subject runs its
own Levenberg-Marquardt search inside one ``numba.prange`` loop, calling the
decoder's per-subject Radau kernel (:func:`~synthoct_bench.nlme.solver._solve_one`)
directly: a subject that converges in four solves costs four solves.

The algorithm is the batched one, subject by subject:

1. start at the best of the candidate starts tabulated by the grid (sorted by
   their one-step Gauss-Newton model value, so the first start costs no
   extra solve);
2. Levenberg-Marquardt on the Gauss-Newton Hessian plus the NL2SOL secant
   estimate of the second-order term, converged when the Newton decrement
   gᵀH⁻¹g < ``tol``. The first iterations run on a coarse ODE solver (half
   the cost), the last ones, which alone can declare convergence, on the
   accurate one;
3. restarts (at most ``n_restarts``) from the other candidates that lie away
   from the answer and promise an objective below the answer's plus ``margin``
   (their promise is optimistic, so the default margin is 0), or from all of them and a
   set of fixed points when the answer looks wrong (not converged, or a χ²
   misfit); the best answer is kept. A restart is abandoned as soon as its
   quadratic model says it cannot beat the answer (plus the margin); the
   lowest converged mode away from the answer is reported as the runner-up.

Every subject's result depends on its own data only, so results do not
depend on batch size, chunking or thread count.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numba as nb
import numpy as np

from synthoct_bench.nlme.ebe_problem import (
    EBEOptions,
)
from synthoct_bench.nlme.solver import DEFAULT_ATOL, DEFAULT_RTOL, _solve_one

if TYPE_CHECKING:
    from synthoct_bench.nlme.model import PopulationParams

__all__ = [
    "MISFIT_Z",
    "SAME_BASIN_SD",
    "SearchResult",
    "search_mm_oral",
]

#: allowance, relative to 1 + Φ, for the coarse objective's error in the tests
#: that compare it with an accurate one (measured: at most 5.6e-4 on 20,000
#: answers and 20,000 points drawn at 1.5 prior SD)
COARSE_SLACK = 2e-3


@nb.njit(cache=True, inline="always", error_model="numpy")
def _evaluate(eta, theta, dose, times, rtol, atol, f, s):
    """Prediction and sensitivities at η into f (T,) and s (T, 3); False if the solve failed."""
    ka = theta[0] * math.exp(eta[0])
    imax = theta[1] * math.exp(eta[1])
    ic50 = theta[2] * math.exp(eta[2])
    return _solve_one(ka, imax, ic50, dose, times, rtol, atol, True, f, s) >= 0


@nb.njit(cache=True, error_model="numpy")
def _phi(y, m, f, eta, inv_s2, inv_om):
    """Objective without its constant: ½Σ m(y − f)²/σ² + ½ηᵀΩ⁻¹η (inf if f is not finite)."""
    acc = 0.0
    for t in range(y.shape[0]):
        if m[t] > 0.0:
            r = y[t] - f[t]
            acc += r * r
    if not math.isfinite(acc):
        return math.inf
    pri = 0.0
    for a in range(eta.shape[0]):
        pri += eta[a] * eta[a] * inv_om[a]
    return 0.5 * inv_s2 * acc + 0.5 * pri


@nb.njit(cache=True, error_model="numpy")
def _grad_hess(y, m, f, s, eta, inv_s2, inv_om, g, h):
    """Gradient g and Gauss-Newton Hessian h (with the prior) of the objective.

    Written out for the three random effects of the compiled model (the
    solver's sensitivities are three): scalar accumulators in one pass over
    the observations, 4x faster than loops over the small matrix.
    """
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    h00 = 0.0
    h01 = 0.0
    h02 = 0.0
    h11 = 0.0
    h12 = 0.0
    h22 = 0.0
    for t in range(y.shape[0]):
        if m[t] > 0.0:
            r = y[t] - f[t]
            s0 = s[t, 0]
            s1 = s[t, 1]
            s2 = s[t, 2]
            g0 += s0 * r
            g1 += s1 * r
            g2 += s2 * r
            h00 += s0 * s0
            h01 += s0 * s1
            h02 += s0 * s2
            h11 += s1 * s1
            h12 += s1 * s2
            h22 += s2 * s2
    g[0] = eta[0] * inv_om[0] - inv_s2 * g0
    g[1] = eta[1] * inv_om[1] - inv_s2 * g1
    g[2] = eta[2] * inv_om[2] - inv_s2 * g2
    h[0, 0] = inv_s2 * h00 + inv_om[0]
    h[1, 1] = inv_s2 * h11 + inv_om[1]
    h[2, 2] = inv_s2 * h22 + inv_om[2]
    h[0, 1] = h[1, 0] = inv_s2 * h01
    h[0, 2] = h[2, 0] = inv_s2 * h02
    h[1, 2] = h[2, 1] = inv_s2 * h12


@nb.njit(cache=True, error_model="numpy")
def _solve3(a_in, b_in, x, work):
    """x = a⁻¹b for a small dense system by Gaussian elimination with partial pivoting.

    Returns False when the matrix is numerically singular.
    """
    d = b_in.shape[0]
    for i in range(d):
        for j in range(d):
            work[i, j] = a_in[i, j]
        work[i, d] = b_in[i]
    for c in range(d):
        p = c
        big = abs(work[c, c])
        for r in range(c + 1, d):
            if abs(work[r, c]) > big:
                big = abs(work[r, c])
                p = r
        if big == 0.0 or not math.isfinite(big):
            return False
        if p != c:
            for j in range(d + 1):
                tmp = work[c, j]
                work[c, j] = work[p, j]
                work[p, j] = tmp
        for r in range(c + 1, d):
            fac = work[r, c] / work[c, c]
            for j in range(c, d + 1):
                work[r, j] -= fac * work[c, j]
    for i in range(d - 1, -1, -1):
        acc = work[i, d]
        for j in range(i + 1, d):
            acc -= work[i, j] * x[j]
        x[i] = acc / work[i, i]
    return True


@nb.njit(cache=True, inline="always", error_model="numpy")
def _at_point(y, m, eta, theta, inv_om, inv_s2, dose, times, rtol, atol, f, s, g, h):
    """Solve at η (into f, s) and return the objective, with its gradient g and GN Hessian h."""
    if not _evaluate(eta, theta, dose, times, rtol, atol, f, s):
        return math.inf
    phi = _phi(y, m, f, eta, inv_s2, inv_om)
    if math.isfinite(phi):
        _grad_hess(y, m, f, s, eta, inv_s2, inv_om, g, h)
    return phi


@nb.njit(cache=True, error_model="numpy")
def _lm(y, m, eta, f, s, theta, inv_om, inv_s2, dose, times, tols, lower, upper,
        tol, max_iter, lam0, stall_tol, phi_cap, abandon, eta_ref, dup_tol):  # fmt: skip
    """Levenberg-Marquardt from ``eta`` (updated in place with f and s).

    ``tols`` = (rtol, atol, coarse rtol, coarse atol, switch). With switch > 0
    the search starts on the coarse solver (half the cost of an accurate
    solve) and moves to the accurate one once the Newton decrement is below
    ``switch``: the first accurate solve is the next trial point, accepted
    unless it is worse than the coarse objective by more than the coarse
    solver's error (then the current point is solved again, accurately).
    Convergence is only ever declared on the accurate solver, and everything
    returned comes from it.

    A restart passes the best objective found so far as ``phi_cap``: the
    search is abandoned (not converged) as soon as it cannot beat it, when the
    objective less ``abandon`` Newton decrements (the quadratic model
    predicts a further decrease of half of one) is still above the cap. With
    ``dup_tol`` > 0 it is also abandoned once it is back in the converged
    answer ``eta_ref``'s basin: within a squared distance ``dup_tol`` in the
    metric of the Gauss-Newton Hessian (posterior SDs), where it can only
    reconverge to that answer. An abandoned search returns an infinite objective.
    Returns (phi, converged, decrement, iterations, accurate solves, coarse solves).
    """
    d = eta.shape[0]
    n_t = y.shape[0]
    g, step, trial, g_new = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    hg, w_vec, resid, ysh = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    h, corr, damped, h_new = np.empty((d, d)), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    work = np.empty((d, d + 1))
    f_t, s_t = np.empty(n_t), np.empty((n_t, d))
    n_solves = 0
    n_coarse = 0
    coarse = tols[4] > 0.0  # the current point's f, s, φ come from the coarse solver
    phi = math.inf
    if coarse:
        n_coarse += 1
        phi = _at_point(y, m, eta, theta, inv_om, inv_s2, dose, times, tols[2], tols[3], f, s, g, h)
        coarse = math.isfinite(phi)
    if not coarse:
        n_solves += 1
        phi = _at_point(y, m, eta, theta, inv_om, inv_s2, dose, times, tols[0], tols[1], f, s, g, h)
    if not math.isfinite(phi):
        return math.inf, False, math.inf, 0, n_solves, n_coarse
    for a in range(d):
        for b in range(d):
            corr[a, b] = 0.0
    lam = lam0
    dec = math.inf
    conv = False
    iters = 0
    refresh = False  # solve the current point again, accurately
    stopped = False
    for _ in range(max_iter):
        if refresh:
            refresh = False
            coarse = False
            n_solves += 1
            phi = _at_point(y, m, eta, theta, inv_om, inv_s2, dose, times, tols[0], tols[1],
                            f, s, g, h)  # fmt: skip
            if not math.isfinite(phi):
                return math.inf, False, math.inf, iters, n_solves, n_coarse
        for a in range(d):
            w_vec[a] = -g[a]
        if not _solve3(h, w_vec, hg, work):
            refresh = coarse
            if coarse:
                continue
            break
        dec = 0.0
        for a in range(d):
            dec -= g[a] * hg[a]
        # the trial below is the first accurate solve
        first_accurate = coarse and dec < tols[4]
        if not coarse and dec < tol:
            conv = True
            break
        slack = COARSE_SLACK * (1.0 + phi) if coarse else 0.0
        if phi - abandon * dec > phi_cap + slack:
            stopped = True
            break
        if dup_tol > 0.0:
            q = 0.0
            for a in range(d):
                for b in range(d):
                    q += (eta[a] - eta_ref[a]) * h[a, b] * (eta[b] - eta_ref[b])
            if q < dup_tol:
                stopped = True
                break
        iters += 1
        for a in range(d):
            for b in range(d):
                damped[a, b] = h[a, b] + corr[a, b]
            damped[a, a] += lam * h[a, a]
        if not _solve3(damped, w_vec, step, work):
            lam = max(lam * 8.0, 1e-3)
            refresh = coarse and lam > 1e12
            if lam > 1e12 and not coarse:
                break
            continue
        for a in range(d):
            v = eta[a] + step[a]
            trial[a] = min(max(v, lower[a]), upper[a])
            step[a] = trial[a] - eta[a]
        predicted = 0.0
        for a in range(d):
            quad = 0.0
            for b in range(d):
                quad += (h[a, b] + corr[a, b]) * step[b]
            predicted -= g[a] * step[a] + 0.5 * step[a] * quad
        on_coarse = coarse and not first_accurate
        if on_coarse:
            n_coarse += 1
            ok = _evaluate(trial, theta, dose, times, tols[2], tols[3], f_t, s_t)
        else:
            n_solves += 1
            ok = _evaluate(trial, theta, dose, times, tols[0], tols[1], f_t, s_t)
        phi_t = _phi(y, m, f_t, trial, inv_s2, inv_om) if ok else math.inf
        actual = phi - phi_t
        rho = actual / predicted if predicted > 0.0 else 0.0
        accept = math.isfinite(phi_t) and (actual > 0.0 or (first_accurate and actual > -slack))
        if first_accurate and not accept:
            refresh = True
            continue
        if accept:
            _grad_hess(y, m, f_t, s_t, trial, inv_s2, inv_om, g_new, h_new)
            # NL2SOL secant update of the second-order term A (Dennis, Gay & Welsch 1981)
            for a in range(d):
                acc = 0.0
                for t in range(y.shape[0]):
                    if m[t] > 0.0:
                        acc += (s_t[t, a] - s[t, a]) * (y[t] - f_t[t])
                ysh[a] = -inv_s2 * acc
                w_vec[a] = g_new[a] - g[a]
            ws = 0.0
            ww = 0.0
            ss = 0.0
            for a in range(d):
                ws += w_vec[a] * step[a]
                ww += w_vec[a] * w_vec[a]
                ss += step[a] * step[a]
                acc = ysh[a]
                for b in range(d):
                    acc -= corr[a, b] * step[b]
                resid[a] = acc
            if ws > 1e-14 * math.sqrt(ww * ss):
                rs = 0.0
                for a in range(d):
                    rs += resid[a] * step[a]
                for a in range(d):
                    for b in range(d):
                        corr[a, b] += (resid[a] * w_vec[b] + w_vec[a] * resid[b]) / ws - (
                            rs / (ws * ws)
                        ) * (w_vec[a] * w_vec[b])
            for a in range(d):
                eta[a] = trial[a]
                g[a] = g_new[a]
                for b in range(d):
                    h[a, b] = h_new[a, b]
            for t in range(y.shape[0]):
                f[t] = f_t[t]
                for a in range(d):
                    s[t, a] = s_t[t, a]
            phi = phi_t
            coarse = on_coarse
            if rho > 0.75:
                lam = lam / 5.0
            elif rho < 0.25:
                lam = max(lam * 3.0, 1e-4)
        else:
            lam = max(lam * 8.0, 1e-3)
            for a in range(d):
                for b in range(d):
                    corr[a, b] *= 0.5
        lam = max(lam, 1e-12)
        if not accept:
            # No decrease possible although the gradient is tiny: what is left of
            # it is the ODE solver's noise, so this is converged (on the coarse
            # solver, time to switch); a stall with a larger gradient is flagged.
            if coarse and (dec < stall_tol or lam > 1e12):
                refresh = True
                continue
            if dec < stall_tol and abs(actual) < 1e-9 * (1.0 + phi):
                conv = True
                break
            if lam > 1e12:
                break
    if stopped:
        return math.inf, False, dec, iters, n_solves, n_coarse
    if coarse or refresh:
        # out of iterations before the switch: report the accurate objective
        n_solves += 1
        phi = _at_point(y, m, eta, theta, inv_om, inv_s2, dose, times, tols[0], tols[1],
                        f, s, g, h)  # fmt: skip
    return phi, conv, dec, iters, n_solves, n_coarse


@nb.njit(cache=True, error_model="numpy")
def _better(phi_new, conv_new, phi_old, conv_old):
    """A restart replaces the answer if it is lower, or as good and converged where it was not."""
    return phi_new < phi_old - 1e-9 or (conv_new and not conv_old and phi_new <= phi_old + 1e-8)


_N_SEEN = 8  # distinct answers remembered per subject
#: two answers (or a start and an answer) further apart than this, in prior SDs
#: along some axis, are taken to lie in different basins
SAME_BASIN_SD = 0.3
#: a converged answer whose χ² exceeds n_obs by more than this many of its SDs
#: looks wrong and earns the fixed-point retries
MISFIT_Z = 3.0
#: ...and when it is back within 0.1 posterior SD of the converged answer
#: (squared, in the Gauss-Newton metric), where it can only reconverge to it:
#: 5% fewer solves on 20,000 subjects, objectives within 4e-6
DUPLICATE = 1e-2


@nb.njit(cache=True, inline="always", error_model="numpy")
def _misfit(phi, eta, inv_om, n_obs):
    """True when the data part of the objective, χ² = 2Φ − ηᵀΩ⁻¹η, is implausibly large."""
    pri = 0.0
    for a in range(eta.shape[0]):
        pri += eta[a] * eta[a] * inv_om[a]
    return 2.0 * phi - pri > n_obs + MISFIT_Z * math.sqrt(2.0 * n_obs)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _distance_sd(a, b, sd):
    """Largest per-axis distance between two η, in prior SDs."""
    far = 0.0
    for k in range(a.shape[0]):
        far = max(far, abs(a[k] - b[k]) / sd[k])
    return far


@nb.njit(cache=True, error_model="numpy")
def _note_answer(eta, phi, sd, seen_eta, seen_phi, n_seen):
    """Remember a converged answer (one per basin, the lowest); returns the new count.

    A full list drops its highest answer for a lower one.
    """
    for k in range(n_seen):
        if _distance_sd(seen_eta[k], eta, sd) <= SAME_BASIN_SD:
            if phi < seen_phi[k]:
                seen_phi[k] = phi
                seen_eta[k] = eta
            return n_seen
    if n_seen < seen_phi.shape[0]:
        seen_eta[n_seen] = eta
        seen_phi[n_seen] = phi
        return n_seen + 1
    worst = np.argmax(seen_phi)
    if phi < seen_phi[worst]:
        seen_eta[worst] = eta
        seen_phi[worst] = phi
    return n_seen


@nb.njit(cache=True, parallel=True, error_model="numpy")
def _search_kernel(y, m, cand, cand_val, fixed, theta, inv_om, sd, inv_s2, dose, times, tols,
                   first_tols, lower, upper, tol, max_iter, lam0, stall_tol, n_restarts, margin,
                   abandon, eta_out, phi_out, conv_out, dec_out, iter_out, solve_out,
                   restart_out, f_out, s_out, cov_out, alt_eta_out, alt_phi_out,
                   coarse_out):  # fmt: skip
    """Every subject's search (one ``prange`` iteration each), into the ``*_out`` arrays.

    Called by :func:`search_mm_oral` only, which names every argument.
    """
    n, n_c, d = cand.shape
    n_t = y.shape[1]
    for i in nb.prange(n):
        # the distinct converged answers met on the way (for the runner-up mode)
        seen_eta = np.empty((_N_SEEN, d))
        seen_phi = np.empty(_N_SEEN)
        n_seen = 0
        yi = y[i]
        mi = m[i]
        order = np.argsort(cand_val[i])
        eta = cand[i, order[0]].copy()
        f = f_out[i]
        s = s_out[i]
        phi, conv, dec, iters, solves, n_co = _lm(yi, mi, eta, f, s, theta, inv_om, inv_s2,
                                                  dose, times, first_tols, lower, upper, tol,
                                                  max_iter, lam0, stall_tol, math.inf, abandon,
                                                  eta, 0.0)  # fmt: skip
        n_obs = 0.0
        for t in range(n_t):
            n_obs += mi[t]
        suspicious = (not conv) or _misfit(phi, eta, inv_om, n_obs)
        if conv:
            n_seen = _note_answer(eta, phi, sd, seen_eta, seen_phi, n_seen)
        restarted = False
        eta_b = np.empty(d)
        f_b = np.empty(n_t)
        s_b = np.empty((n_t, d))
        used = 0
        first = eta.copy()
        for k in range(1, n_c):
            if used >= n_restarts:
                break
            c = order[k]
            if not math.isfinite(cand_val[i, c]):
                continue
            if _distance_sd(cand[i, c], first, sd) <= SAME_BASIN_SD:
                continue
            if not (suspicious or cand_val[i, c] < phi + margin):
                continue
            used += 1
            restarted = True
            for a in range(d):
                eta_b[a] = cand[i, c, a]
            p2, c2, d2, i2, s2, co2 = _lm(yi, mi, eta_b, f_b, s_b, theta, inv_om, inv_s2,
                                          dose, times, tols, lower, upper, tol, max_iter, lam0,
                                          stall_tol, phi + max(margin, 1e-8), abandon, eta,
                                          DUPLICATE if conv else 0.0)  # fmt: skip
            iters += i2
            solves += s2
            n_co += co2
            if c2:
                n_seen = _note_answer(eta_b, p2, sd, seen_eta, seen_phi, n_seen)
            if _better(p2, c2, phi, conv):
                phi, conv, dec = p2, c2, d2
                eta[:] = eta_b
                f[:] = f_b
                s[:, :] = s_b
        if suspicious:
            # a still doubtful answer also retries from fixed points (as nlmixr2 does)
            for k in range(fixed.shape[0]):
                if conv and not _misfit(phi, eta, inv_om, n_obs):
                    break
                restarted = True
                for a in range(d):
                    eta_b[a] = fixed[k, a]
                p2, c2, d2, i2, s2, co2 = _lm(yi, mi, eta_b, f_b, s_b, theta, inv_om, inv_s2,
                                              dose, times, tols, lower, upper, tol, max_iter, lam0,
                                              stall_tol, phi + 1e-8, abandon, eta,
                                              DUPLICATE if conv else 0.0)  # fmt: skip
                iters += i2
                solves += s2
                n_co += co2
                if c2:
                    n_seen = _note_answer(eta_b, p2, sd, seen_eta, seen_phi, n_seen)
                if _better(p2, c2, phi, conv):
                    phi, conv, dec = p2, c2, d2
                    eta[:] = eta_b
                    f[:] = f_b
                    s[:, :] = s_b
        eta_out[i] = eta
        phi_out[i] = phi
        conv_out[i] = conv
        dec_out[i] = dec
        iter_out[i] = iters
        solve_out[i] = solves
        coarse_out[i] = n_co
        restart_out[i] = restarted
        # Laplace covariance: the inverse Gauss-Newton Hessian at the answer
        g_c = np.empty(d)
        h_c = np.empty((d, d))
        unit = np.zeros(d)
        col = np.empty(d)
        work = np.empty((d, d + 1))
        _grad_hess(yi, mi, f, s, eta, inv_s2, inv_om, g_c, h_c)
        for b in range(d):
            unit[b] = 1.0
            if not _solve3(h_c, unit, col, work):
                col[:] = np.nan
            unit[b] = 0.0
            for a in range(d):
                cov_out[i, a, b] = col[a]
        # runner-up: the lowest other converged answer away from this one
        alt_phi_out[i] = math.inf
        for k in range(n_seen):
            if _distance_sd(seen_eta[k], eta, sd) > SAME_BASIN_SD and seen_phi[k] < alt_phi_out[i]:
                alt_phi_out[i] = seen_phi[k]
                alt_eta_out[i] = seen_eta[k]
        if not math.isfinite(alt_phi_out[i]):
            alt_eta_out[i] = np.nan


class SearchResult(NamedTuple):
    """Per-subject results of :func:`search_mm_oral`; the first axis is the subject.

    ``objective`` is Φ at ``eta`` without its constant, ``decrement`` the final
    Newton decrement, ``n_iter`` the iterations of all searches, ``ipred`` and
    ``sensitivities`` the prediction at ``eta`` and its d / d η, ``cov`` the
    Laplace covariance (inverse Gauss-Newton Hessian). ``alt_eta`` and
    ``alt_objective`` are the runner-up (the lowest other converged mode met;
    NaN and inf where none); ``n_solves`` and ``n_coarse_solves`` count the ODE
    solves on the accurate and on the coarse solver.
    """

    eta: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    decrement: np.ndarray
    n_iter: np.ndarray
    restarted: np.ndarray
    ipred: np.ndarray
    sensitivities: np.ndarray
    cov: np.ndarray
    alt_eta: np.ndarray
    alt_objective: np.ndarray
    n_solves: np.ndarray
    n_coarse_solves: np.ndarray


def search_mm_oral(
    y: np.ndarray,
    mask: np.ndarray,
    cand: np.ndarray,
    cand_val: np.ndarray,
    fixed: np.ndarray,
    params: PopulationParams,
    times: np.ndarray,
    dose: float,
    lower: np.ndarray,
    upper: np.ndarray,
    options: EBEOptions,
    *,
    warm_start: bool = False,
) -> SearchResult:
    """Run the compiled search on one chunk of subjects.

    ``cand`` (n, C, d) are candidate starts with promised objectives ``cand_val``
    (n, C); ``fixed`` (F, d) extra starts for doubtful answers; the search stays
    within [``lower``, ``upper``]. ``options`` supplies the search's settings
    (``tol``, ``max_iter``, ``lam0``, ``stall_tol``, ``n_restarts``,
    ``restart_margin``, ``abandon`` and the coarse solver's ``coarse_rtol``,
    ``coarse_atol`` and ``coarse_switch``, where 0 turns the coarse phase
    off). ``warm_start`` marks the first candidate as a warm start, searched on
    the accurate solver alone: near its answer a coarse solve only adds cost.
    """
    if options.restart_margin is None:
        raise ValueError("options.restart_margin must be set (ebe() picks it per engine)")
    n, _, d = cand.shape
    n_t = y.shape[1]
    omega = np.asarray(params.omega, dtype=np.float64)
    tols = (
        DEFAULT_RTOL,
        DEFAULT_ATOL,
        float(options.coarse_rtol),
        float(options.coarse_atol),
        float(options.coarse_switch),
    )
    out = SearchResult(
        eta=np.empty((n, d)),
        objective=np.empty(n),
        converged=np.empty(n, dtype=np.bool_),
        decrement=np.empty(n),
        n_iter=np.empty(n, dtype=np.int64),
        restarted=np.empty(n, dtype=np.bool_),
        ipred=np.empty((n, n_t)),
        sensitivities=np.empty((n, n_t, d)),
        cov=np.empty((n, d, d)),
        alt_eta=np.empty((n, d)),
        alt_objective=np.empty(n),
        n_solves=np.empty(n, dtype=np.int64),
        n_coarse_solves=np.empty(n, dtype=np.int64),
    )
    _search_kernel(
        y=np.ascontiguousarray(y, dtype=np.float64),
        m=np.ascontiguousarray(mask, dtype=np.float64),
        cand=np.ascontiguousarray(cand, dtype=np.float64),
        cand_val=np.ascontiguousarray(cand_val, dtype=np.float64),
        fixed=np.ascontiguousarray(fixed, dtype=np.float64).reshape(-1, d),
        theta=np.asarray(params.theta, dtype=np.float64),
        inv_om=1.0 / omega, sd=np.sqrt(omega), inv_s2=1.0 / float(params.sigma) ** 2,
        dose=float(dose), times=np.ascontiguousarray(times, dtype=np.float64),
        tols=tols, first_tols=(*tols[:4], 0.0) if warm_start else tols,
        lower=np.asarray(lower, dtype=np.float64), upper=np.asarray(upper, dtype=np.float64),
        tol=float(options.tol), max_iter=int(options.max_iter), lam0=float(options.lam0),
        stall_tol=float(options.stall_tol), n_restarts=int(options.n_restarts),
        margin=float(options.restart_margin), abandon=float(options.abandon),
        eta_out=out.eta, phi_out=out.objective, conv_out=out.converged, dec_out=out.decrement,
        iter_out=out.n_iter, solve_out=out.n_solves, restart_out=out.restarted,
        f_out=out.ipred, s_out=out.sensitivities, cov_out=out.cov, alt_eta_out=out.alt_eta,
        alt_phi_out=out.alt_objective, coarse_out=out.n_coarse_solves,
    )  # fmt: skip
    return out
