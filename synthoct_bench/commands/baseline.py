"""`synthoct baseline`: run a reference baseline and write a submission file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synthoct_bench.commands.checks import (
    BATCH,
    IMAGE_SIZE,
    LATENT_DIM,
    LEARNING_RATE,
    NOISE_LEVEL,
    SEED,
    STEPS,
    WORKERS,
    Integer,
    Number,
    dataset_source,
    device,
    existing_path,
    output_file,
    output_folder,
)
from synthoct_bench.commands.common import AMP_CHOICES, add_amp_flag, add_progress_flag

HELP = (
    "Run a reference baseline (average, random, oracle, resnet18, tcvae-dense, tcvae-sparse, "
    "tcvae-symbolic) and write a submission."
)


def configure(parser: argparse.ArgumentParser) -> None:
    from synthoct_bench.baselines import BASELINES

    parser.add_argument("name", choices=BASELINES, help="which baseline (oracle is an upper bound)")
    parser.add_argument(
        "--data", required=True, type=dataset_source, help="dataset directory or Hub repo id"
    )
    parser.add_argument(
        "--noise", type=NOISE_LEVEL, required=True, help="noise level sigma2, e.g. 9"
    )
    parser.add_argument("--split", default="test", help="split to predict")
    parser.add_argument(
        "--out", required=True, type=output_file, help="submission file (.parquet or .csv)"
    )
    parser.add_argument("--revision", default=None, help="Hub revision of the dataset")
    parser.add_argument("--seed", type=SEED, default=0, help="seed (random draws, ResNet init)")
    group = parser.add_argument_group("resnet18")
    group.add_argument("--epochs", type=STEPS, default=10, help="training epochs")
    group.add_argument("--batch-size", type=BATCH, default=16, help="training batch (paper: 16)")
    group.add_argument(
        "--lr", type=LEARNING_RATE, default=1e-3, help="Adam learning rate (paper: 1e-3)"
    )
    group.add_argument(
        "--input-size",
        type=IMAGE_SIZE,
        default=None,
        help="network input side: images are resized to it (unset: the stored size)",
    )
    group.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    add_amp_flag(group)
    group.add_argument(
        "--workers", type=Integer(0, WORKERS.maximum), default=None, help="data-loader workers"
    )
    group.add_argument(
        "--workdir",
        type=output_folder,
        default=None,
        help="resnet18: checkpoints and the trained model (unset: OUT with suffix .resnet18/); "
        "tcvae-*: the beta-TCVAE and heads the stages share (unset: tcvae/ beside OUT)",
    )
    group.add_argument("--resume", action="store_true", help="continue from --workdir checkpoints")
    group.add_argument(
        "--model", type=existing_path, default=None, help="use this saved model; skip training"
    )
    group.add_argument(
        "--no-calibrate", action="store_true", help="skip the validation-set shrinkage line"
    )
    add_progress_flag(group)
    tc = parser.add_argument_group(
        "tcvae-dense, tcvae-sparse, tcvae-symbolic (Soelistyo & Lowe 2024)"
    )
    tc.add_argument("--image-size", type=IMAGE_SIZE, default=64, help="the beta-TCVAE's image side")
    tc.add_argument(
        "--latent-dim", type=LATENT_DIM, default=32, help="latents (Soelistyo & Lowe: 32)"
    )
    tc.add_argument(
        "--vae-steps", type=STEPS, default=2000, help="beta-TCVAE optimizer steps at most"
    )
    tc.add_argument("--vae-batch-size", type=BATCH, default=256, help="Soelistyo & Lowe 2024: 256")
    tc.add_argument(
        "--vae-lr", type=LEARNING_RATE, default=5e-4, help="Adam, Soelistyo & Lowe 2024: 5e-4"
    )
    tc.add_argument(
        "--vae-weights",
        type=existing_path,
        default=None,
        help="use this trained VAE (run or model folder); skip its training",
    )
    tc.add_argument("--head-epochs", type=STEPS, default=100, help="Soelistyo & Lowe 2024: 100")
    tc.add_argument(
        "--warmup-epochs",
        type=Integer(0, STEPS.maximum),
        default=20,
        help="dense epochs before RigL",
    )
    tc.add_argument(
        "--sparsity",
        type=Number(0.0, 1.0, open_high=True),
        default=0.951,
        help="RigL's S (Soelistyo & Lowe: 0.951)",
    )
    tc.add_argument("--delta-t", type=STEPS, default=115, help="steps between topology updates")
    tc.add_argument(
        "--update-fraction",
        type=Number(0.0, 1.0, open_low=True),
        default=0.758,
        help="RigL's alpha",
    )
    tc.add_argument(
        "--max-complexity", type=Integer(1, 1_000), default=20, help="formula complexity limit"
    )
    tc.add_argument("--generations", type=STEPS, default=60, help="symbolic search generations")
    la = parser.add_argument_group("latent augmentation (Ramisetti 2024)")
    la.add_argument(
        "--latent-augment",
        default=None,
        choices=("gaussian", "cutout", "mixup", "cmixup", "adaptive"),
        help="resnet18: extra training images decoded from augmented latents of --augment-vae "
        "(not adaptive); tcvae-dense/-sparse: augment the head's features (adaptive: seed "
        "001's schedule, chosen per epoch from the validation loss)",
    )
    la.add_argument(
        "--augment-vae",
        type=existing_path,
        default=None,
        help="resnet18: the VAE to encode/decode with",
    )
    la.add_argument(
        "--augment-copies", type=Integer(1, 100), default=1, help="resnet18: augmented copies"
    )


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.baselines.run import run_baseline

    if args.latent_augment is not None and not args.name.startswith(("resnet18", "tcvae-")):
        raise ValueError(f"--latent-augment is for resnet18 and tcvae-*, not {args.name}")
    if args.name == "resnet18" and args.latent_augment == "adaptive":
        raise ValueError(
            "resnet18 decodes a fixed set of augmented images; --latent-augment adaptive is for "
            "the tcvae-* heads"
        )

    params = None
    workdir = None
    if args.name.startswith("tcvae-"):
        params = {
            "image_size": args.image_size,
            "latent_dim": args.latent_dim,
            "vae_steps": args.vae_steps,
            "vae_batch_size": args.vae_batch_size,
            "vae_lr": args.vae_lr,
            "vae_weights": args.vae_weights,
            "head_epochs": args.head_epochs,
            "warmup_epochs": args.warmup_epochs,
            "sparsity": args.sparsity,
            "delta_t": args.delta_t,
            "update_fraction": args.update_fraction,
            "max_complexity": args.max_complexity,
            "generations": args.generations,
            "latent_augment": args.latent_augment,
            "progress": not args.no_progress,
        }
        workdir = Path(args.workdir) if args.workdir else Path(args.out).parent / "tcvae"
    if args.name == "resnet18":
        params = {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "input_size": args.input_size,
            "seed": args.seed,
            "device": args.device,
            "amp": AMP_CHOICES[args.amp],
            "num_workers": args.workers,
            "calibrate": not args.no_calibrate,
            "progress": not args.no_progress,
            "latent_augment": args.latent_augment,
            "augment_vae": args.augment_vae,
            "augment_copies": args.augment_copies,
        }
        workdir = Path(args.workdir) if args.workdir else Path(f"{args.out}.resnet18")
    ids, pred = run_baseline(
        args.name,
        args.data,
        args.noise,
        args.split,
        args.out,
        seed=args.seed,
        params=params,
        workdir=workdir,
        resume=args.resume,
        model_dir=args.model,
        revision=args.revision,
    )
    summary = {
        "baseline": args.name,
        "noise": args.noise,
        "split": args.split,
        "n_subjects": int(ids.size),
        "submission": str(args.out),
    }
    if args.name == "resnet18" and args.model is None:
        summary["model_dir"] = str(workdir / "model")
    if args.name.startswith("tcvae-"):
        from synthoct_bench.baselines.run import report_path

        summary["workdir"] = str(workdir)
        summary["report"] = str(report_path(args.out))
    if args.name == "oracle":
        summary["note"] = "oracle uses the hidden noise-free eta: an upper bound, not a model"
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0
