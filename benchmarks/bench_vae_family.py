"""The VAE objectives side by side on phantom images: reconstruction, disentanglement,
η-probe, latent-dim selection.

Trains Soelistyo & Lowe's (2024) small conv VAE (``--arch small``) with each objective and seed on
``--n`` phantom images rendered on the fly (no augmentation), validating on ``--val-n``
further images after each epoch and stopping by Korkic's (2021) rule (validation
reconstruction MSE moves by < ``--stop-rel-change`` between epochs, at most
``--epochs``), here required of ``--stop-patience`` epochs in a row: Korkic's (2021) single
epoch stopped β-VAEs on a one-epoch plateau while they still improved 3% an epoch,
and from ``--stop-start-epoch`` on: LogCosh VAEs sat three epochs on the plateau of the
mean image (validation MSE 0.049) and stopped there.
Each run is then evaluated on held-out phantom images (``synthoct vae evaluate``:
reconstruction MSE, active units, MIG / DCI / SAP of the encoder means against the
phantom's 21 generating factors, the η-probe) and its latent dims ranked by Methods 1
and 2 (``synthoct vae select``), with their agreement with each other and with the
phantom's own ranking. The ``beta`` objective runs without
the VGG16 terms (no ImageNet weights are downloaded here).

Rows are appended to ``--json`` after each run, and runs already there are skipped, so
a killed study resumes where it stopped. ``--threads`` sets torch's threads (training
images/s depend on it and on what else runs on the machine).

    .venv/bin/python benchmarks/bench_vae_family.py --n 10000 --val-n 1000 --seeds 0,1,2 \\
        --out runs/vae_family --json benchmarks/results/vae_family.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OBJECTIVES = ("beta", "tcvae", "iwae", "infovae", "logcosh")
#: columns of the printed summary (mean ± sd over seeds).
SUMMARY = (
    "epochs", "images_per_s", "reconstruction_mse", "mig", "dci_disentanglement",
    "dci_completeness", "dci_informativeness", "sap", "eta_probe_r2", "active_units",
    "spearman_method1_method2", "top_overlap_method1_method2",
)  # fmt: skip


def run_one(objective: str, seed: int, args: argparse.Namespace) -> dict:
    from synthoct_bench.generators.vae.run import (
        VAERunSpec,
        evaluate_run,
        select_run,
        train_run,
    )
    from synthoct_bench.generators.vae.training import VAETrainingConfig

    out = Path(args.out) / f"{objective}-seed{seed}"
    spec = VAERunSpec(
        images="phantom", n=args.n, image_size=args.image_size, latent_dim=args.latent_dim,
        arch="small", seed=seed, val_n=args.val_n,
    )  # fmt: skip
    config = VAETrainingConfig(
        objective=objective, arch="small", batch_size=args.batch_size, epochs=args.epochs,
        augment=False, perceptual=False, seed=seed, checkpoint_every=args.n // args.batch_size,
        stop_rel_change=args.stop_rel_change, stop_patience=args.stop_patience,
        stop_start_epoch=args.stop_start_epoch,
        warmup_epochs=args.warmup_epochs,
    )  # fmt: skip
    start = _trained_steps(out)
    t = time.perf_counter()
    result = train_run(out, spec, config, progress=args.progress, resume=out.exists())
    seconds = time.perf_counter() - t
    ev = evaluate_run(out, n=args.eval_n).to_dict()
    selection = select_run(out, n_method1=args.n_method1, n_method2=args.n_method2).to_dict()
    agreement = selection["agreement"]
    return {
        "objective": objective,
        "seed": seed,
        "steps": result["step"],
        "epochs": result["epochs"],
        "converged": result["converged_step"] is not None,
        "train_seconds": seconds,
        # of the steps this call trained (a resumed run: only the rest), validation included
        "images_per_s": (result["step"] - start) * args.batch_size / seconds
        if result["step"] > start
        else None,
        "val_mse": result["val_history"][-1]["val_mse"],
        "reconstruction_mse": ev["reconstruction_mse"],
        "active_units": ev["active_units"],
        "mig": ev["mig"]["score"],
        "dci_disentanglement": ev["dci"]["disentanglement"],
        "dci_completeness": ev["dci"]["completeness"],
        "dci_informativeness": ev["dci"]["informativeness"],
        "sap": ev["sap"]["score"],
        "eta_probe_r2": ev["eta_probe"]["mean_r2"],
        **{k: agreement.get(k) for k in sorted(agreement)},
        "eta_dims": selection["eta_dims"],
        "phantom_top": selection["phantom_top"],
        "evaluation": ev,
    }


def _trained_steps(out: Path) -> int:
    """Steps of the run's latest checkpoint (0 for a new run)."""
    states = sorted(out.glob("checkpoints/step-*/trainer_state.json"))
    return json.loads(states[-1].read_text())["step"] if states else 0


def summarise(rows: list[dict]) -> str:
    """One line per objective: mean ± sd over its seeds of the SUMMARY columns."""
    lines = ["objective  seeds  " + "  ".join(SUMMARY)]
    for objective in dict.fromkeys(r["objective"] for r in rows):
        mine = [r for r in rows if r["objective"] == objective]
        cells = []
        for key in SUMMARY:
            values = np.array([np.nan if r.get(key) is None else r[key] for r in mine], float)
            sd = np.nanstd(values, ddof=1) if np.sum(~np.isnan(values)) > 1 else np.nan
            cells.append(f"{np.nanmean(values):.4g}±{sd:.2g}")
        lines.append(f"{objective}  {len(mine)}  " + "  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=10_000, help="phantom training images")
    parser.add_argument("--val-n", type=int, default=1_000, help="validation images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=100, help="at most this many")
    parser.add_argument("--stop-rel-change", type=float, default=0.01)
    parser.add_argument("--stop-patience", type=int, default=3)
    parser.add_argument("--stop-start-epoch", type=int, default=15)
    parser.add_argument("--warmup-epochs", type=float, default=10.0, help="beta's warm-up")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-n", type=int, default=2_000, help="held-out images")
    parser.add_argument("--n-method1", type=int, default=10_000)
    parser.add_argument("--n-method2", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default="runs/vae_family")
    parser.add_argument("--json", default="benchmarks/results/vae_family.json")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = Path(args.json)
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    done = {(r["objective"], r["seed"]) for r in rows}
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "progress")}
    for objective in args.objectives.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            if (objective, seed) in done:
                continue
            row = run_one(objective, seed, args)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "evaluation"}), flush=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
            tmp.replace(path)
    print(summarise(rows))


if __name__ == "__main__":
    main()
