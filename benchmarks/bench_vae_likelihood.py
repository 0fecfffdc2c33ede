"""Does each VAE objective learn at its defaults? Each likelihood against the mean image.

For every objective and seed, trains exactly what
``synthoct vae train --objective X --images phantom --n 10000 --image-size 64
--max-steps 2000`` trains (the small conv VAE of Soelistyo & Lowe 2024, latent 32,
batch 32, Adam 1e-3, no augmentation; ``beta`` without its VGG16 terms, as no
ImageNet weights can be downloaded here), once at each objective's default
likelihood (a log-likelihood summed over pixels, σ learned, the KL at weight 1) and
once under ``--likelihood korkic2021`` (the pixel-mean scale with the KL × batch/N
that Korkic 2021 trained with). Each model is then evaluated on 1,000 held-out
phantom images (``synthoct vae evaluate``): reconstruction MSE beside the mean
image's, active units, KL in nats, MIG and the η-probe.

The goal it judges: held-out MSE ≤ 0.5 × the mean image's and ≥ 8 active units,
each run within 15 minutes on 2 cores. Rows are appended to ``--json`` after each
run and runs already there are skipped, so a killed study resumes.

    .venv/bin/python benchmarks/bench_vae_likelihood.py --seeds 0 \\
        --out runs/vae_likelihood --json benchmarks/results/vae_likelihood.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

OBJECTIVES = ("vae", "tcvae", "iwae", "infovae", "logcosh", "beta")
#: the goal: MSE at most this fraction of the mean image's, at least this many units
GOAL_MSE_RATIO, GOAL_ACTIVE_UNITS, GOAL_SECONDS = 0.5, 8, 15 * 60


def run_one(
    objective: str, seed: int, args: argparse.Namespace, *, label: str,
    objective_config: dict | None = None,
) -> dict:
    """Train one model as ``synthoct vae train`` does at these settings (into
    ``args.out/<objective>-<label>-seed<seed>``, resuming a run there), evaluate it on
    ``args.eval_n`` held-out images and return its row. Also used by
    ``bench_vae_behaviours.py``."""
    from synthoct_bench.generators.vae.run import VAERunSpec, evaluate_run, train_run
    from synthoct_bench.generators.vae.training import VAETrainingConfig

    out = Path(args.out) / f"{objective}-{label}-seed{seed}"
    spec = VAERunSpec(images="phantom", n=args.n, image_size=args.image_size,
                      latent_dim=args.latent_dim, arch="small", seed=seed)  # fmt: skip
    config = VAETrainingConfig(
        objective=objective, arch="small", batch_size=args.batch_size, max_steps=args.steps,
        augment=False, perceptual=False, seed=seed, checkpoint_every=args.steps,
        objective_config=objective_config,
    )  # fmt: skip
    t = time.perf_counter()
    train_run(out, spec, config, progress=args.progress, resume=out.exists())
    seconds = time.perf_counter() - t
    ev = evaluate_run(out, n=args.eval_n)
    d = ev.to_dict()
    top_mi, second_mi = ev.mig.best_two()
    return {
        "objective": objective,
        "objective_config": objective_config or {},
        "likelihood_stated": ev.likelihood,
        "seed": seed,
        "steps": args.steps,
        "train_seconds": seconds,
        "reconstruction_mse": ev.reconstruction_mse,
        "mean_image_mse": ev.mean_image_mse,
        "mse_ratio": ev.mse_ratio,
        "active_units": ev.active_units,
        "kl_nats": d["kl_total"],
        "mig": d["mig"]["score"],
        "mig_per_factor": d["mig"]["per_factor"],
        # per factor: the most and second-most informative code's MI over H(factor)
        "mig_top_mi": top_mi.tolist(),
        "mig_second_mi": second_mi.tolist(),
        "dci_r2_per_factor": d["dci"]["per_factor_r2"],
        "factor_names": d["factor_names"],
        "eta_probe_r2": d["eta_probe"]["r2"],
        "collapsed": ev.collapsed,
        "goal_met": bool(
            ev.mse_ratio <= GOAL_MSE_RATIO
            and ev.active_units >= GOAL_ACTIVE_UNITS
            and seconds <= GOAL_SECONDS
        ),
    }


def table(rows: list[dict]) -> str:
    head = (f"{'objective':<9} {'likelihood':<11} {'seed':>4} {'MSE/mean':>9} {'units':>5} "
            f"{'KL nats':>8} {'MIG':>6} {'tilt R2':>7} {'s':>6}  goal")  # fmt: skip
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['objective']:<9} {r['likelihood']:<11} {r['seed']:>4} {r['mse_ratio']:>9.3f} "
            f"{r['active_units']:>5} {r['kl_nats']:>8.1f} {r['mig']:>6.3f} "
            f"{r['eta_probe_r2']['tilt']:>7.3f} {r['train_seconds']:>6.0f}  "
            f"{'met' if r['goal_met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The settings :func:`run_one` reads, at ``synthoct vae train``'s defaults."""
    parser.add_argument("--n", type=int, default=10_000, help="phantom training images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-n", type=int, default=1_000, help="held-out images")
    parser.add_argument("--progress", action="store_true")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--likelihoods", default="default,korkic2021",
                        help="default (each objective's own) and/or korkic2021")  # fmt: skip
    parser.add_argument("--seeds", default="0")
    add_run_args(parser)
    parser.add_argument("--out", default="runs/vae_likelihood")
    parser.add_argument("--json", default="benchmarks/results/vae_likelihood.json")
    args = parser.parse_args()

    path = Path(args.json)
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    done = {(r["objective"], r["likelihood"], r["seed"]) for r in rows}
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "progress")}
    for seed in (int(s) for s in args.seeds.split(",")):
        for objective in args.objectives.split(","):
            for label in args.likelihoods.split(","):
                if objective == "beta" and label != "default":
                    continue  # the paper's own loss has no likelihood setting
                if (objective, label, seed) in done:
                    continue
                config = None if label == "default" else {"likelihood": label}
                row = {"likelihood": label,
                       **run_one(objective, seed, args, label=label, objective_config=config)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
                tmp.replace(path)
    print(table(rows))


if __name__ == "__main__":
    main()
