"""Scorer speed: 100,000 test subjects, 1,000 bootstrap resamples, all metrics.

Target: <= 30 s on the development machine (2 CPU cores).

Compares, in the same run, the scorer's bootstrap (one (N, m) statistic matrix,
resampled totals as count-matrix products, every metric on shared resamples)
against the loop a user would otherwise write: for each resample, index the
arrays and recompute each metric. Both use the same per-subject NLLs (computed
once by the NLME solver), so the ratio isolates the bootstrap; the scorer's
end-to-end time (submission checks, NLME predictions, bootstrap) is reported too.

    .venv/bin/python benchmarks/bench_scorer.py            # full size
    .venv/bin/python benchmarks/bench_scorer.py --n 20000 --naive-resamples 100

The naive loop runs ``--naive-resamples`` resamples (default 200) and its time
is scaled linearly to ``--n-bootstrap``: each resample costs the same.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from synthoct_bench.latent import add_noise
from synthoct_bench.scoring import nll as L
from synthoct_bench.scoring import score_arrays


def _synthetic(n: int, noise: float, seed: int = 0):
    """η, η̂, an EBE-like η_approx, a weak prediction with SDs, and observations."""
    from synthoct_bench.nlme import PopulationParams

    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64)
    eta = rng.standard_normal((n, 3))
    eta_noisy = add_noise(eta, noise, ids, seed)
    ebe = 0.8 * eta_noisy + 0.35 * rng.standard_normal((n, 3))
    pred = 0.25 * eta + 0.1 * rng.standard_normal((n, 3))
    params = PopulationParams()
    f_hat = L._predict(eta_noisy, params)
    obs = f_hat + params.sigma * rng.standard_normal(f_hat.shape)
    return ids, eta, eta_noisy, ebe, pred, obs, params


def _naive(per_subject: dict[str, np.ndarray], arrays: dict[str, np.ndarray], b: int, seed: int):
    """The user's loop: resample indices, recompute every metric, percentiles at the end."""

    def r2(ref, cmp):
        return 1.0 - np.sum((ref - cmp) ** 2) / np.sum((ref - ref.mean()) ** 2)

    gen = np.random.default_rng(seed)
    n = arrays["eta_noisy"].shape[0]
    rows = []
    for _ in range(b):
        idx = gen.integers(0, n, n)
        hat, approx, pred = arrays["eta_noisy"][idx], arrays["eta_ebe"][idx], arrays["pred"][idx]
        row = [
            np.mean((hat - pred) ** 2),
            r2(hat, pred),
            np.mean((hat - approx) ** 2),
            r2(hat, approx),
            np.mean((approx - pred) ** 2),
            r2(approx, pred),
            *(r2(hat[:, d], pred[:, d]) for d in range(3)),
            *(v[idx].mean() for v in per_subject.values()),
        ]
        rows.append(row)
    return np.quantile(np.asarray(rows), [0.025, 0.975], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--naive-resamples", type=int, default=200)
    parser.add_argument("--noise", type=float, default=9.0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    ids, eta, eta_noisy, ebe, pred, obs, params = _synthetic(args.n, args.noise)
    sd = np.full_like(pred, 0.9)
    # Warm up numba compilation of the NLME solver outside the timings.
    L._predict(eta[:10], params)
    L.predict_jacobian(eta[:10], params)

    t0 = time.perf_counter()
    rep = score_arrays(
        eta,
        eta_noisy,
        ebe,
        pred,
        args.noise,
        obs=obs,
        params=params,
        subject_ids=ids,
        n_bootstrap=args.n_bootstrap,
        seed=0,
    )
    t_full = time.perf_counter() - t0

    # A second submission on the same split and level: the scorer reuses f(η), f(η̂),
    # f(η_approx) and f(Random) from the first (in-process cache).
    t0 = time.perf_counter()
    score_arrays(
        eta, eta_noisy, ebe, 0.5 * pred, args.noise, obs=obs, params=params, subject_ids=ids,
        n_bootstrap=args.n_bootstrap, seed=0,
    )  # fmt: skip
    t_second = time.perf_counter() - t0

    L._CACHE.clear()
    t0 = time.perf_counter()
    rep_prob = score_arrays(
        eta,
        eta_noisy,
        ebe,
        pred,
        args.noise,
        obs=obs,
        params=params,
        subject_ids=ids,
        eta_sd=sd,
        n_bootstrap=args.n_bootstrap,
        seed=0,
    )
    t_prob = time.perf_counter() - t0

    # Bootstrap only: the same metrics without the NLME solver, scorer vs naive loop.
    t0 = time.perf_counter()
    score_arrays(eta, eta_noisy, ebe, pred, args.noise, nll=False, n_bootstrap=args.n_bootstrap)
    t_fast_t1 = time.perf_counter() - t0

    nl = L.nlme_predictions(eta, eta_noisy, ebe, pred, ids, params, seed=0)
    per_subject = L.table2_nll(nl, ids, seed=0)
    for col, src in (("pred", "eta_pred"), ("true", "eta_noisy"), ("approx", "eta_ebe")):
        per_subject[f"heldout/{col}"] = L.gaussian_nll(obs, nl.f[src], nl.sigma)
    arrays = {"eta_noisy": eta_noisy, "eta_ebe": ebe, "pred": pred}
    t0 = time.perf_counter()
    _naive(per_subject, arrays, args.naive_resamples, seed=0)
    t_naive = (time.perf_counter() - t0) * args.n_bootstrap / args.naive_resamples

    # The scorer's bootstrap on the same statistics (NLME work excluded on both sides).
    from synthoct_bench.scoring import metrics as M

    stats = M.StatMatrix(args.n)
    fns = {}
    for key, (a, b) in {"hp": (eta_noisy, pred), "ha": (eta_noisy, ebe), "ap": (ebe, pred)}.items():
        M.add_r2_stats(stats, key, a, b)
        fns[f"{key}.mse"] = M.mse_metric(key, 3)
        fns[f"{key}.r2"] = M.r2_metric(key, 3)
    for d in range(3):
        M.add_r2_stats(stats, f"d{d}", eta_noisy[:, d : d + 1], pred[:, d : d + 1])
        fns[f"d{d}"] = M.r2_metric(f"d{d}", 1)
    for name, v in per_subject.items():
        stats.add(name, v)
        fns[name] = M.mean_metric(name)
    t0 = time.perf_counter()
    M.evaluate(stats, fns, n_resamples=args.n_bootstrap, seed=0)
    t_fast_boot = time.perf_counter() - t0

    result = {
        "n_subjects": args.n,
        "n_bootstrap": args.n_bootstrap,
        "noise": args.noise,
        "scorer_all_metrics_s": round(t_full, 2),
        "scorer_all_metrics_probabilistic_s": round(t_prob, 2),
        "scorer_second_submission_same_split_s": round(t_second, 2),
        "scorer_table1_only_s": round(t_fast_t1, 2),
        "bootstrap_scorer_s": round(t_fast_boot, 2),
        "bootstrap_naive_loop_s": round(t_naive, 2),
        "naive_resamples_timed": args.naive_resamples,
        "ratio_naive_over_scorer_bootstrap": round(t_naive / t_fast_boot, 1),
        "target_s": 30.0,
        "meets_target": bool(max(t_full, t_prob) <= 30.0),
        "r2": rep.r2.value,
        "table2_predicted": rep.estimates["table2/predicted"].value,
        "marginal_nll": rep_prob.estimates["marginal_nll"].value,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
