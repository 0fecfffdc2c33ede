"""Dataset builder throughput per stage, memory as N grows, and the projected full-scale time.

Builds a dataset (default: the ``small`` preset, 55,000 subjects, phantom images at
224 px, all five noise levels) and reports subjects/s for each stage (latents,
images, PNG, simulation, EBE, Parquet) from the build's own stage timers, plus:

- memory: peak RSS of builds at two sizes with the same shard size, each in a fresh
  process (``--memory-ns``): flat when shards are streamed, not held;
- baselines a user would otherwise write, timed in the same run on a few subjects:
  per-subject scipy ``solve_ivp`` (LSODA, rtol 1e-6) for simulation, per-subject
  scipy BFGS MAP for the EBE, and ``datasets.Dataset.from_dict(...).to_parquet`` for
  writing a shard;
- projections for ``full`` (1.1M subjects) on this machine with the phantom, and on a
  GPU box with diffusion images (GPU cost from REFERENCE.md, CPU stages from here).

    .venv/bin/python benchmarks/bench_build.py                      # small, ~15-30 min here
    .venv/bin/python benchmarks/bench_build.py --n 11000 --workers 2 # a quicker subset

Writes ``--json`` (default benchmarks/results/bench_build.json) and a PNG bar chart
beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_N = 1_100_000
#: TFLOP per 512×512 SD 1.5 image, counted by ``count_diffusion_cost``: PNDM's 50 steps
#: (51 UNet calls) and a 20-step DPM-Solver++ (20 calls), no guidance.
IMAGE_TFLOP_PNDM50 = 43.48
IMAGE_TFLOP_20_STEPS = 18.58
#: An H100's dense bf16 peak and the share of it assumed until one is measured
#: (BENCHMARKS, "Diffusion and β-VAE": the published A100 rate is 40% of its peak).
H100_PEAK_TFLOPS, ASSUMED_FRACTION_OF_PEAK = 989.4, 0.25
#: H100 GPU-hours for 1.1M 512×512 diffusion images at that rate (a projection).
GPU_HOURS_PNDM50 = (
    FULL_N * IMAGE_TFLOP_PNDM50 / (H100_PEAK_TFLOPS * ASSUMED_FRACTION_OF_PEAK) / 3600
)
GPU_HOURS_20_STEPS = (
    FULL_N * IMAGE_TFLOP_20_STEPS / (H100_PEAK_TFLOPS * ASSUMED_FRACTION_OF_PEAK) / 3600
)


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0  # Linux: KiB


def run_build(n: int, workers: int, out: Path, shard_size: int | None) -> dict:
    from synthoct_bench.dataset import build

    t = time.perf_counter()
    summary = build(out, n=n, workers=workers, shard_size=shard_size, progress=True)
    wall = time.perf_counter() - t
    print(summary, flush=True)
    return {
        "n": n,
        "workers": workers,
        "shard_size": shard_size,
        "wall_s": wall,
        "bytes": summary.bytes_built,
        "stage_s": summary.stage_seconds,
        "stage_subjects_per_s": {
            k: (summary.rows_built / v if v > 0 and k != "fit" else None)
            for k, v in summary.stage_seconds.items()
        },
        "peak_rss_mb": _peak_rss_mb(),
    }


def memory_probe(ns: list[int], shard_size: int) -> list[dict]:
    """Build each size in a fresh interpreter (workers=1, one level, a short fit: the
    probe is about the shard stage) and read its peak RSS."""
    rows = []
    for n in ns:
        with tempfile.TemporaryDirectory() as tmp:
            code = (
                "import resource, json, sys\n"
                "from synthoct_bench.dataset import build\n"
                f"build({str(Path(tmp) / 'ds')!r}, n={n}, shard_size={shard_size}, "
                "noise_levels=(9,), progress=False, fit_subjects=100, "
                "fit_options={'compute_se': False, 'em_iter': 5, 'max_iter': 0})\n"
                "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
            )
            t = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            rss = int(res.stdout.strip().splitlines()[-1]) / 1024.0
            rows.append({"n": n, "peak_rss_mb": rss, "wall_s": time.perf_counter() - t})
            print(f"memory probe: n={n:,} peak RSS {rss:,.0f} MB", flush=True)
    return rows


def baselines(n_sim: int, n_ebe: int, seed: int = 0) -> dict:
    """What a user would write without this library, on a few subjects, vs ours."""
    from scipy.optimize import minimize

    from synthoct_bench import latent
    from synthoct_bench.nlme import PopulationParams, ebe, reference_predict, simulate

    ids = np.arange(max(n_sim, n_ebe))
    eta = latent.select_eta(latent.sample_z(ids, seed))
    params = PopulationParams()
    sigma = float(params.sigma)
    y = simulate(eta, seed, subject_ids=ids, stream="residual/s0")
    simulate(eta[:5], seed)  # compile outside the timings
    ebe(y[:5], params)

    t = time.perf_counter()
    simulate(eta[:n_sim], seed, subject_ids=ids[:n_sim], stream="residual/s0")
    ours_sim = n_sim / (time.perf_counter() - t)
    t = time.perf_counter()
    reference_predict(eta[:n_sim], method="LSODA", rtol=1e-6, atol=1e-9)
    scipy_sim = n_sim / (time.perf_counter() - t)

    t = time.perf_counter()
    ebe(y[:n_ebe], params)
    ours_ebe = n_ebe / (time.perf_counter() - t)

    def objective(e: np.ndarray, yi: np.ndarray) -> float:
        f = reference_predict(e[None, :], method="LSODA", rtol=1e-6, atol=1e-9)[0]
        return 0.5 * float(np.sum((yi - f) ** 2)) / sigma**2 + 0.5 * float(e @ e)

    t = time.perf_counter()
    for i in range(n_ebe):
        minimize(objective, np.zeros(3), args=(y[i],), method="BFGS", options={"gtol": 1e-5})
    scipy_ebe = n_ebe / (time.perf_counter() - t)
    return {
        "simulation": {"ours": ours_sim, "scipy_lsoda_per_subject": scipy_sim, "n": n_sim},
        "ebe": {"ours": ours_ebe, "scipy_bfgs_per_subject": scipy_ebe, "n": n_ebe},
    }


def parquet_baseline(shard: Path) -> dict:
    """Our writer vs datasets.Dataset.from_dict(...).to_parquet on the same rows."""
    import datasets
    import pyarrow.parquet as pq

    from synthoct_bench.dataset.writer import write_parquet_atomic

    table = pq.read_table(shard)
    rows = table.num_rows
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_parquet_atomic(table, Path(tmp) / "ours.parquet")
        ours = rows / (time.perf_counter() - t)
        features = datasets.Features.from_arrow_schema(table.schema)
        t = time.perf_counter()
        ds = datasets.Dataset.from_dict(table.to_pydict(), features=features)
        ds.to_parquet(str(Path(tmp) / "hf.parquet"))
        hf = rows / (time.perf_counter() - t)
    return {"ours": ours, "datasets_from_dict_to_parquet": hf, "rows": rows}


def projections(stage_s: dict, rows: int, cores: int) -> dict:
    """Full-scale wall time from measured per-subject stage costs (summed worker-seconds)."""
    per_subject = {k: v / rows for k, v in stage_s.items() if k != "fit" and rows}
    cpu_s = sum(per_subject.values()) * FULL_N
    fit_s = stage_s.get("fit", 0.0)
    # GPU box: images on the GPU; PNG cost scales with pixels (512² vs 224²); other CPU
    # stages as measured here, spread over 16 cores (the H100 machines' count).
    non_image = {k: v for k, v in per_subject.items() if k not in ("images", "png")}
    png_512 = per_subject.get("png", 0.0) * (512 / 224) ** 2
    gpu_cpu_s = (sum(non_image.values()) + png_512) * FULL_N / 16
    return {
        "phantom_this_machine_h": (cpu_s / cores + fit_s) / 3600,
        "cores_assumed": cores,
        "diffusion_gpu_h_pndm50": max(GPU_HOURS_PNDM50, gpu_cpu_s / 3600),
        "diffusion_gpu_h_20_steps": max(GPU_HOURS_20_STEPS, gpu_cpu_s / 3600),
        "diffusion_box_cpu_stages_h_on_16_cores": gpu_cpu_s / 3600,
        "per_subject_ms": {k: 1e3 * v for k, v in per_subject.items()},
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = {k: v for k, v in result["build"]["stage_subjects_per_s"].items() if v}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(list(rates), list(rates.values()), color="#4477aa")
    ax.set_yscale("log")
    ax.set_ylabel("subjects / s (per worker-second)")
    ax.set_title(f"synthoct build, n={result['build']['n']:,}, phantom 224 px")
    for i, v in enumerate(rates.values()):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=55_000, help="subjects (small preset: 55,000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shard-size", type=int, default=None)
    parser.add_argument("--out", default=None, help="keep the built dataset here")
    parser.add_argument("--memory-ns", default="1100,4400", help="sizes for the RSS probe")
    parser.add_argument("--baseline-sim", type=int, default=200)
    parser.add_argument("--baseline-ebe", type=int, default=5)
    parser.add_argument("--json", default="benchmarks/results/bench_build.json")
    args = parser.parse_args()

    tmp = None
    if args.out:
        out = Path(args.out)
    else:
        tmp = tempfile.mkdtemp(prefix="bench_build_")
        out = Path(tmp) / "ds"
    result: dict = {"machine": {"cores": os.cpu_count(), "load_avg": os.getloadavg()}}
    try:
        result["build"] = run_build(args.n, args.workers, out, args.shard_size)
        first_train = sorted((out / "data").glob("train-*.parquet"))[0]
        result["parquet_baseline"] = parquet_baseline(first_train)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    result["baselines"] = baselines(args.baseline_sim, args.baseline_ebe)
    ns = [int(x) for x in args.memory_ns.split(",") if x]
    result["memory"] = memory_probe(ns, shard_size=500) if ns else []
    b = result["build"]
    rows = b["n"]
    result["projection_full"] = projections(b["stage_s"], rows, os.cpu_count() or 1)
    result["machine"]["load_avg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2, default=float))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    plot(result, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
