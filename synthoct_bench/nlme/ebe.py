"""Empirical Bayes estimates (EBE): the NLME model used as an encoder.

For each subject i with observations y_i (NaN = missing) the EBE is the mode of
p(η | y_i), the minimiser of the per-subject objective

    Φ_i(η) = Σ_j m_ij [½((y_ij − f_ij(η))/σ)² + log σ + ½ log 2π] + ½ ηᵀΩ⁻¹η

(the full conditional negative log-likelihood plus the prior quadratic; the
prior's constant ½ log det(2πΩ) is left out), the quantity Pumas and NONMEM
minimise. Subjects are solved in chunks:

1. amortised start: the objective of every subject at every point of a fixed
   grid in whitened η space (13³ points spanning ±4 prior SDs) is a sweep
   over tabulated predictions (float32, compiled; the points it picks are
   rescored in float64). At the grid points nearest the
   subject in data space, and at the best point of every grid slice along
   each axis, a capped Gauss-Newton step from tabulated sensitivities gives a
   candidate start and the objective it promises, with no ODE solve. The
   slices matter: where many η give nearly the same curve (absorption over
   before the first observation) the nearest points all sit on that plateau
   and the better basin would get no start.
2. Levenberg-Marquardt from the most promising candidate, on the Gauss-Newton
   Hessian H = Σ_j m_j ∇f_j∇f_jᵀ/σ² + Ω⁻¹ plus an NL2SOL secant estimate of
   the neglected second-order term; converged when the Newton decrement
   gᵀH⁻¹g is below ``tol``, or below 1e-6 when no step can lower the
   objective any more (the ODE solver's floor: its sensitivities are the
   derivatives of the steps it took, not of its adaptive output). The compiled
   engine runs the first iterations on a coarse ODE solver, at half the cost,
   and the last ones, which alone can declare convergence, on the accurate one.
3. restarts from the candidates away from the answer that promise at least as
   good an objective (the posterior can have several modes: the η₂–η₃ ridge
   where only Imax/IC50 is identified, flip-flop absorption/elimination), and
   from all candidates and fixed points when the answer looks wrong (not
   converged, χ² misfit). The lowest objective is kept; subjects that still
   fail are flagged in ``converged``, never silently returned as fine.

Step 1 is :mod:`synthoct_bench.nlme.ebe_grid`. For the paper's model steps 2-3
run per subject in compiled code (:mod:`synthoct_bench.nlme.ebe_search`,
``engine="compiled"``); any other model uses the same algorithm vectorised over
the active subjects through :func:`synthoct_bench.nlme.predict`
(``engine="batched"``, also the reference the compiled engine is tested against).

The Laplace posterior covariance is H⁻¹ at the mode (the Gauss-Newton form
used by FOCE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from synthoct_bench.nlme.ebe_grid import StartGrid
from synthoct_bench.nlme.ebe_problem import (
    ENGINES,
    EBEOptions,
    EBEProblem,
    check_observations,
)
from synthoct_bench.nlme.ebe_search import MISFIT_Z, SAME_BASIN_SD, search_mm_oral
from synthoct_bench.nlme.model import OBS_TIMES, PAPER_MODEL, PopulationParams

__all__ = ["ENGINES", "EBEOptions", "EBEResult", "ebe", "check_observations"]

@dataclass(frozen=True)
class EBEResult:
    """Batched EBEs. Arrays are per subject, first axis N.

    ``objective`` is Φ_i at ``eta`` (see the module docstring for its constant);
    ``cov`` is the Laplace posterior covariance (Ω⁻¹ + W)⁻¹ with the
    Gauss-Newton W; ``decrement`` is the final Newton decrement gᵀH⁻¹g.
    ``alt_eta`` and ``alt_objective`` are the runner-up: the lowest other
    converged local mode the search met (more than 0.3 prior SD away), NaN and
    inf where it met none. A runner-up within a few units of ``objective``
    marks a bimodal posterior (flip-flop absorption, the η₂–η₃ ridge); the
    compiled engine tracks it, the batched engine leaves it empty.
    ``n_evaluations`` and ``n_coarse_evaluations`` count the ODE solves on the
    accurate and on the coarse solver (a coarse one costs about half).
    """

    eta: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    cov: np.ndarray
    ipred: np.ndarray
    decrement: np.ndarray
    n_iter: np.ndarray
    n_obs: np.ndarray
    restarted: np.ndarray
    alt_eta: np.ndarray | None = None
    alt_objective: np.ndarray | None = None
    n_evaluations: int = 0
    n_coarse_evaluations: int = 0
    info: dict = field(default_factory=dict)

    @property
    def convergence_rate(self) -> float:
        """Fraction of subjects whose EBE met the convergence criterion."""
        return float(np.mean(self.converged)) if self.converged.size else float("nan")

    def __len__(self) -> int:
        return int(self.eta.shape[0])


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(a, b[..., None])[..., 0]


def _lm(prob: EBEProblem, idx, eta, phi, f, s, options: EBEOptions):
    """Batched Levenberg-Marquardt from the given states; returns final states.

    The model Hessian is Gauss-Newton plus a structured secant estimate A of the
    neglected second-order term -Σ_j e_j ∇²f_j/σ² (Dennis, Gay & Welsch 1981,
    the NL2SOL update): no extra ODE solves, and superlinear instead of linear
    convergence on subjects whose residuals are not small against the curvature
    (the η₂-η₃ ridge). Convergence is judged on the Gauss-Newton decrement.
    """
    n, d = eta.shape
    eta, phi, f, s = eta.copy(), phi.copy(), f.copy(), s.copy()
    lam = np.full(n, options.lam0)
    dec = np.full(n, np.inf)
    done = np.zeros(n, dtype=bool)
    conv = np.zeros(n, dtype=bool)
    iters = np.zeros(n, dtype=np.int64)
    corr = np.zeros((n, d, d))
    diag = np.arange(d)
    g_all, h_all = prob.grad_hess(idx, eta, f, s)
    for _ in range(options.max_iter):
        act = np.nonzero(~done)[0]
        if act.size == 0:
            break
        g, h = g_all[act], h_all[act]
        dec_a = -np.einsum("nd,nd->n", g, _solve(h, -g))
        dec[act] = dec_a
        ok = dec_a < options.tol
        conv[act[ok]] = True
        done[act[ok]] = True
        keep = ~ok
        act, g, h = act[keep], g[keep], h[keep]
        if act.size == 0:
            break
        iters[act] += 1
        model_h = h + corr[act]
        damped = model_h.copy()
        damped[:, diag, diag] += lam[act][:, None] * h[:, diag, diag]
        step = _solve(damped, -g)
        trial = np.clip(eta[act] + step, prob.lower, prob.upper)
        step = trial - eta[act]
        predicted = -(
            np.einsum("nd,nd->n", g, step) + 0.5 * np.einsum("nd,nde,ne->n", step, model_h, step)
        )
        f_t, s_t = prob.evaluate(trial)
        phi_t = prob.phi(idx[act], trial, f_t)
        actual = phi[act] - phi_t
        rho = actual / np.where(predicted > 0, predicted, np.inf)
        accept = np.isfinite(phi_t) & (actual > 0)
        # secant update of the second-order term on accepted steps
        if accept.any():
            a_idx = act[accept]
            st = step[accept]
            g_new, h_new = prob.grad_hess(idx[a_idx], trial[accept], f_t[accept], s_t[accept])
            e_new = (prob.y[idx[a_idx]] - f_t[accept]) * prob.mask[idx[a_idx]]
            y_sharp = -prob.inv_s2 * np.einsum("ntd,nt->nd", s_t[accept] - s[a_idx], e_new)
            w = g_new - g[accept]
            a_old = corr[a_idx]
            resid = y_sharp - np.einsum("nde,ne->nd", a_old, st)
            ws = np.einsum("nd,nd->n", w, st)
            good = ws > 1e-14 * np.sqrt(np.einsum("nd,nd->n", w, w) * np.einsum("nd,nd->n", st, st))
            ws_safe = np.where(good, ws, 1.0)
            upd = (resid[:, :, None] * w[:, None, :] + w[:, :, None] * resid[:, None, :]) / ws_safe[
                :, None, None
            ] - (np.einsum("nd,nd->n", resid, st) / ws_safe**2)[:, None, None] * (
                w[:, :, None] * w[:, None, :]
            )
            corr[a_idx] = np.where(good[:, None, None], a_old + upd, a_old)
            eta[a_idx], phi[a_idx] = trial[accept], phi_t[accept]
            f[a_idx], s[a_idx] = f_t[accept], s_t[accept]
            g_all[a_idx], h_all[a_idx] = g_new, h_new
        lam_a = lam[act]
        lam_a = np.where(accept & (rho > 0.75), lam_a / 5.0, lam_a)
        lam_a = np.where(accept & (rho < 0.25), np.maximum(lam_a * 3.0, 1e-4), lam_a)
        lam_a = np.where(~accept, np.maximum(lam_a * 8.0, 1e-3), lam_a)
        lam[act] = np.maximum(lam_a, 1e-12)
        # A rejected step forgets a secant estimate that may have misled it.
        rej = act[~accept]
        corr[rej] *= 0.5
        # No decrease possible although the gradient is already tiny: the remaining
        # gradient is the ODE solver's floor (see STALL_TOL), so this is
        # converged. A stall with a larger gradient is flagged instead.
        floor = (
            (~accept) & (dec[act] < options.stall_tol) & (np.abs(actual) < 1e-9 * (1.0 + phi[act]))
        )
        conv[act[floor]] = True
        stalled = floor | ((~accept) & (lam[act] > 1e12))
        done[act[stalled]] = True
    return eta, phi, f, s, conv, dec, iters


def _run_from(prob: EBEProblem, rows: np.ndarray, eta: np.ndarray, options: EBEOptions):
    f, s = prob.evaluate(eta)
    phi = prob.phi(rows, eta, f)
    return _lm(prob, rows, eta, phi, f, s, options)


class _ChunkResult(NamedTuple):
    """One chunk's per-subject results, as both engines return them (see :class:`EBEResult`;
    ``objective`` and ``alt_objective`` without the constant)."""

    eta: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    cov: np.ndarray
    ipred: np.ndarray
    decrement: np.ndarray
    n_iter: np.ndarray
    restarted: np.ndarray
    alt_eta: np.ndarray
    alt_objective: np.ndarray


_FIXED_STARTS = [
    (0.0, 0.0, 0.0),
    (0.0, 1.0, 1.0),
    (0.0, -1.0, -1.0),
    (1.0, 0.0, 0.0),
    (-1.0, 0.0, 0.0),
    (1.0, 1.0, 1.0),
    (-1.0, -1.0, -1.0),
]


def _candidates(prob: EBEProblem, rows: np.ndarray, grid: StartGrid):
    """Candidate starts (C, n, d) and their true objectives (C, n).

    The best raw grid point, and the capped Gauss-Newton steps from it and from
    the three best one-step model values; one batched solve without
    sensitivities scores them all.
    """
    raw, model = grid.score(prob, rows)
    n = rows.size
    top = np.argpartition(model, 3, axis=1)[:, :3]
    raw_best = np.argmin(raw, axis=1)
    cands = [grid.eta[raw_best], grid.start(prob, rows, raw_best)]
    cands += [grid.start(prob, rows, top[:, j]) for j in range(top.shape[1])]
    stack = np.concatenate(cands, axis=0)
    vals = prob.phi(np.tile(rows, len(cands)), stack, prob.evaluate(stack, sensitivities=False))
    vals = np.where(np.isfinite(vals), vals, np.inf).reshape(len(cands), n)
    return np.stack(cands), vals


def _chunk_batched(
    prob: EBEProblem, eta0: np.ndarray | None, grid: StartGrid, options: EBEOptions
) -> _ChunkResult:
    """The vectorised search (any model) on one chunk: every step batched over its subjects."""
    n = prob.y.shape[0]
    idx = np.arange(n)
    restarted = np.zeros(n, dtype=bool)
    cand_eta = cand_val = None
    if eta0 is None:
        cand_eta, cand_val = _candidates(prob, idx, grid)
        start = cand_eta[np.argmin(cand_val, axis=0), idx]
    else:
        start = np.clip(eta0, prob.lower, prob.upper)
    eta, phi, f, s, conv, dec, iters = _run_from(prob, idx, start, options)

    # Subjects whose answer looks wrong (not converged, χ² misfit) or ambiguous
    # (another grid start promises an objective near the one found) are restarted.
    n_obs = prob.mask.sum(axis=1)
    chi2 = 2.0 * (phi - 0.5 * np.einsum("nd,d,nd->n", eta, prob.inv_omega, eta))
    suspicious = ~conv | (chi2 > n_obs + MISFIT_Z * np.sqrt(2.0 * n_obs))
    k = options.n_restarts
    if k > 0:
        if cand_eta is None:  # warm start: grid candidates only for the suspicious
            rows = np.nonzero(suspicious)[0]
            if rows.size:
                cand_eta, cand_val = _candidates(prob, rows, grid)
        else:
            rows = idx
        if rows.size:
            far = np.max(np.abs(cand_eta - eta[rows][None]) / grid.sd, axis=2) > SAME_BASIN_SD
            close_call = far & (cand_val < phi[rows][None] + options.restart_margin)
            want = np.where(close_call | (far & suspicious[rows][None]), cand_val, np.inf)
            order = np.argsort(want, axis=0)[:k]
            # all restarts of all subjects in one batched LM run (rows may repeat)
            cols = np.broadcast_to(np.arange(rows.size), order.shape)
            ok = np.isfinite(want[order, cols])
            r_loc = np.broadcast_to(rows, order.shape)[ok]
            starts = cand_eta[order[ok], cols[ok]]
            # Suspicious subjects also retry from fixed points (as nlmixr2 does): the
            # typical subject and one prior SD along each axis and along the ridge.
            sus = rows[suspicious[rows]]
            if sus.size:
                fixed = np.array(_FIXED_STARTS[: 2 * prob.omega.size + 1]) * grid.sd
                fixed = fixed[:, : prob.omega.size] if fixed.shape[1] >= prob.omega.size else None
                if fixed is not None:
                    r_loc = np.concatenate([r_loc, np.repeat(sus, fixed.shape[0])])
                    starts = np.concatenate([starts, np.tile(fixed, (sus.size, 1))])
            if r_loc.size:
                e2, p2, f2, s2, c2, d2, i2 = _run_from(prob, r_loc, starts, options)
                np.add.at(iters, r_loc, i2)
                restarted[r_loc] = True
                # each subject's best restart (lowest objective), compared with its first answer
                srt = np.lexsort((p2, r_loc))
                first = srt[np.r_[True, r_loc[srt][1:] != r_loc[srt][:-1]]]
                r = r_loc[first]
                p_b, c_b = p2[first], c2[first]
                better = (p_b < phi[r] - 1e-9) | (c_b & ~conv[r] & (p_b <= phi[r] + 1e-8))
                j, r = first[better], r[better]
                eta[r], phi[r], f[r], s[r] = e2[j], p2[j], f2[j], s2[j]
                conv[r], dec[r] = c2[j], d2[j]
    _, h = prob.grad_hess(idx, eta, f, s)
    return _ChunkResult(
        eta=eta, objective=phi, converged=conv, cov=np.linalg.inv(h), ipred=f, decrement=dec,
        n_iter=iters, restarted=restarted,
        alt_eta=np.full_like(eta, np.nan), alt_objective=np.full(n, np.inf),  # not tracked here
    )  # fmt: skip


def _fixed_starts(prob: EBEProblem, grid: StartGrid) -> np.ndarray:
    d = prob.omega.size
    fixed = np.array(_FIXED_STARTS)
    if fixed.shape[1] < d:
        return np.empty((0, d))
    return fixed[: 2 * d + 1, :d] * grid.sd


def _chunk_compiled(
    prob: EBEProblem, eta0: np.ndarray | None, grid: StartGrid, options: EBEOptions
) -> _ChunkResult:
    """The compiled per-subject search (:mod:`synthoct_bench.nlme.ebe_search`) on one chunk."""
    times = OBS_TIMES if prob.times is None else np.asarray(prob.times, dtype=np.float64)
    dose = PAPER_MODEL.dose if prob.model is None else prob.model.dose
    n = prob.y.shape[0]
    if eta0 is not None and options.n_restarts == 0:
        # a pure local refinement (e.g. FOCE's finite differences): stay in the
        # warm start's basin; doubtful answers still retry from fixed points
        cand = np.clip(eta0, prob.lower, prob.upper)[:, None, :]
        vals = np.zeros((n, 1))
    else:
        cand, vals = grid.candidates(prob, np.arange(n))
    if eta0 is not None and options.n_restarts > 0:
        # The warm start goes first; the grid candidates still get their restarts,
        # so a warm start that has drifted into a worse basin is caught (a FOCE fit
        # whose EBEs depended on the path would optimise an inconsistent objective).
        warm = np.clip(eta0, prob.lower, prob.upper)[:, None, :]
        cand = np.concatenate([warm, cand], axis=1)
        vals = np.concatenate([np.full((n, 1), -np.inf), vals], axis=1)
    res = search_mm_oral(
        prob.y, prob.mask, cand, vals, _fixed_starts(prob, grid), prob.params, times, dose,
        prob.lower, prob.upper, options, warm_start=eta0 is not None,
    )  # fmt: skip
    prob.n_evaluations += int(res.n_solves.sum())
    prob.n_coarse_evaluations += int(res.n_coarse_solves.sum())
    return _ChunkResult(**{name: getattr(res, name) for name in _ChunkResult._fields})


def ebe(
    y: np.ndarray,
    params=None,
    *,
    model=None,
    times: np.ndarray | None = None,
    eta0: np.ndarray | None = None,
    tol: float = EBEOptions.tol,
    max_iter: int = EBEOptions.max_iter,
    grid_points: int | None = EBEOptions.grid_points,
    grid_span: float = EBEOptions.grid_span,
    n_restarts: int = EBEOptions.n_restarts,
    restart_margin: float | None = EBEOptions.restart_margin,
    eta_bound: float = EBEOptions.eta_bound,
    chunk_size: int = EBEOptions.chunk_size,
    progress: bool = False,
    engine: str = EBEOptions.engine,
) -> EBEResult:
    """Empirical Bayes estimates (posterior modes of η) for every row of ``y``.

    Parameters
    ----------
    y : (N, T) observations at the model's observation times; NaN marks missing.
    params : ``PopulationParams`` (default: the model's/paper's values).
    eta0 : optional (N, d) warm start, tried first; the grid's candidates still
        get their restarts unless ``n_restarts=0``, which makes the call a
        local refinement that stays in the warm start's basin.
    tol : convergence threshold on the Newton decrement gᵀH⁻¹g (≈ twice the
        remaining objective decrease); 1e-10 gives the objective to ~1e-10 and
        η to ~6e-5 on flat ridges (the FOCE fit uses 1e-12). A subject whose
        decrement cannot go below 1e-6 because no step lowers the objective
        any more (the ODE solver's floor) also counts as converged.
    grid_points : grid points per η dimension (default 13 for d <= 3: spacing
        2/3 prior SD, fine enough that each basin of the posterior gets a start).
    n_restarts : extra starts (other grid basins) for subjects whose answer
        looks wrong or ambiguous.
    restart_margin : a grid candidate away from the answer triggers a restart
        when it promises an objective below the answer's plus this margin.
        The compiled engine's promise is the one-step Gauss-Newton model
        value (optimistic; default margin 0), the batched engine's is the
        true objective at the start (pessimistic; default margin 1).
    eta_bound : the search stays inside ±eta_bound prior SDs (keeps the ODE
        solver out of absurd stiffness).
    chunk_size : subjects per chunk (the (chunk, grid) objective table is ~70 MB
        at 4096 × 13³); results do not depend on it.
    engine : ``"compiled"`` runs each subject's search in compiled code (the
        paper's model only; ~10× faster), ``"batched"`` the vectorised
        Python search that works for any model; ``"auto"`` picks compiled
        when it applies.
    """
    params = PopulationParams.coerce(params, model)
    d = len(params.omega)
    t_arr = OBS_TIMES if times is None else np.asarray(times, dtype=np.float64)
    y0, mask = check_observations(y, int(np.asarray(t_arr).size))
    n = y0.shape[0]
    if eta0 is not None:
        eta0 = np.asarray(eta0, dtype=np.float64)
        if eta0.shape != (n, d):
            raise ValueError(f"eta0 must have shape ({n}, {d}), got {eta0.shape}")
        if not np.all(np.isfinite(eta0)):
            raise ValueError("eta0 holds NaN or infinite values")
    options = EBEOptions(
        tol=tol, max_iter=max_iter, grid_points=grid_points, grid_span=grid_span,
        n_restarts=int(n_restarts), restart_margin=restart_margin, eta_bound=eta_bound,
        chunk_size=chunk_size, engine=engine,
    )  # fmt: skip
    fast = model is None or getattr(model, "fast_kernel", None) == "mm_oral"
    if engine == "compiled" and not fast:
        raise ValueError(
            "engine='compiled' needs the paper's model (fast_kernel='mm_oral'); "
            "use engine='batched' for other models"
        )
    compiled = fast and engine != "batched"
    options = replace(
        options,
        grid_points=(
            (13 if d <= 3 else max(3, int(round(2000 ** (1.0 / d)))))
            if grid_points is None
            else grid_points
        ),
        restart_margin=float(
            restart_margin if restart_margin is not None else (0.0 if compiled else 1.0)
        ),
        engine="compiled" if compiled else "batched",
    )
    chunk_fn = _chunk_compiled if compiled else _chunk_batched
    prob0 = EBEProblem(y0[:1], mask[:1], params, model, times, options.eta_bound)
    grid = StartGrid(
        prob0,
        options.grid_points,
        options.grid_span,
        max_step=2 * options.grid_span / (options.grid_points - 1),
    )

    out = _ChunkResult(
        eta=np.empty((n, d)),
        objective=np.empty(n),
        converged=np.empty(n, dtype=bool),
        cov=np.empty((n, d, d)),
        ipred=np.empty_like(y0),
        decrement=np.empty(n),
        n_iter=np.empty(n, dtype=np.int64),
        restarted=np.empty(n, dtype=bool),
        alt_eta=np.empty((n, d)),
        alt_objective=np.empty(n),
    )
    n_eval = prob0.n_evaluations
    n_coarse = 0
    starts = range(0, n, options.chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="EBE", unit="chunk")
    for a in starts:
        b = min(a + options.chunk_size, n)
        prob = EBEProblem(y0[a:b], mask[a:b], params, model, times, options.eta_bound)
        part = chunk_fn(prob, None if eta0 is None else eta0[a:b], grid, options)
        for whole, piece in zip(out, part, strict=True):
            whole[a:b] = piece
        n_eval += prob.n_evaluations
        n_coarse += prob.n_coarse_evaluations
    n_obs = mask.sum(axis=1)
    const = n_obs * (math.log(float(params.sigma)) + 0.5 * math.log(2.0 * math.pi))
    return EBEResult(
        eta=out.eta,
        objective=out.objective + const,
        converged=out.converged,
        cov=out.cov,
        ipred=out.ipred,
        decrement=out.decrement,
        n_iter=out.n_iter,
        n_obs=n_obs,
        restarted=out.restarted,
        alt_eta=out.alt_eta,
        alt_objective=out.alt_objective + const,
        n_evaluations=int(n_eval),
        n_coarse_evaluations=int(n_coarse),
        info={
            "grid_points": options.grid_points,
            "grid_span": options.grid_span,
            "tol": options.tol,
            "engine": options.engine,
            "options": options,
        },
    )
