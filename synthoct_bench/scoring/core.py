"""Scoring: arrays in, ScoreReport out (``score_arrays``); files and datasets in (``score``).

One run builds a per-subject statistic matrix for every metric (Table 1, Table 2,
the extra NLLs; for a paired comparison, both submissions), then bootstraps all of
them on one set of resamples of subjects (:mod:`synthoct_bench.scoring.metrics`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthoct_bench.latent import theoretical_max_r2
from synthoct_bench.scoring import metrics as M
from synthoct_bench.scoring import nll as L
from synthoct_bench.scoring.report import ScoreReport, pred_dependent
from synthoct_bench.scoring.submission import (
    Submission,
    SubmissionError,
    align_submission,
    max_submission_bytes,
    read_submission,
)

__all__ = ["score_arrays", "score", "MARGINAL_METHOD"]

MARGINAL_METHOD = (
    "first-order (FO) linearisation at the predicted mean: y ~ N(f(mu), J S J' + sigma^2 I), "
    "J = df/deta at mu"
)


def _check_eta(name: str, value: Any, n: int | None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or (n is not None and arr.shape[0] != n):
        want = f"({n}, 3)" if n is not None else "(N, 3)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return arr


@dataclass
class _Pred:
    """One submission's arrays, aligned to the split's subject order."""

    eta_pred: np.ndarray
    cov: np.ndarray | None
    label: str | None


def _as_pred(
    eta_pred: Any, eta_sd: Any, eta_cov: Any, subject_ids: np.ndarray, label: str | None
) -> _Pred:
    n = subject_ids.shape[0]
    cols: dict[str, Any] = {"subject_id": subject_ids, "eta_pred": eta_pred}
    if eta_sd is not None:
        cols["eta_sd"] = eta_sd
    if eta_cov is not None:
        cols["eta_cov"] = eta_cov
    pred = np.asarray(eta_pred)
    if pred.ndim != 2 or pred.shape[0] != n:
        raise SubmissionError(f"eta_pred must have shape ({n}, 3), got {pred.shape}")
    sub = read_submission(cols)
    return _Pred(sub.eta_pred, sub.eta_cov_full, label)


def _pred_stats(
    stats: M.StatMatrix,
    prefix: str,
    pred: _Pred,
    eta_hat: np.ndarray,
    eta_approx: np.ndarray,
    obs: np.ndarray | None,
    nl: L.Table2Inputs | None,
    f_pred: np.ndarray | None,
    jac_pred: np.ndarray | None,
    t2: dict[str, np.ndarray] | None,
) -> None:
    """Per-subject statistics of the metrics that depend on one submission."""
    M.add_r2_stats(stats, f"{prefix}hat_pred", eta_hat, pred.eta_pred)
    M.add_r2_stats(stats, f"{prefix}approx_pred", eta_approx, pred.eta_pred)
    for d in range(3):
        M.add_r2_stats(
            stats, f"{prefix}dim{d + 1}", eta_hat[:, d : d + 1], pred.eta_pred[:, d : d + 1]
        )
    if t2 is not None:
        stats.add(f"{prefix}table2/predicted", t2["predicted"])
    if obs is not None and nl is not None and f_pred is not None:
        stats.add(f"{prefix}heldout_nll/predicted", L.gaussian_nll(obs, f_pred, nl.sigma))
    if pred.cov is not None:
        stats.add(f"{prefix}eta_hat_nll", L.eta_gaussian_nll(eta_hat, pred.eta_pred, pred.cov))
        if obs is not None and nl is not None and f_pred is not None and jac_pred is not None:
            marginal = L.marginal_nll(obs, f_pred, jac_pred, pred.cov, nl.sigma)
            stats.add(f"{prefix}marginal_nll", marginal)


def _pred_metrics(prefix: str, sigma2: float, names: set[str]) -> dict[str, M.MetricFn]:
    r2 = M.r2_metric(f"{prefix}hat_pred", 3)
    out: dict[str, M.MetricFn] = {
        "r2": r2,
        "mse": M.mse_metric(f"{prefix}hat_pred", 3),
        "fraction_of_max": M.scaled(r2, 1.0 + sigma2),
        "table1/eta_hat/eta_pred/mse": M.mse_metric(f"{prefix}hat_pred", 3),
        "table1/eta_hat/eta_pred/r2": r2,
        "table1/eta_approx/eta_pred/mse": M.mse_metric(f"{prefix}approx_pred", 3),
        "table1/eta_approx/eta_pred/r2": M.r2_metric(f"{prefix}approx_pred", 3),
    }
    for d in range(3):
        out[f"r2_dim{d + 1}"] = M.r2_metric(f"{prefix}dim{d + 1}", 1)
    for name in ("table2/predicted", "heldout_nll/predicted", "eta_hat_nll", "marginal_nll"):
        if f"{prefix}{name}" in names:
            out[name] = M.mean_metric(f"{prefix}{name}")
    return out


def _score_core(
    *,
    eta: np.ndarray,
    eta_hat: np.ndarray,
    eta_approx: np.ndarray,
    preds: list[_Pred],
    sigma2: float,
    subject_ids: np.ndarray,
    obs: np.ndarray | None,
    params: Any,
    nll: bool,
    n_bootstrap: int,
    seed: int,
    nll_params: str | None,
) -> ScoreReport:
    n = eta.shape[0]
    if n < 2:
        raise ValueError(f"scoring needs at least 2 subjects, got {n}")
    if not np.isfinite(sigma2) or sigma2 < 0:
        raise ValueError(f"sigma2 must be a finite noise variance >= 0, got {sigma2}")
    stats = M.StatMatrix(n)
    M.add_r2_stats(stats, "hat_approx", eta_hat, eta_approx)

    nl = t2 = None
    f_preds: list[np.ndarray | None] = [None] * len(preds)
    jac_preds: list[np.ndarray | None] = [None] * len(preds)
    t2_by_pred: list[dict[str, np.ndarray] | None] = [None] * len(preds)
    if nll:
        from synthoct_bench.nlme.model import PopulationParams

        params = PopulationParams.coerce(params)
        want_jac = obs is not None and preds[0].cov is not None
        nl = L.nlme_predictions(
            eta,
            eta_hat,
            eta_approx,
            preds[0].eta_pred,
            subject_ids,
            params,
            seed,
            jacobian=want_jac,
        )
        t2 = t2_by_pred[0] = L.table2_nll(nl, subject_ids, seed)
        f_preds[0], jac_preds[0] = nl.f["eta_pred"], nl.jac_pred
        for col in ("true", "approximate", "average", "random"):
            stats.add(f"table2/{col}", t2[col])
        if obs is not None:
            for col, src in (
                ("true", "eta_hat"),
                ("approximate", "eta_approx"),
                ("average", "zero"),
            ):
                stats.add(f"heldout_nll/{col}", L.gaussian_nll(obs, nl.f[src], nl.sigma))
        for k in range(1, len(preds)):
            want_jac = obs is not None and preds[k].cov is not None
            f_preds[k], jac_preds[k] = L.predict_with_jacobian(preds[k].eta_pred, params, want_jac)
            # Same residual draws as the first submission: the comparison is paired.
            other = L.Table2Inputs(f={**nl.f, "eta_pred": f_preds[k]}, sigma=nl.sigma)
            t2_by_pred[k] = {"predicted": L.table2_nll(other, subject_ids, seed)["predicted"]}

    prefixes = ["", *(f"other{k}:" for k in range(1, len(preds)))]
    for k, prefix in enumerate(prefixes):
        _pred_stats(
            stats,
            prefix,
            preds[k],
            eta_hat,
            eta_approx,
            obs,
            nl,
            f_preds[k],
            jac_preds[k],
            t2_by_pred[k],
        )

    names = set(stats.names)
    shared: dict[str, M.MetricFn] = {
        "table1/eta_hat/eta_approx/mse": M.mse_metric("hat_approx", 3),
        "table1/eta_hat/eta_approx/r2": M.r2_metric("hat_approx", 3),
    }
    for name in sorted(names):
        if (
            name.startswith(("table2/", "heldout_nll/"))
            and ":" not in name
            and not name.endswith("predicted")
        ):
            shared[name] = M.mean_metric(name)
    main = {**_pred_metrics("", sigma2, names), **shared}
    order = [
        "r2",
        "mse",
        "fraction_of_max",
        "table1/eta_hat/eta_pred/mse",
        "table1/eta_hat/eta_pred/r2",
        "table1/eta_hat/eta_approx/mse",
        "table1/eta_hat/eta_approx/r2",
        "table1/eta_approx/eta_pred/mse",
        "table1/eta_approx/eta_pred/r2",
        "table2/true",
        "table2/predicted",
        "table2/approximate",
        "table2/average",
        "table2/random",
        "r2_dim1",
        "r2_dim2",
        "r2_dim3",
        "heldout_nll/predicted",
        "heldout_nll/true",
        "heldout_nll/approximate",
        "heldout_nll/average",
        "marginal_nll",
        "eta_hat_nll",
    ]
    main = {k: main[k] for k in order if k in main}
    all_metrics: dict[str, M.MetricFn] = dict(main)
    other_fns: dict[str, M.MetricFn] = {}
    if len(preds) > 1:
        theirs = {**_pred_metrics(prefixes[1], sigma2, names), **shared}
        for k, fn in theirs.items():
            if k in main:
                other_fns[k] = fn
                all_metrics[f"other:{k}"] = fn
                if pred_dependent(k):
                    all_metrics[f"diff:{k}"] = M.difference(main[k], fn)
    est = M.evaluate(stats, all_metrics, n_resamples=n_bootstrap, seed=seed)

    other = difference = None
    if len(preds) > 1:
        other = {k: est[f"other:{k}"] for k in main if f"other:{k}" in est}
        difference = {k: est[f"diff:{k}"] for k in main if f"diff:{k}" in est}
    return ScoreReport(
        noise=float(sigma2),
        split=None,
        n_subjects=n,
        theoretical_max=theoretical_max_r2(sigma2),
        estimates={k: est[k] for k in main},
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
        model=preds[0].label,
        probabilistic=preds[0].cov is not None,
        nll_params=nll_params if nll else None,
        marginal_method=MARGINAL_METHOD if "marginal_nll" in est else None,
        other=other,
        difference=difference,
        other_info={"model": preds[1].label} if len(preds) > 1 else None,
    )


def score_arrays(
    eta: np.ndarray,
    eta_noisy: np.ndarray,
    eta_ebe: np.ndarray,
    eta_pred: np.ndarray,
    sigma2: float,
    *,
    obs: np.ndarray | None = None,
    params: Any = None,
    eta_sd: np.ndarray | None = None,
    eta_cov: np.ndarray | None = None,
    subject_ids: np.ndarray | None = None,
    compare: np.ndarray | Submission | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    nll: bool = True,
    model: str | None = None,
) -> ScoreReport:
    """Score predictions given as arrays (no I/O), all rows in the same subject order.

    eta (N, 3) noise-free random effects; eta_noisy (N, 3) η̂ at noise level ``sigma2``
    (the comparison target of Table 1); eta_ebe (N, 3) the empirical Bayes estimates
    η_approx; eta_pred (N, 3) the predictions; obs (N, 21) the observations (enables the
    held-out and marginal NLLs); params the NLME PopulationParams (or dict) used for the
    NLLs, default the paper's; eta_sd / eta_cov the predictive uncertainty; compare an
    (N, 3) array or a Submission aligned to the same subjects for a paired comparison;
    ``nll=False`` skips everything that needs the NLME solver.
    """
    eta = _check_eta("eta", eta, None)
    n = eta.shape[0]
    eta_hat = _check_eta("eta_noisy", eta_noisy, n)
    eta_approx = _check_eta("eta_ebe", eta_ebe, n)
    ids = np.arange(n, dtype=np.int64) if subject_ids is None else np.asarray(subject_ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"subject_ids must be ({n},) integers, got {ids.shape} {ids.dtype}")
    if obs is not None:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[0] != n or not np.isfinite(obs).all():
            raise ValueError(f"obs must be a finite ({n}, T) array, got {obs.shape}")
    preds = [_as_pred(eta_pred, eta_sd, eta_cov, ids, model)]
    if compare is not None:
        if isinstance(compare, Submission):
            preds.append(_Pred(compare.eta_pred, compare.eta_cov_full, compare.model))
        else:
            preds.append(_as_pred(compare, None, None, ids, None))
    desc = "parameters given" if params is not None else "the paper's parameters"
    return _score_core(
        eta=eta,
        eta_hat=eta_hat,
        eta_approx=eta_approx,
        preds=preds,
        sigma2=float(sigma2),
        subject_ids=ids,
        obs=obs,
        params=params,
        nll=nll,
        n_bootstrap=n_bootstrap,
        seed=seed,
        nll_params=desc,
    )


def _noise_key(noise: float) -> str:
    value = float(noise)
    if not value.is_integer():
        raise ValueError(f"noise level must be one of the dataset's integer sigma2, got {noise}")
    return f"s{int(value)}"


def _nll_params(meta: dict[str, Any], which: str, noise: float) -> tuple[Any, str]:
    """The dataset's NLME parameters for the NLLs, and a line saying which they are."""
    meta = {**meta, **(meta.get("nlme") or {})}  # the manifest nests them under "nlme"
    if which == "simulation":
        params = meta.get("simulation_params")
        if params is None:
            return None, "the paper's parameters (the dataset records no simulation_params)"
        return params, "the dataset's simulation parameters (manifest 'simulation_params')"
    if which == "fitted":
        fit = (meta.get("fits") or {}).get(str(int(float(noise))))
        if not fit or "params" not in fit:
            raise ValueError(
                f"the dataset records no fitted parameters for noise level {noise:g}; "
                "use nll_params='simulation'"
            )
        return fit["params"], f"the dataset's FOCE fit at sigma2={noise:g} (manifest 'fits')"
    raise ValueError(f"nll_params must be 'simulation' or 'fitted', got {which!r}")


def _load_submission(predictions: Any, n_expected: int) -> Submission:
    if isinstance(predictions, Submission):
        return predictions
    return read_submission(predictions, max_bytes=max_submission_bytes(n_expected))


def score(
    predictions: str | os.PathLike | Any,
    data: str | os.PathLike,
    noise: float,
    split: str = "test",
    *,
    compare: str | os.PathLike | Any | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    revision: str | None = None,
    nll: bool = True,
    nll_params: str = "simulation",
) -> ScoreReport:
    """Score a submission (path, DataFrame, pyarrow Table or dict) against a dataset.

    ``data`` is a local dataset directory or a Hub repo id (``revision`` pins it).
    ``nll_params`` picks the NLME parameters of every NLL: ``"simulation"`` (those the
    dataset was simulated with, the default) or ``"fitted"`` (the dataset's FOCE fit at
    this noise level, what a practitioner would have). ``compare`` is a second
    submission scored on the same subjects and resamples.
    """
    import synthoct_bench
    from synthoct_bench.dataset import dataset_fingerprint, read_columns, read_metadata

    meta = read_metadata(data) if revision is None else read_metadata(data, revision=revision)
    levels = [float(x) for x in meta.get("noise_levels", [])]
    if levels and not any(np.isclose(float(noise), lv) for lv in levels):
        raise ValueError(
            f"noise level {noise:g} is not in this dataset "
            f"(levels {', '.join(f'{x:g}' for x in levels)})"
        )
    splits = meta.get("splits")
    if splits and split not in splits:
        raise ValueError(f"split {split!r} is not in this dataset (splits {sorted(splits)})")
    k = _noise_key(noise)
    cols = ["subject_id", "eta", f"eta_noisy_{k}", f"eta_ebe_{k}"] + ([f"obs_{k}"] if nll else [])
    data_cols = read_columns(data, split, cols, revision=revision)
    ids = np.asarray(data_cols["subject_id"]).astype(np.int64)

    sub = align_submission(_load_submission(predictions, ids.size), ids, noise=noise, split=split)
    preds = [_Pred(sub.eta_pred, sub.eta_cov_full, sub.model)]
    other_sub = None
    if compare is not None:
        other_sub = align_submission(
            _load_submission(compare, ids.size), ids, noise=noise, split=split
        )
        preds.append(_Pred(other_sub.eta_pred, other_sub.eta_cov_full, other_sub.model))
    params, params_desc = _nll_params(meta, nll_params, noise)
    report = _score_core(
        eta=np.asarray(data_cols["eta"], dtype=np.float64),
        eta_hat=np.asarray(data_cols[f"eta_noisy_{k}"], dtype=np.float64),
        eta_approx=np.asarray(data_cols[f"eta_ebe_{k}"], dtype=np.float64),
        preds=preds,
        sigma2=float(noise),
        subject_ids=ids,
        obs=np.asarray(data_cols[f"obs_{k}"], dtype=np.float64) if nll else None,
        params=params,
        nll=nll,
        n_bootstrap=n_bootstrap,
        seed=seed,
        nll_params=params_desc,
    )
    report.split = split
    report.provenance = {
        "dataset": str(data),
        "dataset_fingerprint": dataset_fingerprint(data, revision=revision),
        "revision": revision,
        "scorer_version": synthoct_bench.__version__,
        "submission_sha256": sub.sha256,
        "submission_sha256_of": "parsed arrays" if sub.source == "<in-memory>" else "file bytes",
        "submission_source": sub.source,
        "submission_declared_noise": sub.noise,
        "submission_declared_split": sub.split,
        "dataset_seed": meta.get("seed"),
    }
    if other_sub is not None:
        report.other_info = {
            "model": other_sub.model,
            "sha256": other_sub.sha256,
            "source": other_sub.source,
        }
    return report
