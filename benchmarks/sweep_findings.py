"""The tables behind BENCHMARKS.md's sensitivity section, from a finished `synthoct vae sweep`.

    synthoct vae sweep --out runs/sweep --workers 2
    .venv/bin/python benchmarks/sweep_findings.py runs/sweep

Prints, in Markdown: the outcome of every (optimizer, learning rate) over
objectives, latent sizes and seeds; the median held-out reconstruction MSE (μ
decoded) per (objective, optimizer, learning rate); how many cells per (optimizer,
learning rate) reach half the mean image's MSE; how many beat the mean image and
how many output a black image; the best cell per objective; and
the variance shares pooled, per seed and as a mean over seeds with a 95% interval,
with and without the saturated cells.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from synthoct_bench.generators.vae.sweep import (
    LEARNT_FRACTION,
    TRAINED,
    SweepGrid,
    decompose_variance,
    held_out_images,
    shares_over_seeds,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep", help="the sweep folder (results.parquet, report.json)")
    args = ap.parse_args()
    root = Path(args.sweep)
    rows = pq.read_table(root / "results.parquet").to_pylist()
    report = json.loads((root / "report.json").read_text())
    grid = SweepGrid.from_dict(json.loads((root / "sweep.json").read_text()))
    images = held_out_images(grid)
    mean_mse = report["mean_image_mse"]
    black_mse = float((images**2).mean())  # the MSE of an all-black output
    lrs = sorted({r["lr"] for r in rows})
    opts = [o for o in ("adam", "rmsprop", "sgd") if any(r["optimizer"] == o for r in rows)]
    order = ["vae", "iwae", "infovae", "logcosh", "beta", "tcvae"]
    objectives = sorted({r["objective"] for r in rows}, key=order.index)

    def trained(r: dict) -> bool:
        return r["outcome"] in TRAINED and r["reconstruction_mse"] is not None

    print(f"Reference MSEs on the held-out images: mean image {mean_mse:.4f}, black image "
          f"{black_mse:.4f}.\n")  # fmt: skip

    def optimizer_lr_table(title: str, cell: Callable[[list[dict]], str]) -> None:
        """A Markdown table, a row per optimizer and a column per learning rate, each
        entry ``cell`` of that (optimizer, lr)'s rows."""
        print(f"{title}\n")
        print("| optimizer | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
        print("|---|" + "---|" * len(lrs))
        for opt in opts:
            cells = [cell([r for r in rows if r["optimizer"] == opt and r["lr"] == lr])
                     for lr in lrs]  # fmt: skip
            print(f"| {opt} | " + " | ".join(cells) + " |")

    def outcomes(mine: list[dict]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["outcome"] for r in mine).items()))

    def learnt(mine: list[dict]) -> str:
        done = [r for r in mine if trained(r)]
        half = sum(r["reconstruction_mse"] <= LEARNT_FRACTION * mean_mse for r in done)
        return f"{half} of {len(done)}" if done else "—"

    optimizer_lr_table(
        "Outcomes per optimizer and learning rate (all objectives, latent sizes, seeds):", outcomes
    )

    print("\nMedian held-out reconstruction MSE (μ decoded) of the trained cells:\n")
    print("| objective | optimizer | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
    print("|---|---|" + "---|" * len(lrs))
    for obj in objectives:
        for opt in opts:
            cells = []
            for lr in lrs:
                key = (obj, opt, lr)
                v = np.array([r["reconstruction_mse"] for r in rows if trained(r)
                              and (r["objective"], r["optimizer"], r["lr"]) == key])  # fmt: skip
                cells.append(f"{np.median(v):.3f}" if v.size else "diverged")
            print(f"| {obj} | {opt} | " + " | ".join(cells) + " |")

    optimizer_lr_table(
        "\nTrained cells at most half the mean image's MSE (learnt), of the trained cells:", learnt
    )

    done = [r for r in rows if trained(r)]
    below = [r for r in done if r["reconstruction_mse"] < mean_mse]
    halved = [r for r in done if r["reconstruction_mse"] <= LEARNT_FRACTION * mean_mse]
    black = [r for r in done if abs(r["reconstruction_mse"] - black_mse) < 0.03 * black_mse]
    untrained = [r for r in done if r["reconstruction_mse"] > 2 * black_mse]
    print(f"\nOf {len(done)} trained cells: {len(below)} beat the mean image ({len(halved)} by "
          f"2x or more), {len(black)} "
          f"draw (nearly) a black image, {len(untrained)} are worse than twice that "
          "(a saturated output, near white, that the loss cannot leave).")  # fmt: skip
    conv_untrained = [r for r in untrained if r["outcome"] == "converged"]
    print(f"{len(conv_untrained)} of the 'converged' cells are among the last: the 1% rule "
          "fires on a loss that does not move.")  # fmt: skip

    print("\nBest cell per objective (lowest mean held-out MSE over seeds):\n")
    print("| objective | optimizer | lr | latent | MSE per seed | η-probe R² | active units |")
    print("|---|---|---|---|---|---|---|")
    for obj in objectives:
        groups: dict[tuple, list] = defaultdict(list)
        for r in done:
            if r["objective"] == obj:
                groups[(r["optimizer"], r["lr"], r["latent_dim"])].append(r)
        key = min(groups, key=lambda k: np.mean([r["reconstruction_mse"] for r in groups[k]]))
        g = sorted(groups[key], key=lambda r: r["seed"])
        mse = ", ".join(f"{r['reconstruction_mse']:.4f}" for r in g)
        probe = np.mean([r["eta_probe_r2"] for r in g if r["eta_probe_r2"] is not None])
        units = ", ".join(str(r["active_units"]) for r in g)
        print(f"| {obj} | {key[0]} | {key[1]:g} | {key[2]} | {mse} | {probe:.2f} | {units} |")

    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) > 1:
        mse_by_seed = {sd: np.array([r["reconstruction_mse"] for r in done if r["seed"] == sd])
                       for sd in seeds}  # fmt: skip
        print("\nPer seed: " + "; ".join(
            f"seed {sd}: {int((m < mean_mse).sum())} beat the mean image, "
            f"{int((m <= LEARNT_FRACTION * mean_mse).sum())} learnt, of {m.size} trained"
            for sd, m in mse_by_seed.items()))  # fmt: skip

    print("\nShare of the variance of log10 held-out MSE (trained cells): pooled over seeds, "
          "per seed, and the per-seed mean with its 95% Student-t interval:\n")  # fmt: skip
    shares_table(done, seeds)
    print(f"\nThe same without the {len(untrained)} saturated cells (MSE above twice a black "
          "image's), which a few cells' blow-ups can dominate:\n")  # fmt: skip
    kept = [r for r in done if r["reconstruction_mse"] <= 2 * black_mse]
    shares_table(kept, seeds)


def shares_table(done: list[dict], seeds: list[int]) -> None:
    """The report's variance shares of ``done`` (:func:`decompose_variance`): pooled,
    per seed, and their mean over seeds with its 95% interval (:func:`shares_over_seeds`)."""
    pooled, per_seed = decompose_variance(done, seeds)
    over = shares_over_seeds(per_seed)
    names = [n for n in sorted(pooled, key=lambda n: -pooled[n]) if "seed" not in n]
    print("| factor | pooled | " + " | ".join(f"seed {sd}" for sd in per_seed)
          + (" | mean [95% CI] |" if over else " |"))  # fmt: skip
    print("|---|---|" + "---|" * (len(per_seed) + bool(over)))
    for name in names:
        cells = [f"{shares[name]:.3f}" if name in shares else "—" for shares in per_seed.values()]
        if over:
            iv = over.get(name)
            cells.append(f"{iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]" if iv else "—")
        print(f"| {name} | {pooled[name]:.3f} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
