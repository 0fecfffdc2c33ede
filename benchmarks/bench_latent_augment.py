"""Ramisetti's (2024) latent-space augmentation as a small-data study: does augmenting a VAE's
latents help a head read the random effects from few labelled images?

    .venv/bin/python benchmarks/bench_latent_augment.py --data /tmp/ds/phantom64 \
        --vae-weights /tmp/interp/tcvae/vae --out /tmp/augment \
        --json benchmarks/results/latent_augment.json

The features are a trained VAE's encoder means μ (no targets were used to train
it; nothing here knows which latents carry η). For each training size, noise
level and seed, the labelled subset is the first ``size`` subjects of a seeded
permutation of the train split (nested across sizes) and a validation subset of
``size // 4`` (at least 25) comes from the validation split; the head (the dense
head of Soelistyo & Lowe 2024, 32 → 16 → 16 → 16 → 3, Mish, dropout 0.3, Adam 1e-3, batch 64)
trains for ``--steps`` steps and keeps its best validation epoch. Arms: none,
each fixed augmentation at Ramisetti's (2024) values, and the adaptive schedule (with
its random search). R² is measured on the whole test split against η̂; the gain
of an arm is its seed-mean R² minus ``none``'s, paired by seed and subject, with a
percentile bootstrap that resamples both the seeds and the test subjects. Resumable
per run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from synthoct_bench.atomic import save_figure, write_json
from synthoct_bench.augment import AdaptiveSchedule, LatentAugmentation
from synthoct_bench.baselines.interpretable import HeadConfig, MishHead, train_head
from synthoct_bench.baselines.run import read_images, read_split, read_targets
from synthoct_bench.dataset.layout import level_column
from synthoct_bench.stats import bootstrap_counts

ARMS = ("none", "gaussian", "cutout", "mixup", "cmixup", "adaptive")


def features(args: argparse.Namespace, out: Path) -> dict[str, np.ndarray]:
    """μ of every split's images, cached in OUT/features.npz (plain arrays)."""
    path = out / "features.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    from synthoct_bench.generators.vae.base import load_vae
    from synthoct_bench.generators.vae.run import run_model_dir

    vae = load_vae(run_model_dir(args.vae_weights))
    arrays = {}
    for split in ("train", "validation", "test"):
        X = read_images(args.data, split, vae.config.image_size)
        arrays[f"{split}_mu"] = vae.encode_images(X["image"])
        arrays[f"{split}_id"] = X["subject_id"]
    np.savez(path, **arrays)
    return arrays


def targets(data: str, split: str, noise: int, ids: np.ndarray) -> np.ndarray:
    return read_targets(data, split, noise, ids)


def run_one(args, feats, y_train, y_val, size, seed, arm) -> tuple[np.ndarray, dict]:
    g = np.random.default_rng([seed, 7])
    train_idx = g.permutation(len(y_train))[:size]
    n_val = max(25, size // 4)
    val_idx = np.random.default_rng([seed, 8]).permutation(len(y_val))[:n_val]
    x, y = feats["train_mu"][train_idx], y_train[train_idx]
    xv, yv = feats["validation_mu"][val_idx], y_val[val_idx]
    steps_per_epoch = math.ceil(size / 64)
    epochs = max(10, math.ceil(args.steps / steps_per_epoch))
    if arm == "none":
        aug = None
    elif arm == "adaptive":
        aug = AdaptiveSchedule(regression=True, seed=seed, samples=args.search_samples)
    else:
        aug = LatentAugmentation(arm)
    torch.manual_seed(seed)
    head = MishHead(HeadConfig(x.shape[1], (16, 16, 16), 3, dropout=0.3))
    t0 = time.perf_counter()
    log = train_head(head, x, y, epochs=epochs, batch_size=64, lr=1e-3, augmentation=aug,
                     eval_set=(xv, yv), keep_best=True, seed=seed)  # fmt: skip
    pred = head.predict(feats["test_mu"])
    info = {"seconds": time.perf_counter() - t0, "epochs": epochs, "best_epoch": log["best_epoch"]}
    if arm == "adaptive":
        info["categories"] = [r["category"] for r in log["schedule"]]
    return pred, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--vae-weights", required=True, help="trained VAE run or model folder")
    ap.add_argument("--out", required=True, help="predictions, features cache, plot")
    ap.add_argument("--json", required=True)
    ap.add_argument("--sizes", default="100,300,1000,3000")
    ap.add_argument("--noise", default="0,9")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--steps", type=int, default=3000, help="optimiser steps per run (about)")
    ap.add_argument("--search-samples", type=int, default=5, help="adaptive random search")
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    feats = features(args, out)
    sizes = [int(v) for v in args.sizes.split(",")]
    levels = [int(v) for v in args.noise.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    arms = args.arms.split(",")
    path = Path(args.json)
    results = (
        json.loads(path.read_text()) if path.is_file() else {"settings": vars(args), "runs": []}
    )
    done = {(r["size"], r["noise"], r["seed"], r["arm"]) for r in results["runs"]}
    test = read_split(args.data, "test", ["subject_id", level_column("eta_noisy", levels[0])])
    assert np.array_equal(test["subject_id"], feats["test_id"])
    for noise in levels:
        y_train = targets(args.data, "train", noise, feats["train_id"])
        y_val = targets(args.data, "validation", noise, feats["validation_id"])
        for size in sizes:
            for seed in seeds:
                for arm in arms:
                    if (size, noise, seed, arm) in done:
                        continue
                    pred, info = run_one(args, feats, y_train, y_val, size, seed, arm)
                    np.save(out / "pred" / f"s{noise}_n{size}_seed{seed}_{arm}.npy", pred)
                    results["runs"].append({"size": size, "noise": noise, "seed": seed,
                                            "arm": arm, **info})  # fmt: skip
                    write_json(path, results)
                    print(f"σ²={noise} n={size} seed={seed} {arm}: {info['seconds']:.1f} s",
                          flush=True)  # fmt: skip
    results["summary"] = summarise(args, out, sizes, levels, seeds, arms)
    write_json(path, results)
    plot(results["summary"], out / "latent_augment.png")
    print_table(results["summary"])


def r2_of(
    e: np.ndarray, dev: np.ndarray, w: np.ndarray | None = None, ws: np.ndarray | None = None
) -> np.ndarray | float:
    """Seed-mean R² (mean over the 3 dims) from squared errors e (S, N, 3) and squared
    deviations dev (N, 3). With bootstrap counts of subjects w (B, N) and of seeds
    ws (B, S), one value per resample: seeds and test subjects are both resampled."""
    if w is None:
        return float(np.mean(1 - e.sum(1) / dev.sum(0)))
    num = np.einsum("bn,snd->bsd", w, e)
    den = w @ dev  # (B, 3)
    per_seed = (1 - num / den[:, None, :]).mean(axis=2)  # (B, S)
    return (per_seed * ws).sum(1) / ws.sum(1)


def seed_r2s(e: np.ndarray, dev: np.ndarray) -> list[float]:
    """R² (mean over the 3 dims) of each seed, from e (S, N, 3) and dev (N, 3)."""
    return [float(np.mean(1 - es.sum(0) / dev.sum(0))) for es in e]


def summarise(args, out, sizes, levels, seeds, arms) -> list[dict]:
    rows = []
    for noise in levels:
        col = level_column("eta_noisy", noise)
        eta_hat = np.asarray(read_split(args.data, "test", [col])[col], np.float64)
        n = len(eta_hat)
        dev = (eta_hat - eta_hat.mean(0)) ** 2  # (N, 3)
        for size in sizes:
            err = {}
            for arm in arms:
                err[arm] = np.stack([(np.load(out / "pred" / f"s{noise}_n{size}_seed{s}_{arm}.npy")
                                      - eta_hat) ** 2 for s in seeds])  # (S, N, 3)  # fmt: skip

            boot = {arm: [] for arm in arms}
            seed_draws = np.random.default_rng([noise, size]).multinomial(
                len(seeds), np.full(len(seeds), 1 / len(seeds)), size=args.n_bootstrap
            )
            done = 0
            for counts in bootstrap_counts(n, args.n_bootstrap, seed=0):
                ws = seed_draws[done : done + len(counts)]
                done += len(counts)
                for arm in arms:
                    boot[arm].append(r2_of(err[arm], dev, counts, ws))
            boot = {arm: np.concatenate(v) for arm, v in boot.items()}
            base = r2_of(err["none"], dev)
            base_seeds = seed_r2s(err["none"], dev)
            for arm in arms:
                r2_seeds = seed_r2s(err[arm], dev)
                gain = boot[arm] - boot["none"]
                value = r2_of(err[arm], dev)
                rows.append({
                    "noise": noise, "size": size, "arm": arm, "r2": value,
                    "r2_seeds": r2_seeds,
                    "gain_seeds": [a - b for a, b in zip(r2_seeds, base_seeds, strict=True)],
                    "gain": value - base,
                    "gain_low": float(np.percentile(gain, 2.5)),
                    "gain_high": float(np.percentile(gain, 97.5)),
                })  # fmt: skip
    return rows


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({r["noise"] for r in summary})
    arms = [a for a in ARMS if a != "none" and any(r["arm"] == a for r in summary)]
    fig, axes = plt.subplots(1, len(levels), figsize=(5.5 * len(levels), 4), squeeze=False)
    for ax, noise in zip(axes[0], levels, strict=True):
        for k, arm in enumerate(arms):
            rows = sorted((r for r in summary if r["noise"] == noise and r["arm"] == arm),
                          key=lambda r: r["size"])  # fmt: skip
            x = np.array([r["size"] for r in rows]) * (1 + 0.04 * (k - len(arms) / 2))
            y = np.array([r["gain"] for r in rows])
            lo = y - np.array([r["gain_low"] for r in rows])
            hi = np.array([r["gain_high"] for r in rows]) - y
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=arm)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images")
        ax.set_ylabel("R² gain over no augmentation")
        ax.set_title(f"σ² = {noise}")
    axes[0][0].legend()
    fig.tight_layout()
    save_figure(fig, path)


def print_table(summary: list[dict]) -> None:
    print("\n| σ² | n | " + " | ".join(a for a in ARMS) + " |")
    print("|---|---|" + "---|" * len(ARMS))
    keys = sorted({(r["noise"], r["size"]) for r in summary})
    by = {(r["noise"], r["size"], r["arm"]): r for r in summary}
    for noise, size in keys:
        cells = []
        for arm in ARMS:
            r = by.get((noise, size, arm))
            if r is None:
                cells.append("")
            elif arm == "none":
                cells.append(f"{r['r2']:.3f}")
            else:
                cells.append(f"{r['gain']:+.3f} [{r['gain_low']:+.3f}, {r['gain_high']:+.3f}]")
        print(f"| {noise} | {size:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
