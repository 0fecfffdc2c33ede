"""NLME diagnostics of an EBE fit: shrinkage, IWRES, convergence, and a GOF plot.

- η-shrinkage in both forms in use: SD form 1 - SD(η̂_k)/ω_k^½ (NONMEM, Pumas)
  and variance form 1 - var(η̂_k)/ω_k (saemix, Pharmpy).
- ε-shrinkage 1 - SD(IWRES) over all observed points (NONMEM's definition).
- IWRES = (DV - IPRED)/σ with IPRED the prediction at the EBE; PRED at η = 0.
- EBE convergence rate: the share of subjects whose EBE met its criterion.
"""

from __future__ import annotations

import os

import numpy as np

from synthoct_bench.atomic import save_figure
from synthoct_bench.nlme.ebe import EBEResult
from synthoct_bench.nlme.ebe_problem import check_observations
from synthoct_bench.nlme.model import OBS_TIMES, PopulationParams
from synthoct_bench.nlme.simulate import predict

__all__ = ["diagnostics", "gof_plot"]


def _times(times):
    return np.asarray(OBS_TIMES if times is None else times, dtype=np.float64)


def diagnostics(
    y: np.ndarray,
    ebe_result: EBEResult,
    params=None,
    *,
    model=None,
    times: np.ndarray | None = None,
) -> dict:
    """Shrinkage, residuals and convergence of ``ebe_result`` fitted to ``y`` at ``params``.

    Returns a dict: ``eta_shrinkage_sd`` and ``eta_shrinkage_var`` (d,),
    ``epsilon_shrinkage``, ``ebe_convergence_rate``, ``n_not_converged``,
    ``iwres`` (N, T, NaN where missing), ``ipred`` and ``pred`` (N, T).
    """
    params = PopulationParams.coerce(params, model)
    t = _times(times)
    _, mask = check_observations(y, t.size)
    y = np.asarray(y, dtype=np.float64).reshape(mask.shape)
    if ebe_result.eta.shape[0] != y.shape[0]:
        raise ValueError(
            f"ebe_result has {ebe_result.eta.shape[0]} subjects but y has {y.shape[0]}"
        )
    omega = np.asarray(params.omega, dtype=np.float64)
    eta = ebe_result.eta
    sd = eta.std(axis=0, ddof=1) if eta.shape[0] > 1 else np.full(omega.size, np.nan)
    ipred = ebe_result.ipred
    kwargs = {"times": times} if times is not None else {}
    if model is not None:
        kwargs["model"] = model
    pred = predict(np.zeros((1, omega.size)), params, **kwargs)[0]
    iwres = np.where(mask, (y - ipred) / float(params.sigma), np.nan)
    observed = iwres[mask]
    eps_shr = 1.0 - float(np.std(observed, ddof=1)) if observed.size > 1 else float("nan")
    return {
        "eta_shrinkage_sd": 1.0 - sd / np.sqrt(omega),
        "eta_shrinkage_var": 1.0 - sd**2 / omega,
        "epsilon_shrinkage": eps_shr,
        "ebe_convergence_rate": ebe_result.convergence_rate,
        "n_not_converged": int(np.sum(~ebe_result.converged)),
        "iwres": iwres,
        "ipred": ipred,
        "pred": np.broadcast_to(pred, y.shape),
    }


def gof_plot(
    y: np.ndarray,
    ebe_result: EBEResult,
    params=None,
    path: str | os.PathLike = "gof.png",
    *,
    model=None,
    times: np.ndarray | None = None,
    max_points: int = 20_000,
    seed: int = 0,
) -> str:
    """Save DV vs IPRED, DV vs PRED and IWRES vs time panels as a PNG; return the path.

    At most ``max_points`` observations are drawn (a fixed-seed subsample), so
    the plot stays readable and fast at dataset scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diag = diagnostics(y, ebe_result, params, model=model, times=times)
    t = _times(times)
    y = np.asarray(y, dtype=np.float64).reshape(diag["iwres"].shape)
    mask = ~np.isnan(y)
    rows, cols = np.nonzero(mask)
    if rows.size > max_points:
        pick = np.random.Generator(np.random.PCG64(seed)).choice(rows.size, max_points, False)
        rows, cols = rows[pick], cols[pick]
    dv = y[rows, cols]
    ipred = diag["ipred"][rows, cols]
    pred = diag["pred"][rows, cols]
    iwres = diag["iwres"][rows, cols]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.6))
    lim = [min(dv.min(), ipred.min()), max(dv.max(), ipred.max())]
    for a, x, name in ((ax[0], ipred, "IPRED"), (ax[1], pred, "PRED")):
        a.scatter(x, dv, s=2, alpha=0.3, rasterized=True)
        a.plot(lim, lim, "k--", lw=1)
        a.set_xlabel(name)
        a.set_ylabel("DV (observed Central)")
        a.set_title(f"DV vs {name}")
    ax[2].scatter(t[cols], iwres, s=2, alpha=0.3, rasterized=True)
    for level in (-2, 0, 2):
        ax[2].axhline(level, color="k", ls="--" if level else "-", lw=1)
    ax[2].set_xlabel("time")
    ax[2].set_ylabel("IWRES")
    shr = ", ".join(f"{v:.0%}" for v in diag["eta_shrinkage_sd"])
    ax[2].set_title("IWRES vs time")
    fig.suptitle(
        f"Goodness of fit: {y.shape[0]} subjects, EBE convergence "
        f"{diag['ebe_convergence_rate']:.2%}; η-shrinkage (SD form) {shr}; "
        f"ε-shrinkage {diag['epsilon_shrinkage']:.1%}"
    )
    fig.tight_layout()
    return os.fspath(save_figure(fig, path, dpi=110))
