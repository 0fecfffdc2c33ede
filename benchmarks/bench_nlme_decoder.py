"""Speed, accuracy and memory of the NLME decoder (`synthoct_bench.nlme.predict`).

Measured in one run, on the same subjects (η ~ N(0, I), the paper's model):
  * fast:        predict(eta)                      compiled adaptive Radau IIA, all threads
  * fast+sens:   predict(eta, sensitivities=True)  plus dC/dη (N, 21, 3)
  * scipy/subj:  solve_ivp per subject (what a user would write), Radau rtol 1e-8 and
                 LSODA rtol 1e-6, analytic Jacobian
  * scipy/batch: one solve_ivp over all subjects stacked (2N states), BDF with a
                 block-diagonal jac_sparsity, rtol 1e-8
Accuracy: max |error| per subject against scipy Radau at rtol 1e-10, atol 1e-12 on
the 5^3 grid of η_k in {-5, -2.5, 0, 2.5, 5} plus N(0, I) draws; sensitivities
against central differences of the tight-tolerance fast solver.
Memory: peak RSS of a fresh process running predict (and simulate) on 1.1M subjects.

    .venv/bin/python benchmarks/bench_nlme_decoder.py            # full run, a few minutes
    .venv/bin/python benchmarks/bench_nlme_decoder.py --quick    # smaller baselines
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.sparse import bmat, identity

from synthoct_bench.nlme import OBS_TIMES, PAPER_THETA, predict, reference_predict, simulate

TV = np.asarray(PAPER_THETA)


def best_rate(fn, n: int, repeats: int = 3) -> float:
    """Subjects per second, best of ``repeats`` wall-clock runs."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def scipy_per_subject(eta: np.ndarray, method: str, rtol: float, atol: float) -> np.ndarray:
    return reference_predict(eta, method=method, rtol=rtol, atol=atol)


def scipy_batched(eta: np.ndarray, rtol: float = 1e-8, atol: float = 1e-10) -> np.ndarray:
    """All subjects in one 2N-state system; BDF with a block-diagonal sparsity pattern."""
    n = eta.shape[0]
    ka, imax, ic50 = (TV * np.exp(eta)).T

    def rhs(t, y):
        d, c = y[:n], y[n:]
        return np.concatenate([-ka * d, ka * d - imax * c / (ic50 + c)])

    eye = identity(n, format="csr")
    pattern = bmat([[eye, None], [eye, eye]], format="csr")  # dD/dD, dC/dD, dC/dC per subject
    y0 = np.concatenate([np.ones(n), np.zeros(n)])
    sol = solve_ivp(
        rhs,
        (0.0, float(OBS_TIMES[-1])),
        y0,
        method="BDF",
        t_eval=OBS_TIMES,
        jac_sparsity=pattern,
        rtol=rtol,
        atol=atol,
    )
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y[n:]


def accuracy(n_random: int, seed: int) -> dict:
    grid = np.linspace(-5, 5, 5)
    corners = np.array(np.meshgrid(grid, grid, grid, indexing="ij")).reshape(3, -1).T
    eta = np.vstack([corners, np.random.default_rng(seed).normal(size=(n_random, 3))])
    ref = reference_predict(eta)
    err = np.abs(predict(eta) - ref).max(axis=1)
    _, sens = predict(eta, sensitivities=True)
    h = 1e-5
    sens_err = np.zeros(eta.shape[0])
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        fd = (
            predict(eta + step, rtol=1e-11, atol=1e-14)
            - predict(eta - step, rtol=1e-11, atol=1e-14)
        ) / (2 * h)
        sens_err = np.maximum(sens_err, np.abs(sens[:, :, k] - fd).max(axis=1))
    worst = int(err.argmax())
    return {
        "subjects": int(eta.shape[0]),
        "pred_max_abs_err": float(err.max()),
        "pred_median_abs_err": float(np.median(err)),
        "pred_max_abs_err_normal_draws": float(err[corners.shape[0] :].max()),
        "worst_eta": eta[worst].tolist(),
        "sens_max_abs_err": float(sens_err.max()),
        "sens_median_abs_err": float(np.median(sens_err)),
    }


MEMORY_SNIPPET = """
import resource, sys, numpy as np
from synthoct_bench.nlme import predict, simulate
n = int(sys.argv[1]); eta = np.random.default_rng(0).normal(size=(n, 3))
what = sys.argv[2]
if what == "predict": predict(eta)
elif what == "sens": predict(eta, sensitivities=True)
else: simulate(eta, seed=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_mb(n: int, what: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SNIPPET, str(n), what],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # ru_maxrss is KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="subjects for the fast solver")
    parser.add_argument("--n-scipy", type=int, default=300, help="subjects, per-subject scipy")
    parser.add_argument("--n-batched", type=int, default=2000, help="subjects, batched scipy")
    parser.add_argument("--n-accuracy", type=int, default=100, help="N(0,I) draws for accuracy")
    parser.add_argument("--memory-n", type=int, default=1_100_000, help="subjects, memory test")
    parser.add_argument("--quick", action="store_true", help="smaller baselines, no memory test")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.n_scipy, args.n_batched, args.n_accuracy, args.memory_n = 60, 500, 20, 0

    import numba

    eta = np.random.default_rng(args.seed).normal(size=(args.n, 3))
    predict(eta[:10], sensitivities=True)  # compile / load cache outside the timings
    res: dict = {"threads": numba.get_num_threads(), "cpus": os.cpu_count(), "n": args.n}
    res["fast"] = best_rate(lambda: predict(eta), args.n)
    res["fast_sens"] = best_rate(lambda: predict(eta, sensitivities=True), args.n)
    res["simulate"] = best_rate(lambda: simulate(eta, seed=1), args.n)
    # CPU time is robust to other jobs on the machine: subjects per CPU-second
    # times the thread count is what an otherwise idle machine would give.
    for key, sens in (("fast", False), ("fast_sens", True)):
        cpu = float("inf")
        for _ in range(3):
            t_cpu = time.process_time()
            predict(eta, sensitivities=sens)
            cpu = min(cpu, time.process_time() - t_cpu)
        res[f"{key}_per_cpu_second"] = args.n / cpu
        res[f"{key}_idle_projection"] = args.n / cpu * res["threads"]

    sub = eta[: args.n_scipy]
    truth = predict(sub, rtol=1e-11, atol=1e-14)
    for name, method, rtol, atol in [
        ("scipy_subj_radau", "Radau", 1e-8, 1e-10),
        ("scipy_subj_lsoda", "LSODA", 1e-6, 1e-9),
    ]:
        t0 = time.perf_counter()
        out = scipy_per_subject(sub, method, rtol, atol)
        res[name] = sub.shape[0] / (time.perf_counter() - t0)
        res[name + "_max_err"] = float(np.abs(out - truth).max())
    bsub = eta[: args.n_batched]
    t0 = time.perf_counter()
    out = scipy_batched(bsub)
    res["scipy_batched_bdf"] = bsub.shape[0] / (time.perf_counter() - t0)
    res["scipy_batched_bdf_max_err"] = float(
        np.abs(out - predict(bsub, rtol=1e-11, atol=1e-14)).max()
    )
    res["fast_max_err_vs_tight"] = float(np.abs(predict(sub) - truth).max())
    for base in ("scipy_subj_radau", "scipy_subj_lsoda", "scipy_batched_bdf"):
        res[f"ratio_fast_vs_{base}"] = res["fast"] / res[base]
        res[f"ratio_fast_sens_vs_{base}"] = res["fast_sens"] / res[base]

    res["accuracy"] = accuracy(args.n_accuracy, args.seed)
    if args.memory_n:
        res["memory_n"] = args.memory_n
        for what in ("predict", "sens", "simulate"):
            res[f"peak_rss_mb_{what}"] = peak_memory_mb(args.memory_n, what)
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    print(f"threads={res['threads']} (cpus={res['cpus']}), N={args.n}")
    print(f"  fast predict         {res['fast']:>12,.0f} subjects/s")
    print(f"  fast predict + sens  {res['fast_sens']:>12,.0f} subjects/s")
    print(f"  simulate             {res['simulate']:>12,.0f} subjects/s")
    for key in ("fast", "fast_sens"):
        print(
            f"  {key:<20} {res[key + '_per_cpu_second']:>12,.0f} subjects per CPU-second"
            f" -> {res[key + '_idle_projection']:,.0f} subjects/s on {res['threads']} idle threads"
        )
    for base in ("scipy_subj_radau", "scipy_subj_lsoda", "scipy_batched_bdf"):
        print(
            f"  {base:<20} {res[base]:>12,.1f} subjects/s  (max err {res[base + '_max_err']:.1e})"
            f"  fast is {res['ratio_fast_vs_' + base]:,.0f}x, fast+sens "
            f"{res['ratio_fast_sens_vs_' + base]:,.0f}x"
        )
    acc = res["accuracy"]
    print(
        f"  accuracy vs Radau 1e-10 on {acc['subjects']} subjects (|eta|<=5 grid + draws): "
        f"max {acc['pred_max_abs_err']:.1e}, median {acc['pred_median_abs_err']:.1e}; "
        f"sensitivities max {acc['sens_max_abs_err']:.1e}, median {acc['sens_median_abs_err']:.1e}"
    )
    if args.memory_n:
        mem = {w: res[f"peak_rss_mb_{w}"] for w in ("predict", "sens", "simulate")}
        print(
            f"  peak RSS at {args.memory_n:,} subjects: predict {mem['predict']:.0f} MB,"
            f" +sens {mem['sens']:.0f} MB, simulate {mem['simulate']:.0f} MB"
        )
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
