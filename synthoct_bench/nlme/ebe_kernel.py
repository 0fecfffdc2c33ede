"""Compiled per-subject EBE search for the paper's model (the encoder's hot path).

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
   gᵀH⁻¹g < ``tol``;
3. restarts (at most ``n_restarts``) from the other candidates that lie away
   from the answer and promise an objective below the answer's plus ``margin``
   (their promise is optimistic, so the default margin is 0), or from all of them and a
   set of fixed points when the answer looks wrong (not converged, or a χ²
   misfit); the best answer is kept.

Every subject's result depends on its own data only, so results do not
depend on batch size, chunking or thread count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from synthoct_bench.nlme.solver import _solve_one

__all__ = ["capped_step_model", "ebe_mm_oral", "grid_candidates"]


@nb.njit(cache=True, inline="always")
def _evaluate(eta, theta, dose, times, rtol, atol, f, s):
    """Prediction and sensitivities at η into f (T,) and s (T, 3); False if the solve failed."""
    ka = theta[0] * math.exp(eta[0])
    imax = theta[1] * math.exp(eta[1])
    ic50 = theta[2] * math.exp(eta[2])
    return _solve_one(ka, imax, ic50, dose, times, rtol, atol, True, f, s) >= 0


@nb.njit(cache=True)
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


@nb.njit(cache=True)
def _grad_hess(y, m, f, s, eta, inv_s2, inv_om, g, h):
    """Gradient g and Gauss-Newton Hessian h (with the prior) of the objective."""
    d = eta.shape[0]
    for a in range(d):
        g[a] = eta[a] * inv_om[a]
        for b in range(d):
            h[a, b] = 0.0
    for t in range(y.shape[0]):
        if m[t] > 0.0:
            r = (y[t] - f[t]) * inv_s2
            for a in range(d):
                g[a] -= s[t, a] * r
                sa = s[t, a] * inv_s2
                for b in range(a, d):
                    h[a, b] += sa * s[t, b]
    for a in range(d):
        h[a, a] += inv_om[a]
        for b in range(a):
            h[a, b] = h[b, a]


@nb.njit(cache=True)
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


@nb.njit(cache=True)
def _lm(y, m, eta, f, s, theta, inv_om, inv_s2, dose, times, rtol, atol, lower, upper,
        tol, max_iter, lam0, stall_tol):  # fmt: skip
    """Levenberg-Marquardt from ``eta`` (updated in place with f and s).

    Returns (phi, converged, decrement, iterations, solves).
    """
    d = eta.shape[0]
    n_t = y.shape[0]
    g, step, trial, g_new = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    hg, w_vec, resid, ysh = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    h, corr, damped, h_new = np.empty((d, d)), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    work = np.empty((d, d + 1))
    f_t, s_t = np.empty(n_t), np.empty((n_t, d))
    n_solves = 1
    if not _evaluate(eta, theta, dose, times, rtol, atol, f, s):
        return math.inf, False, math.inf, 0, n_solves
    phi = _phi(y, m, f, eta, inv_s2, inv_om)
    if not math.isfinite(phi):
        return math.inf, False, math.inf, 0, n_solves
    _grad_hess(y, m, f, s, eta, inv_s2, inv_om, g, h)
    for a in range(d):
        for b in range(d):
            corr[a, b] = 0.0
    lam = lam0
    dec = math.inf
    conv = False
    iters = 0
    for _ in range(max_iter):
        for a in range(d):
            w_vec[a] = -g[a]
        if not _solve3(h, w_vec, hg, work):
            break
        dec = 0.0
        for a in range(d):
            dec -= g[a] * hg[a]
        if dec < tol:
            conv = True
            break
        iters += 1
        for a in range(d):
            for b in range(d):
                damped[a, b] = h[a, b] + corr[a, b]
            damped[a, a] += lam * h[a, a]
        if not _solve3(damped, w_vec, step, work):
            lam = max(lam * 8.0, 1e-3)
            if lam > 1e12:
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
        n_solves += 1
        ok = _evaluate(trial, theta, dose, times, rtol, atol, f_t, s_t)
        phi_t = _phi(y, m, f_t, trial, inv_s2, inv_om) if ok else math.inf
        actual = phi - phi_t
        rho = actual / predicted if predicted > 0.0 else 0.0
        accept = math.isfinite(phi_t) and actual > 0.0
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
            # it is the ODE solver's noise, so this is converged; a stall with a
            # larger gradient is flagged instead.
            if dec < stall_tol and abs(actual) < 1e-9 * (1.0 + phi):
                conv = True
                break
            if lam > 1e12:
                break
    return phi, conv, dec, iters, n_solves


@nb.njit(cache=True)
def _better(phi_new, conv_new, phi_old, conv_old):
    """A restart replaces the answer if it is lower, or as good and converged where it was not."""
    return phi_new < phi_old - 1e-9 or (conv_new and not conv_old and phi_new <= phi_old + 1e-8)


@nb.njit(cache=True, parallel=True)
def _ebe_kernel(y, m, cand, cand_val, fixed, theta, inv_om, sd, inv_s2, dose, times, rtol,
                atol, lower, upper, tol, max_iter, lam0, stall_tol, n_restarts, margin,
                eta_out, phi_out, conv_out, dec_out, iter_out, solve_out,
                restart_out, f_out, s_out):  # fmt: skip
    n, n_c, d = cand.shape
    n_t = y.shape[1]
    for i in nb.prange(n):
        yi = y[i]
        mi = m[i]
        order = np.argsort(cand_val[i])
        eta = cand[i, order[0]].copy()
        f = f_out[i]
        s = s_out[i]
        phi, conv, dec, iters, solves = _lm(yi, mi, eta, f, s, theta, inv_om, inv_s2, dose,
                                            times, rtol, atol, lower, upper, tol, max_iter,
                                            lam0, stall_tol)  # fmt: skip
        n_obs = 0.0
        for t in range(n_t):
            n_obs += mi[t]
        pri = 0.0
        for a in range(d):
            pri += eta[a] * eta[a] * inv_om[a]
        chi2 = 2.0 * phi - pri
        suspicious = (not conv) or chi2 > n_obs + 3.0 * math.sqrt(2.0 * n_obs)
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
            far = 0.0
            for a in range(d):
                far = max(far, abs(cand[i, c, a] - first[a]) / sd[a])
            if far <= 0.3 or not math.isfinite(cand_val[i, c]):
                continue
            if not (suspicious or cand_val[i, c] < phi + margin):
                continue
            used += 1
            restarted = True
            for a in range(d):
                eta_b[a] = cand[i, c, a]
            p2, c2, d2, i2, s2 = _lm(yi, mi, eta_b, f_b, s_b, theta, inv_om, inv_s2, dose,
                                     times, rtol, atol, lower, upper, tol, max_iter, lam0,
                                     stall_tol)  # fmt: skip
            iters += i2
            solves += s2
            if _better(p2, c2, phi, conv):
                phi, conv, dec = p2, c2, d2
                eta[:] = eta_b
                f[:] = f_b
                s[:, :] = s_b
        if suspicious:
            # a still doubtful answer also retries from fixed points (as nlmixr2 does)
            for k in range(fixed.shape[0]):
                if conv:
                    pri = 0.0
                    for a in range(d):
                        pri += eta[a] * eta[a] * inv_om[a]
                    if 2.0 * phi - pri <= n_obs + 3.0 * math.sqrt(2.0 * n_obs):
                        break
                restarted = True
                for a in range(d):
                    eta_b[a] = fixed[k, a]
                p2, c2, d2, i2, s2 = _lm(yi, mi, eta_b, f_b, s_b, theta, inv_om, inv_s2, dose,
                                         times, rtol, atol, lower, upper, tol, max_iter, lam0,
                                         stall_tol)  # fmt: skip
                iters += i2
                solves += s2
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
        restart_out[i] = restarted


def ebe_mm_oral(y, mask, cand, cand_val, fixed, params, times, dose, lower, upper, opts):
    """Run the compiled search on one chunk; returns the per-subject arrays as a dict.

    ``cand`` (n, C, d) are candidate starts with promised objectives ``cand_val``
    (n, C); ``fixed`` (F, d) extra starts for doubtful answers.
    """
    from synthoct_bench.nlme.solver import DEFAULT_ATOL, DEFAULT_RTOL

    n, _, d = cand.shape
    n_t = y.shape[1]
    omega = np.asarray(params.omega, dtype=np.float64)
    out = {
        "eta": np.empty((n, d)),
        "phi": np.empty(n),
        "conv": np.empty(n, dtype=np.bool_),
        "dec": np.empty(n),
        "iters": np.empty(n, dtype=np.int64),
        "solves": np.empty(n, dtype=np.int64),
        "restarted": np.empty(n, dtype=np.bool_),
        "f": np.empty((n, n_t)),
        "s": np.empty((n, n_t, d)),
    }
    _ebe_kernel(
        np.ascontiguousarray(y, dtype=np.float64),
        np.ascontiguousarray(mask, dtype=np.float64),
        np.ascontiguousarray(cand, dtype=np.float64),
        np.ascontiguousarray(cand_val, dtype=np.float64),
        np.ascontiguousarray(fixed, dtype=np.float64).reshape(-1, d),
        np.asarray(params.theta, dtype=np.float64),
        1.0 / omega,
        np.sqrt(omega),
        1.0 / float(params.sigma) ** 2,
        float(dose),
        np.ascontiguousarray(times, dtype=np.float64),
        DEFAULT_RTOL,
        DEFAULT_ATOL,
        np.asarray(lower, dtype=np.float64),
        np.asarray(upper, dtype=np.float64),
        float(opts["tol"]),
        int(opts["max_iter"]),
        float(opts["lam0"]),
        1e-8,
        int(opts["n_restarts"]),
        float(opts["restart_margin"]),
        out["eta"],
        out["phi"],
        out["conv"],
        out["dec"],
        out["iters"],
        out["solves"],
        out["restarted"],
        out["f"],
        out["s"],
    )
    return out


@nb.njit(cache=True, inline="always")
def capped_step_model(value, gr, h_k, h_inv_k, max_step, st):
    """One-step Gauss-Newton model at a grid point: capped step into ``st``, model value returned.

    ``value`` is the objective at the point, ``gr`` its gradient, ``h_k`` and
    ``h_inv_k`` the Gauss-Newton Hessian there and its inverse. The step is
    scaled to length ``max_step`` at most before the quadratic form uses it.
    """
    d = gr.shape[0]
    norm = 0.0
    for a in range(d):
        acc = 0.0
        for b in range(d):
            acc -= h_inv_k[a, b] * gr[b]
        st[a] = acc
        norm += acc * acc
    norm = math.sqrt(norm)
    scale = 1.0 if norm <= max_step else max_step / norm
    for a in range(d):
        st[a] *= scale
    val = value
    for a in range(d):
        val += gr[a] * st[a]
        acc = 0.0
        for b in range(d):
            acc += h_k[a, b] * st[b]
        val += 0.5 * st[a] * acc
    return val


@nb.njit(cache=True, parallel=True)
def _candidates_kernel(y, m, grid_ft, grid_f, f_sq, prior, grid_s, grid_eta, coords, n_axis,
                       inv_om, h, h_inv, inv_s2, max_step, lower, upper, n_near, cand,
                       vals):  # fmt: skip
    n = y.shape[0]
    g = grid_ft.shape[1]
    n_t = y.shape[1]
    d = grid_eta.shape[1]
    n_pts = n_near + d * n_axis
    for i in nb.prange(n):
        yy = 0.0
        full = True
        for t in range(n_t):
            yy += m[i, t] * y[i, t] * y[i, t]
            full = full and m[i, t] > 0.0
        # raw objective at every grid point, ½Σ m(y − f)²/σ² + prior, as 21
        # contiguous axpy passes over the (T, G) table (vectorised; no (N, G)
        # intermediate goes through memory)
        raw = np.empty(g)
        if full:
            for k in range(g):
                raw[k] = prior[k] + 0.5 * inv_s2 * (yy + f_sq[k])
            for t in range(n_t):
                c = -inv_s2 * y[i, t]
                row = grid_ft[t]
                for k in range(g):
                    raw[k] += c * row[k]
        else:
            for k in range(g):
                raw[k] = prior[k] + 0.5 * inv_s2 * yy
            for t in range(n_t):
                if m[i, t] > 0.0:
                    c = 0.5 * inv_s2
                    two_y = 2.0 * y[i, t]
                    row = grid_ft[t]
                    for k in range(g):
                        raw[k] += c * row[k] * (row[k] - two_y)
        # the n_near grid points nearest in data space (lowest raw objective)
        near = np.empty(n_near, dtype=np.int64)
        near_v = np.full(n_near, np.inf)
        # ...and the best point of every slice of the grid along each axis: where
        # many grid points give nearly the same curve (a plateau, e.g. absorption
        # over before the first observation) the nearest ones all sit on it, and
        # the basin that fits best would get no candidate
        slice_k = np.zeros((d, n_axis), dtype=np.int64)
        slice_v = np.full((d, n_axis), np.inf)
        for k in range(g):
            v = raw[k]
            for a in range(d):
                c = coords[k, a]
                if v < slice_v[a, c]:
                    slice_v[a, c] = v
                    slice_k[a, c] = k
            if v < near_v[n_near - 1]:
                j = n_near - 1
                while j > 0 and near_v[j - 1] > v:
                    near_v[j] = near_v[j - 1]
                    near[j] = near[j - 1]
                    j -= 1
                near_v[j] = v
                near[j] = k
        gr = np.empty(d)
        st = np.empty(d)
        pts = np.empty(n_pts, dtype=np.int64)
        pts_v = np.empty(n_pts)
        pts[:n_near] = near
        pts_v[:n_near] = near_v
        for a in range(d):
            for c in range(n_axis):
                pts[n_near + a * n_axis + c] = slice_k[a, c]
                pts_v[n_near + a * n_axis + c] = slice_v[a, c]
        starts = np.empty((n_pts, d))
        model = np.empty(n_pts)
        for q in range(n_pts):
            k = pts[q]
            for a in range(d):
                gr[a] = grid_eta[k, a] * inv_om[a]
            for t in range(n_t):
                if m[i, t] > 0.0:
                    e = (y[i, t] - grid_f[k, t]) * inv_s2
                    for a in range(d):
                        gr[a] -= grid_s[k, t, a] * e
            model[q] = capped_step_model(pts_v[q], gr, h[k], h_inv[k], max_step, st)
            for a in range(d):
                starts[q, a] = min(max(grid_eta[k, a] + st[a], lower[a]), upper[a])
        # the raw best grid point, the step from it, and the best model values
        for a in range(d):
            cand[i, 0, a] = grid_eta[near[0], a]
            cand[i, 1, a] = starts[0, a]
        vals[i, 0] = near_v[0]
        vals[i, 1] = model[0]
        order = np.argsort(model)
        chosen = np.full(cand.shape[1], -1, dtype=np.int64)
        chosen[1] = pts[0]
        c = 2
        for q in order:
            if c >= cand.shape[1]:
                break
            dup = False
            for j in range(1, c):
                dup = dup or chosen[j] == pts[q]
            if dup:  # a grid point can be both near and a slice's best
                continue
            chosen[c] = pts[q]
            for a in range(d):
                cand[i, c, a] = starts[q, a]
            vals[i, c] = model[q]
            c += 1
        while c < cand.shape[1]:
            for a in range(d):
                cand[i, c, a] = cand[i, 1, a]
            vals[i, c] = math.inf
            c += 1


def grid_candidates(y, mask, grid, inv_omega, inv_s2, lower, upper, n_near=16, n_cand=5):
    """Candidate starts (n, n_cand, d) and the objectives they promise, from a tabulated grid.

    Only the ``n_near`` grid points nearest each subject in data space get the
    one-step Gauss-Newton model; the candidates are the raw best point, the
    step from it and the steps with the best model values.
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.float64)
    n = y.shape[0]
    d = grid.eta.shape[1]
    n_near = min(n_near, grid.f.shape[0])
    cand = np.empty((n, n_cand, d))
    vals = np.empty((n, n_cand))
    _candidates_kernel(
        y, mask, grid.f_t, grid.f, grid.f_sq_sum, grid.prior, grid.s, grid.eta, grid.coords,
        int(grid.shape[0]), inv_omega, grid.h, grid.h_inv, float(inv_s2), float(grid.max_step),
        lower, upper, int(n_near), cand, vals,
    )  # fmt: skip
    return cand, vals
