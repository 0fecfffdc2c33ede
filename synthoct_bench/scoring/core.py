"""Scoring: arrays in, ScoreReport out (``score_arrays``); files and datasets in (``score``).

One run builds a per-subject statistic matrix for every metric (Table 1, Table 2,
the extra NLLs; for a paired comparison, both submissions), then bootstraps all of
them on one set of resamples of subjects (:mod:`synthoct_bench.scoring.metrics`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthoct_bench.latent import theoretical_max_r2
from synthoct_bench.scoring import metrics as M
from synthoct_bench.scoring import nll as L
from synthoct_bench.scoring.report import ScoreReport, SeedSpread, pred_dependent
from synthoct_bench.scoring.submission import (
    Submission,
    SubmissionError,
    align_submission,
    max_submission_bytes,
    read_submission,
)
from synthoct_bench.stats import Estimate

if TYPE_CHECKING:
    from synthoct_bench.dataset.records import Manifest

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
    eta_noisy: np.ndarray,
    eta_ebe: np.ndarray,
    obs: np.ndarray | None,
    nl: L.Table2Inputs | None,
    f_pred: np.ndarray | None,
    jac_pred: np.ndarray | None,
    t2: dict[str, np.ndarray] | None,
) -> None:
    """Per-subject statistics of the metrics that depend on one submission."""
    M.add_r2_stats(stats, f"{prefix}noisy_pred", eta_noisy, pred.eta_pred)
    M.add_r2_stats(stats, f"{prefix}ebe_pred", eta_ebe, pred.eta_pred)
    for d in range(3):
        M.add_r2_stats(
            stats, f"{prefix}dim{d + 1}", eta_noisy[:, d : d + 1], pred.eta_pred[:, d : d + 1]
        )
    if t2 is not None:
        stats.add(f"{prefix}table2/predicted", t2["predicted"])
    if obs is not None and nl is not None and f_pred is not None:
        stats.add(f"{prefix}heldout_nll/predicted", L.gaussian_nll(obs, f_pred, nl.sigma))
    if pred.cov is not None:
        stats.add(f"{prefix}eta_noisy_nll", L.eta_gaussian_nll(eta_noisy, pred.eta_pred, pred.cov))
        if obs is not None and nl is not None and f_pred is not None and jac_pred is not None:
            marginal = L.marginal_nll(obs, f_pred, jac_pred, pred.cov, nl.sigma)
            stats.add(f"{prefix}marginal_nll", marginal)


def _pred_metrics(prefix: str, noise: float, names: set[str]) -> dict[str, M.MetricFn]:
    r2 = M.r2_metric(f"{prefix}noisy_pred", 3)
    out: dict[str, M.MetricFn] = {
        "r2": r2,
        "mse": M.mse_metric(f"{prefix}noisy_pred", 3),
        "fraction_of_max": M.scaled(r2, 1.0 + noise),
        "table1/eta_noisy/eta_pred/mse": M.mse_metric(f"{prefix}noisy_pred", 3),
        "table1/eta_noisy/eta_pred/r2": r2,
        "table1/eta_ebe/eta_pred/mse": M.mse_metric(f"{prefix}ebe_pred", 3),
        "table1/eta_ebe/eta_pred/r2": M.r2_metric(f"{prefix}ebe_pred", 3),
    }
    for d in range(3):
        out[f"r2_dim{d + 1}"] = M.r2_metric(f"{prefix}dim{d + 1}", 1)
    for name in ("table2/predicted", "heldout_nll/predicted", "eta_noisy_nll", "marginal_nll"):
        if f"{prefix}{name}" in names:
            out[name] = M.mean_metric(f"{prefix}{name}")
    return out


def _score_core(
    *,
    eta: np.ndarray,
    eta_noisy: np.ndarray,
    eta_ebe: np.ndarray,
    preds: list[_Pred],
    noise: float,
    subject_ids: np.ndarray,
    obs: np.ndarray | None,
    params: Any,
    nll: bool,
    n_bootstrap: int,
    seed: int,
    nll_params: str | None,
    n_seeds: int = 1,
) -> ScoreReport:
    """Score ``preds``: the first ``n_seeds`` are training seeds of one model (their
    metrics averaged); one more, if given, is the paired comparison (one seed only)."""
    n = eta.shape[0]
    if not 1 <= n_seeds <= len(preds) or (n_seeds > 1 and len(preds) > n_seeds):
        raise ValueError("compare a single submission, not several training seeds")
    if n < 2:
        raise ValueError(f"scoring needs at least 2 subjects, got {n}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite variance >= 0 (the paper's sigma2), got {noise}")
    stats = M.StatMatrix(n)
    M.add_r2_stats(stats, "noisy_ebe", eta_noisy, eta_ebe)

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
            eta_noisy,
            eta_ebe,
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
                ("true", "eta_noisy"),
                ("approximate", "eta_ebe"),
                ("average", "zero"),
            ):
                stats.add(f"heldout_nll/{col}", L.gaussian_nll(obs, nl.f[src], nl.sigma))
        for k in range(1, len(preds)):
            want_jac = obs is not None and preds[k].cov is not None
            f_preds[k], jac_preds[k] = L.predict_with_jacobian(preds[k].eta_pred, params, want_jac)
            # Same residual draws as the first submission: the comparison is paired.
            other = L.Table2Inputs(f={**nl.f, "eta_pred": f_preds[k]}, sigma=nl.sigma)
            t2_by_pred[k] = {"predicted": L.table2_nll(other, subject_ids, seed)["predicted"]}

    prefixes = ["", *(f"sub{k}:" for k in range(1, len(preds)))]
    for k, prefix in enumerate(prefixes):
        _pred_stats(
            stats,
            prefix,
            preds[k],
            eta_noisy,
            eta_ebe,
            obs,
            nl,
            f_preds[k],
            jac_preds[k],
            t2_by_pred[k],
        )

    names = set(stats.names)
    shared: dict[str, M.MetricFn] = {
        "table1/eta_noisy/eta_ebe/mse": M.mse_metric("noisy_ebe", 3),
        "table1/eta_noisy/eta_ebe/r2": M.r2_metric("noisy_ebe", 3),
    }
    for name in sorted(names):
        if (
            name.startswith(("table2/", "heldout_nll/"))
            and ":" not in name
            and not name.endswith("predicted")
        ):
            shared[name] = M.mean_metric(name)
    per_seed = [_pred_metrics(prefixes[j], noise, names) for j in range(n_seeds)]
    common = [k for k in per_seed[0] if all(k in fns for fns in per_seed)]
    if n_seeds == 1:
        main = {**per_seed[0], **shared}
    else:
        main = {k: M.mean_of([fns[k] for fns in per_seed]) for k in common}
        main.update(shared)
    order = [
        "r2",
        "mse",
        "fraction_of_max",
        "table1/eta_noisy/eta_pred/mse",
        "table1/eta_noisy/eta_pred/r2",
        "table1/eta_noisy/eta_ebe/mse",
        "table1/eta_noisy/eta_ebe/r2",
        "table1/eta_ebe/eta_pred/mse",
        "table1/eta_ebe/eta_pred/r2",
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
        "eta_noisy_nll",
    ]
    main = {k: main[k] for k in order if k in main}
    all_metrics: dict[str, M.MetricFn] = dict(main)
    # Table 1's (eta_noisy, eta_pred) row is r2 and mse again: spread once, under those.
    spread_names = [
        k
        for k in main
        if n_seeds > 1 and pred_dependent(k) and not k.startswith("table1/eta_noisy/eta_pred/")
    ]
    for k in spread_names:
        for j in range(n_seeds):
            all_metrics[f"seed{j}:{k}"] = per_seed[j][k]
    other_fns: dict[str, M.MetricFn] = {}
    if len(preds) > n_seeds:
        theirs = {**_pred_metrics(prefixes[1], noise, names), **shared}
        for k, fn in theirs.items():
            if k in main:
                other_fns[k] = fn
                all_metrics[f"other:{k}"] = fn
                if pred_dependent(k):
                    all_metrics[f"diff:{k}"] = M.difference(main[k], fn)
    est = M.evaluate(stats, all_metrics, n_resamples=n_bootstrap, seed=seed)

    across_seeds = {
        k: SeedSpread(tuple(est[f"seed{j}:{k}"].value for j in range(n_seeds)))
        for k in spread_names
    }
    other = difference = None
    if len(preds) > n_seeds:
        other = {k: est[f"other:{k}"] for k in main if f"other:{k}" in est}
        difference = {k: est[f"diff:{k}"] for k in main if f"diff:{k}" in est}
    return ScoreReport(
        noise=float(noise),
        split=None,
        n_subjects=n,
        theoretical_max=theoretical_max_r2(noise),
        estimates={k: est[k] for k in main},
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
        model=preds[0].label,
        probabilistic=preds[0].cov is not None,
        nll_params=nll_params if nll else None,
        marginal_method=MARGINAL_METHOD if "marginal_nll" in est else None,
        other=other,
        difference=difference,
        other_info={"model": preds[1].label} if len(preds) > n_seeds else None,
        across_seeds=across_seeds,
        warnings=_resolution_warnings(est["r2"], n, noise),
    )


def _resolution_warnings(r2: Estimate, n: int, noise: float) -> list[str]:
    """Say when the R² interval contains 0, the average baseline's R² (it predicts the
    training mean): the split is then too small to tell the model from the mean."""
    if r2.low <= 0.0 <= r2.high:
        return [
            f"the R2 interval [{r2.low:.4f}, {r2.high:.4f}] contains 0, the average "
            f"baseline's R2: {n:,} subjects cannot tell this model from predicting the mean "
            f"at noise {noise:g}; score on a larger test split"
        ]
    return []


def score_arrays(
    eta: np.ndarray,
    eta_noisy: np.ndarray,
    eta_ebe: np.ndarray,
    eta_pred: np.ndarray,
    noise: float,
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

    eta (N, 3) noise-free random effects; eta_noisy (N, 3) η̂ at noise level ``noise``
    (the comparison target of Table 1); eta_ebe (N, 3) the empirical Bayes estimates
    η_approx; eta_pred (N, 3) the predictions; obs (N, 21) the observations (enables the
    held-out and marginal NLLs); params the NLME PopulationParams (or dict) used for the
    NLLs, default the paper's; eta_sd / eta_cov the predictive uncertainty; compare an
    (N, 3) array or a Submission aligned to the same subjects for a paired comparison;
    ``nll=False`` skips everything that needs the NLME solver.
    """
    eta = _check_eta("eta", eta, None)
    n = eta.shape[0]
    eta_noisy = _check_eta("eta_noisy", eta_noisy, n)
    eta_ebe = _check_eta("eta_ebe", eta_ebe, n)
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
    report = _score_core(
        eta=eta,
        eta_noisy=eta_noisy,
        eta_ebe=eta_ebe,
        preds=preds,
        noise=float(noise),
        subject_ids=ids,
        obs=obs,
        params=params,
        nll=nll,
        n_bootstrap=n_bootstrap,
        seed=seed,
        nll_params=desc,
    )
    _check_finite(report)
    return report


def _nll_params(meta: Manifest, which: str, noise: int) -> tuple[Any, str]:
    """The dataset's NLME parameters for the NLLs, and a line saying which they are."""
    if which == "simulation":
        return (
            meta.nlme.simulation_params,
            "the dataset's simulation parameters (manifest 'simulation_params')",
        )
    if which == "fitted":
        fit = meta.nlme.fits.get(noise)
        if fit is None:
            raise ValueError(
                f"the dataset records no fitted parameters for noise level {noise}; "
                "use nll_params='simulation'"
            )
        method = {"foce": "FOCE", "importance": "importance-sampling"}.get(fit.method, fit.method)
        return fit.params, f"the dataset's {method} fit at noise={noise} (manifest 'fits')"
    raise ValueError(f"nll_params must be 'simulation' or 'fitted', got {which!r}")


def _load_submission(predictions: Any, n_expected: int) -> Submission:
    if isinstance(predictions, Submission):
        return predictions
    return read_submission(
        predictions, max_bytes=max_submission_bytes(n_expected), max_rows=n_expected
    )


def _unchecked(sub: Submission, noise: int, split: str) -> list[str]:
    """What the submission did not record, so could not be checked: said first in reports."""
    out = []
    if sub.noise is None:
        out.append(f"it records no noise level: scored as noise {noise} on the caller's word")
    if sub.split is None:
        out.append(f"it records no split: scored as split {split!r} on the caller's word")
    if sub.dataset_fingerprint is None:
        out.append(
            "it records no dataset fingerprint: it cannot be tied to this dataset "
            "(write it with write_submission(..., dataset=DATA))"
        )
    return out


def _check_finite(report: ScoreReport) -> None:
    """A score is never NaN or inf: refuse rather than print one."""
    tables = [report.estimates, report.other or {}, report.difference or {}]
    for est in tables:
        for name, e in est.items():
            if not (np.isfinite(e.value) and np.isfinite(e.low) and np.isfinite(e.high)):
                raise ValueError(
                    f"metric {name} is not finite ({e.value}, [{e.low}, {e.high}]): the data "
                    "or the submission hold values the metrics cannot use; check both with "
                    "`synthoct verify` and the submission's eta_sd/eta_cov"
                )


def _submission_record(sub: Submission) -> dict[str, Any]:
    """What a report says about one scored submission."""
    return {
        "source": sub.source,
        "sha256": sub.sha256,
        "sha256_of": "parsed arrays" if sub.source == "<in-memory>" else "file bytes",
        "model": sub.model,
        "declared_noise": sub.noise,
        "declared_split": sub.split,
        "declared_dataset_fingerprint": sub.dataset_fingerprint,
    }


def _seed_list(predictions: Any) -> list[Any]:
    """One submission, or a list/tuple of them (training seeds of one model)."""
    if isinstance(predictions, list | tuple):
        if not predictions:
            raise ValueError("no submissions given: pass one, or a list of training seeds")
        return list(predictions)
    return [predictions]


def _check_seeds(subs: list[Submission]) -> None:
    """Several training seeds must be one model's, each a different file."""
    models = sorted({s.model for s in subs if s.model is not None})
    if len(models) > 1:
        raise ValueError(
            f"training seeds of one model are scored together, but these submissions record "
            f"models {', '.join(models)}; score each model on its own"
        )
    sources = [s.source for s in subs if s.source != "<in-memory>"]
    resolved = [str(Path(src).resolve()) for src in sources]
    twice = sorted({src for src, r in zip(sources, resolved, strict=True) if resolved.count(r) > 1})
    if twice:
        raise ValueError(f"{twice[0]} is given twice; give each training seed's file once")


def score(
    predictions: str | os.PathLike | Any,
    data: str | os.PathLike,
    noise: int,
    split: str = "test",
    *,
    compare: str | os.PathLike | Any | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    revision: str | None = None,
    nll: bool = True,
    nll_params: str = "simulation",
    verify: bool = True,
    references: str | os.PathLike | None = None,
) -> ScoreReport:
    """Score a submission (path, DataFrame, pyarrow Table or dict) against a dataset.

    ``predictions`` may also be a list of submissions of one model trained with different
    seeds: each metric is then the mean over seeds (bootstrapped on shared resamples),
    and ``report.across_seeds`` gives each seed's value, their mean and sample SD.

    ``data`` is a local dataset directory or a Hub repo id (``revision`` pins it). Its
    shards are checked against the manifest's sha256 before scoring (``verify=False``
    skips that, and the report says so), and a submission that records another noise
    level, split or dataset fingerprint is refused.
    ``nll_params`` picks the NLME parameters of every NLL: ``"simulation"`` (those the
    dataset was simulated with, the default) or ``"fitted"`` (the dataset's FOCE fit at
    this noise level, what a practitioner would have). ``compare`` is a second
    submission scored on the same subjects and resamples.
    ``references`` is the private references file of a blind build
    (``references/test.parquet``), needed to score its blind split: it must be the file
    the dataset's manifest records (sha256) and belong to this dataset (fingerprint).
    """
    import synthoct_bench
    from synthoct_bench.dataset.layout import noise_columns
    from synthoct_bench.dataset.load import read_columns, read_metadata
    from synthoct_bench.dataset.manifest import manifest_fingerprint

    meta = read_metadata(data, revision=revision)
    noise = meta.check_noise(noise)
    meta.check_split(split)
    fingerprint = manifest_fingerprint(meta)
    noisy_col, ebe_col, obs_col = noise_columns(noise)
    cols = ["subject_id", "eta", noisy_col, ebe_col] + ([obs_col] if nll else [])
    data_cols = read_columns(
        data, split, cols, revision=revision, verify=verify, references=references
    )
    ids = np.asarray(data_cols["subject_id"]).astype(np.int64)

    def aligned(submission: Any) -> Submission:
        loaded = _load_submission(submission, ids.size)
        return align_submission(
            loaded, ids, noise=noise, split=split, dataset_fingerprint=fingerprint
        )

    subs = [aligned(p) for p in _seed_list(predictions)]
    _check_seeds(subs)
    if compare is not None and len(subs) > 1:
        raise ValueError("compare takes one submission, not several training seeds")
    model = next((s.model for s in subs if s.model is not None), None)
    preds = [_Pred(s.eta_pred, s.eta_cov_full, model) for s in subs]
    other_sub = None
    if compare is not None:
        other_sub = aligned(compare)
        preds.append(_Pred(other_sub.eta_pred, other_sub.eta_cov_full, other_sub.model))
    params, params_desc = _nll_params(meta, nll_params, noise)
    report = _score_core(
        eta=np.asarray(data_cols["eta"], dtype=np.float64),
        eta_noisy=np.asarray(data_cols[noisy_col], dtype=np.float64),
        eta_ebe=np.asarray(data_cols[ebe_col], dtype=np.float64),
        preds=preds,
        noise=noise,
        subject_ids=ids,
        obs=np.asarray(data_cols[obs_col], dtype=np.float64) if nll else None,
        params=params,
        nll=nll,
        n_bootstrap=n_bootstrap,
        seed=seed,
        nll_params=params_desc,
        n_seeds=len(subs),
    )
    report.split = split
    report.unchecked = []
    for s in subs:
        prefix = f"{s.source}: " if len(subs) > 1 else ""
        report.unchecked += [prefix + item for item in _unchecked(s, noise, split)]
    if not verify:
        report.unchecked.insert(
            0, "the dataset's shards were not checked against the manifest (verify=False)"
        )
    report.provenance = {
        "dataset": str(data),
        "dataset_fingerprint": fingerprint,
        "data_verified": verify,
        "revision": revision,
        "scorer_version": synthoct_bench.__version__,
        "dataset_seed": meta.seed,
        **({"references": str(references)} if references is not None else {}),
    }
    report.submissions = [_submission_record(s) for s in subs]
    if other_sub is not None:
        report.other_info = {
            "model": other_sub.model,
            "sha256": other_sub.sha256,
            "source": other_sub.source,
        }
    _check_finite(report)
    return report
