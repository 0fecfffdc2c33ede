"""`synthoct baseline`: run a reference baseline and write a submission file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synthoct_bench.commands.common import add_progress_flag

HELP = "Run a reference baseline (average, random, oracle, resnet18) and write a submission."

_NAMES = ("average", "random", "oracle", "resnet18")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=_NAMES, help="which baseline (oracle is an upper bound)")
    parser.add_argument("--data", required=True, help="dataset directory or Hub repo id")
    parser.add_argument("--noise", type=int, required=True, help="noise level sigma2, e.g. 9")
    parser.add_argument("--split", default="test", help="split to predict")
    parser.add_argument("--out", required=True, help="submission file (.parquet or .csv)")
    parser.add_argument("--revision", default=None, help="Hub revision of the dataset")
    parser.add_argument("--seed", type=int, default=0, help="seed (random draws, ResNet init)")
    group = parser.add_argument_group("resnet18")
    group.add_argument("--epochs", type=int, default=10, help="training epochs")
    group.add_argument("--batch-size", type=int, default=16, help="training batch (paper: 16)")
    group.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper: 1e-3)")
    group.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="network input side: images are resized to it (unset: the stored size)",
    )
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    group.add_argument("--workers", type=int, default=None, help="data-loader workers")
    group.add_argument(
        "--workdir",
        default=None,
        help="checkpoints and the trained model (unset: OUT with suffix .resnet18/)",
    )
    group.add_argument("--resume", action="store_true", help="continue from --workdir checkpoints")
    group.add_argument("--model", default=None, help="use this saved model; skip training")
    group.add_argument(
        "--no-calibrate", action="store_true", help="skip the validation-set shrinkage line"
    )
    add_progress_flag(group)


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.baselines.run import run_baseline

    resnet_params = None
    workdir = None
    if args.name == "resnet18":
        resnet_params = {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "input_size": args.input_size,
            "seed": args.seed,
            "device": args.device,
            "num_workers": args.workers,
            "calibrate": not args.no_calibrate,
            "progress": not args.no_progress,
        }
        workdir = Path(args.workdir) if args.workdir else Path(f"{args.out}.resnet18")
    ids, pred = run_baseline(
        args.name,
        args.data,
        args.noise,
        args.split,
        args.out,
        seed=args.seed,
        resnet_params=resnet_params,
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
    if workdir is not None and args.model is None:
        summary["model_dir"] = str(workdir / "model")
    if args.name == "oracle":
        summary["note"] = "oracle uses the hidden noise-free eta: an upper bound, not a model"
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0
