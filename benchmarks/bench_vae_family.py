"""The VAE objectives side by side on phantom images: reconstruction, disentanglement, η-probe.

Trains seed 003's small conv VAE (``--arch small``) with each objective and seed on
``--n`` phantom images rendered on the fly (no augmentation), then evaluates each on
held-out phantom images (``synthoct vae evaluate``): reconstruction MSE, active units,
MIG / DCI / SAP of the encoder means against the phantom's 21 generating factors, and
the η-probe (R² of a ridge regression from μ to the three η-driving factors). Also
records training images/s. The ``beta`` objective runs without the VGG16 terms (no
ImageNet weights are downloaded here).

    .venv/bin/python benchmarks/bench_vae_family.py --n 2000 --epochs 8 --seeds 0 \\
        --out runs/vae_family --json bench_vae_family.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

OBJECTIVES = ("beta", "tcvae", "iwae", "infovae", "logcosh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=2000, help="phantom training images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-n", type=int, default=1000, help="held-out images")
    parser.add_argument("--out", default="runs/vae_family")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from synthoct_bench.generators.vae_run import VAERunSpec, evaluate_run, train_run
    from synthoct_bench.generators.vae_training import VAETrainingConfig

    rows = []
    for objective in args.objectives.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            out = Path(args.out) / f"{objective}-seed{seed}"
            spec = VAERunSpec(
                images="phantom", n=args.n, image_size=args.image_size,
                latent_dim=args.latent_dim, arch="small", seed=seed,
            )  # fmt: skip
            config = VAETrainingConfig(
                objective=objective, arch="small", batch_size=args.batch_size,
                epochs=args.epochs, augment=False, perceptual=False, seed=seed,
                checkpoint_every=10**9,
            )  # fmt: skip
            t = time.perf_counter()
            result = train_run(out, spec, config, progress=False)
            seconds = time.perf_counter() - t
            ev = evaluate_run(out, n=args.eval_n).to_dict()
            row = {
                "objective": objective,
                "seed": seed,
                "steps": result["step"],
                "train_seconds": seconds,
                "images_per_s": result["step"] * args.batch_size / seconds,
                "reconstruction_mse": ev["reconstruction_mse"],
                "active_units": ev["active_units"],
                "mig": ev["mig"]["score"],
                "dci_disentanglement": ev["dci"]["disentanglement"],
                "dci_completeness": ev["dci"]["completeness"],
                "dci_informativeness": ev["dci"]["informativeness"],
                "sap": ev["sap"]["score"],
                "eta_probe_r2": ev["eta_probe"]["mean_r2"],
                "evaluation": ev,
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "evaluation"}))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
