"""Start candidates for the EBE search from a tabulated grid of η.

The objective of every subject at every point of a fixed grid in whitened η
space (13³ points spanning ±4 prior SDs by default) costs no ODE solve once
the grid's predictions and sensitivities are tabulated (:class:`StartGrid`).
From the best grid points a capped Gauss-Newton step gives a candidate start
and the objective it promises; the likelihood is sharp (σ = 0.01) next to a
grid spacing of 2/3 prior SD, so the raw grid objective aliases and the
one-step model value does not.

Two implementations: :meth:`StartGrid.score` and :meth:`StartGrid.start`
score every grid point with matrix products (the batched engine of
:mod:`synthoct_bench.nlme.ebe`), and :func:`grid_candidates` scans the grid in
float32, compiled, and builds the one-step model only at the grid points
nearest each subject in data space and at the best point of every grid slice
along each axis (the compiled engine, with :mod:`synthoct_bench.nlme.ebe_search`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba as nb
import numpy as np

if TYPE_CHECKING:
    from synthoct_bench.nlme.ebe_problem import EBEProblem

__all__ = ["StartGrid", "capped_step_model", "grid_candidates"]


def _grid_points(n_dim: int, points: int, span: float) -> np.ndarray:
    """Whitened grid points (G, d) on [-span, span]^d."""
    axis = np.linspace(-span, span, points)
    mesh = np.meshgrid(*([axis] * n_dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


@nb.njit(cache=True, inline="always", error_model="numpy")
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


@nb.njit(cache=True, fastmath=True)
def _scan32(y_i, m_i, full, inv_s2, grid_ft32, base32, prior32, raw):
    """Raw grid objective of one subject, up to a constant, in float32 (into ``raw``).

    ``raw[k] = ½Σ m(y − f_k)²/σ² + prior_k − ½Σ m y²/σ²``: only its order is
    used (to pick grid points; the picked ones are rescored in float64), so
    single precision and a dropped constant are fine, and they halve the table
    read per subject. The (T, G) table is swept three rows at a time so that
    ``raw`` is loaded and stored once per three rows.
    """
    n_t, g = grid_ft32.shape
    if full:
        for k in range(g):
            raw[k] = base32[k]
        t = 0
        while t + 3 <= n_t:
            c0 = np.float32(-inv_s2 * y_i[t])
            c1 = np.float32(-inv_s2 * y_i[t + 1])
            c2 = np.float32(-inv_s2 * y_i[t + 2])
            r0 = grid_ft32[t]
            r1 = grid_ft32[t + 1]
            r2 = grid_ft32[t + 2]
            for k in range(g):
                raw[k] += c0 * r0[k] + c1 * r1[k] + c2 * r2[k]
            t += 3
        while t < n_t:
            c0 = np.float32(-inv_s2 * y_i[t])
            r0 = grid_ft32[t]
            for k in range(g):
                raw[k] += c0 * r0[k]
            t += 1
    else:
        for k in range(g):
            raw[k] = prior32[k]
        half = np.float32(0.5 * inv_s2)
        for t in range(n_t):
            if m_i[t] > 0.0:
                c0 = np.float32(-inv_s2 * y_i[t])
                r0 = grid_ft32[t]
                for k in range(g):
                    raw[k] += r0[k] * (half * r0[k] + c0)


@nb.njit(cache=True, fastmath=True)
def _row_col_minima(raw, n_axis, row_min, col_min):
    """Minimum of every row (last axis) and every column of the grid viewed as (R, n_axis)."""
    n_rows = row_min.shape[0]
    for c in range(n_axis):
        col_min[c] = np.inf
    for r in range(n_rows):
        best = np.float32(np.inf)
        base = r * n_axis
        for c in range(n_axis):
            v = raw[base + c]
            best = min(best, v)
            col_min[c] = min(col_min[c], v)
        row_min[r] = best


@nb.njit(cache=True, error_model="numpy")
def _stable_order(values):
    """Indices that sort ``values``, ties in index order (insertion sort: the
    arrays here hold tens of entries, where numba's np.argsort costs microseconds)."""
    n = values.shape[0]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        v = values[i]
        j = i
        while j > 0 and values[order[j - 1]] > v:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i
    return order


@nb.njit(cache=True, inline="always", error_model="numpy")
def _add_point(k, pts, seen, n_u):
    """Append grid point k to pts[:n_u] unless already there; returns the new count."""
    if seen[k]:
        return n_u
    seen[k] = True
    pts[n_u] = k
    return n_u + 1


@nb.njit(cache=True, error_model="numpy")
def _pick_points(raw, coords, n_axis, n_near, pts, seen):
    """Grid points worth a one-step model: returns their count, written into ``pts``.

    They are the ``n_near`` lowest raw objectives (nearest in data space), first
    and in order, then the lowest point of every slice of the grid along each
    axis: where many grid points give nearly the same curve (a plateau, e.g.
    absorption over before the first observation) the nearest ones all sit on
    it, and the basin that fits best would get no candidate. Each point is
    listed once (``seen`` is a scratch mask over the grid, left all False).

    The grid is C-ordered, so it is viewed as rows along the last axis: the
    row and column minima (one vectorised pass) give every slice's minimum,
    and only the few rows that can hold them are searched again.
    """
    g = raw.shape[0]
    d = coords.shape[1]
    n_rows = g // n_axis
    row_min = np.empty(n_rows, dtype=np.float32)
    col_min = np.empty(n_axis, dtype=np.float32)
    _row_col_minima(raw, n_axis, row_min, col_min)
    n_u = 0
    # nearest: every point among the n_near lowest lies in a row whose minimum
    # is at most the n_near-th lowest row minimum
    k_low = min(n_near, n_rows)
    low = np.full(k_low, np.inf, dtype=np.float32)  # the k_low lowest row minima, sorted
    for r in range(n_rows):
        v = row_min[r]
        if v < low[k_low - 1]:
            j = k_low - 1
            while j > 0 and low[j - 1] > v:
                low[j] = low[j - 1]
                j -= 1
            low[j] = v
    tau = low[k_low - 1]
    n_pool = 0
    for r in range(n_rows):
        if row_min[r] <= tau:
            for c in range(n_axis):
                n_pool += raw[r * n_axis + c] <= tau
    pool_k = np.empty(n_pool, dtype=np.int64)
    pool_v = np.empty(n_pool, dtype=np.float32)
    q = 0
    for r in range(n_rows):
        if row_min[r] <= tau:
            for c in range(n_axis):
                k = r * n_axis + c
                if raw[k] <= tau:
                    pool_k[q] = k
                    pool_v[q] = raw[k]
                    q += 1
    order = _stable_order(pool_v)  # ties by grid index
    for q in range(min(n_near, n_pool)):
        k = pool_k[order[q]]
        pts[n_u] = k
        seen[k] = True
        n_u += 1
    # the lowest point of each slice along the leading axes, from the row minima
    # (the first row in grid order that holds it) ...
    slice_v = np.full((d - 1, n_axis), np.inf, dtype=np.float32)
    slice_r = np.zeros((d - 1, n_axis), dtype=np.int64)
    for r in range(n_rows):
        v = row_min[r]
        for a in range(d - 1):
            c = coords[r * n_axis, a]
            if v < slice_v[a, c]:
                slice_v[a, c] = v
                slice_r[a, c] = r
    for a in range(d - 1):
        for c in range(n_axis):
            base = slice_r[a, c] * n_axis
            for cc in range(n_axis):
                if raw[base + cc] == slice_v[a, c]:
                    n_u = _add_point(base + cc, pts, seen, n_u)
                    break
    # ... and along the last axis (columns of the row view)
    for c in range(n_axis):
        for r in range(n_rows):
            if raw[r * n_axis + c] == col_min[c]:
                n_u = _add_point(r * n_axis + c, pts, seen, n_u)
                break
    for q in range(n_u):
        seen[pts[q]] = False
    return n_u


@nb.njit(cache=True, parallel=True, error_model="numpy")
def _candidates_kernel(y, m, grid_ft32, base32, prior32, grid_f, prior, grid_s, grid_eta,
                       coords, n_axis, inv_om, h, h_inv, inv_s2, max_step, lower, upper,
                       n_near, cand, vals):  # fmt: skip
    n = y.shape[0]
    g = grid_ft32.shape[1]
    n_t = y.shape[1]
    d = grid_eta.shape[1]
    n_pts = n_near + d * n_axis
    for i in nb.prange(n):
        pts = np.empty(n_pts, dtype=np.int64)
        seen = np.zeros(g, dtype=np.bool_)
        full = True
        for t in range(n_t):
            full = full and m[i, t] > 0.0
        raw = np.empty(g, dtype=np.float32)
        _scan32(y[i], m[i], full, inv_s2, grid_ft32, base32, prior32, raw)
        n_u = _pick_points(raw, coords, n_axis, n_near, pts, seen)
        gr = np.empty(d)
        st = np.empty(d)
        starts = np.empty((n_u, d))
        model = np.empty(n_u)
        raw_best = 0.0
        for q in range(n_u):
            k = pts[q]
            # exact (float64) objective and gradient at the grid point, in scalars
            # (the model has three random effects; grid_candidates checks)
            sse = 0.0
            g0 = 0.0
            g1 = 0.0
            g2 = 0.0
            fk = grid_f[k]
            sk = grid_s[k]
            for t in range(n_t):
                r = (y[i, t] - fk[t]) * m[i, t]
                sse += r * r
                g0 += sk[t, 0] * r
                g1 += sk[t, 1] * r
                g2 += sk[t, 2] * r
            gr[0] = grid_eta[k, 0] * inv_om[0] - inv_s2 * g0
            gr[1] = grid_eta[k, 1] * inv_om[1] - inv_s2 * g1
            gr[2] = grid_eta[k, 2] * inv_om[2] - inv_s2 * g2
            value = prior[k] + 0.5 * inv_s2 * sse
            if q == 0:
                raw_best = value
            model[q] = capped_step_model(value, gr, h[k], h_inv[k], max_step, st)
            for a in range(d):
                starts[q, a] = min(max(grid_eta[k, a] + st[a], lower[a]), upper[a])
        # the raw best grid point, the step from it, and the best model values
        for a in range(d):
            cand[i, 0, a] = grid_eta[pts[0], a]
            cand[i, 1, a] = starts[0, a]
        vals[i, 0] = raw_best
        vals[i, 1] = model[0]
        order = _stable_order(model)
        c = 2
        for q in order:
            if c >= cand.shape[1]:
                break
            if q == 0:  # already the second candidate
                continue
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

    Every grid point is scored (in float32, :func:`_scan32`); the ``n_near``
    nearest each subject in data space and the best of every grid slice along
    each axis get an exact score and the one-step Gauss-Newton model. The
    candidates are the best raw grid point (its objective), the capped step
    from it and the steps with the best model values (their model values).
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.float64)
    n = y.shape[0]
    d = grid.eta.shape[1]
    if d != 3:
        raise ValueError(f"the compiled candidate search is written for 3 random effects, got {d}")
    n_near = min(n_near, grid.f.shape[0])
    cand = np.empty((n, n_cand, d))
    vals = np.empty((n, n_cand))
    _candidates_kernel(
        y, mask, grid.f_t32, grid.base32, grid.prior32, grid.f, grid.prior,
        grid.s, grid.eta, grid.coords, int(grid.shape[0]), inv_omega, grid.h, grid.h_inv,
        float(inv_s2), float(grid.max_step), lower, upper, int(n_near), cand, vals,
    )  # fmt: skip
    return cand, vals


@nb.njit(cache=True, parallel=True)
def _model_values(obj, grad, prior_grad, h, h_inv, max_step):  # pragma: no cover - compiled
    """Objective after one capped Gauss-Newton step from every (subject, grid point)."""
    n, g = obj.shape
    d = h.shape[1]
    out = np.empty_like(obj)
    for i in nb.prange(n):
        gr = np.empty(d)
        st = np.empty(d)
        for k in range(g):
            for a in range(d):
                gr[a] = grad[i, k, a] + prior_grad[k, a]
            out[i, k] = capped_step_model(obj[i, k], gr, h[k], h_inv[k], max_step, st)
    return out


class StartGrid:
    """Tabulated predictions and sensitivities on a whitened grid of η.

    Scoring a chunk against it is a few matrix products: for every subject and
    grid point, the objective and the value of its Gauss-Newton model after
    one step (a trust-region-capped step, using the unmasked Hessian). The
    likelihood is sharp (σ = 0.01) next to a grid spacing of one prior SD, so
    the raw grid objective aliases; the one-step model value does not.
    """

    def __init__(self, prob: EBEProblem, points: int, span: float, max_step: float):
        d = prob.omega.size
        self.white = _grid_points(d, points, span)
        self.shape = (points,) * d
        self.sd = np.sqrt(prob.omega)
        self.eta = self.white * self.sd
        self.f, self.s = prob.evaluate(self.eta)
        self.prior = 0.5 * np.einsum("gd,gd->g", self.white, self.white)
        h = prob.inv_s2 * np.einsum("gtd,gte->gde", self.s, self.s)
        h[:, np.arange(d), np.arange(d)] += prob.inv_omega
        self.h = h
        self.h_inv = np.linalg.inv(h)
        g = self.f.shape[0]
        self.s_flat = self.s.transpose(1, 0, 2).reshape(self.f.shape[1], g * d)
        self.fs_flat = (
            (self.f[:, :, None] * self.s).transpose(1, 0, 2).reshape(self.f.shape[1], g * d)
        )
        self.max_step = max_step * float(np.min(self.sd))
        self.f_sq_sum = np.einsum("gt,gt->g", self.f, self.f)
        # (T, G) in float32: the compiled scan reads it by rows, once per subject.
        # Concentrations below 1e-30 (late times after fast elimination) become
        # 0: as float32 some are subnormal, and every arithmetic operation on a
        # subnormal takes a microcode assist, which doubled the scan's time
        f_t32 = np.ascontiguousarray(self.f.T, dtype=np.float32)
        f_t32[np.abs(f_t32) < 1e-30] = 0.0
        self.f_t32 = f_t32
        # the scan's per-point constants: prior, and prior + ½Σf²/σ² (all observed)
        self.prior32 = self.prior.astype(np.float32)
        self.base32 = (self.prior + 0.5 * prob.inv_s2 * self.f_sq_sum).astype(np.float32)
        # integer position of every grid point along each axis
        self.coords = np.stack(np.unravel_index(np.arange(self.f.shape[0]), self.shape), axis=1)

    def score(self, prob: EBEProblem, rows: np.ndarray):
        """(objective, one-step model value) for subjects ``rows``: two (n, G) arrays."""
        m = prob.mask[rows]
        ym = prob.y[rows] * m
        n, g, d = rows.size, self.f.shape[0], self.sd.size
        sse = np.einsum("nt,nt->n", ym, ym)[:, None] - 2.0 * ym @ self.f.T + m @ (self.f**2).T
        obj = 0.5 * prob.inv_s2 * sse + self.prior[None, :]
        grad = (-prob.inv_s2 * (ym @ self.s_flat - m @ self.fs_flat)).reshape(n, g, d)
        model = _model_values(
            obj, grad, self.eta * prob.inv_omega, self.h, self.h_inv, self.max_step
        )
        return obj, model

    def start(self, prob: EBEProblem, rows: np.ndarray, gp: np.ndarray) -> np.ndarray:
        """The capped Gauss-Newton step from grid point ``gp`` for each subject of ``rows``."""
        m = prob.mask[rows]
        e = (prob.y[rows] - self.f[gp]) * m
        grad = -prob.inv_s2 * np.einsum("ntd,nt->nd", self.s[gp], e) + self.eta[gp] * prob.inv_omega
        step = -np.einsum("nde,ne->nd", self.h_inv[gp], grad)
        norm = np.sqrt(np.einsum("nd,nd->n", step, step))
        step *= np.minimum(1.0, self.max_step / np.maximum(norm, 1e-300))[:, None]
        return np.clip(self.eta[gp] + step, prob.lower, prob.upper)

    def candidates(self, prob: EBEProblem, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compiled start candidates for subjects ``rows``: see :func:`grid_candidates`."""
        return grid_candidates(
            prob.y[rows], prob.mask[rows], self, prob.inv_omega, prob.inv_s2, prob.lower,
            prob.upper,
        )  # fmt: skip
