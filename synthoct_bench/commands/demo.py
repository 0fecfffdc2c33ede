"""`synthoct demo`: the whole benchmark end to end on the CPU in a few minutes."""

from __future__ import annotations

import argparse
import json
import sys

from synthoct_bench.commands.checks import (
    BATCH,
    BOOTSTRAP,
    COUNT,
    IMAGE_SIZE,
    SEED,
    STEPS,
    WORKERS,
    Number,
    dataset_source,
    device,
    output_folder,
)
from synthoct_bench.commands.common import (
    AMP_CHOICES,
    add_amp_flag,
    add_json_flag,
    add_noise_levels,
    add_progress_flag,
)

HELP = (
    "Build a mini phantom dataset, train and score every baseline at every noise level, "
    "print the paper's tables for this run and plot them."
)


def configure(parser: argparse.ArgumentParser) -> None:
    from synthoct_bench.dataset.layout import PRESETS
    from synthoct_bench.demo import DemoConfig

    d = DemoConfig()
    parser.add_argument("--out", type=output_folder, default=d.out, help="output directory")
    add_json_flag(parser, "the results (text then goes to stderr when JSON is on stdout)")
    splits = ",".join(f"{k}={v}" for k, v in d.splits.items())
    parser.add_argument(
        "--splits",
        default=None,
        metavar="train=N,validation=N,test=N",
        help=f"split sizes (unset: {splits})",
    )
    parser.add_argument(
        "--preset", default=None, choices=list(PRESETS), help="dataset preset instead of --splits"
    )
    parser.add_argument(
        "--data",
        type=dataset_source,
        default=None,
        help="run on this existing dataset (folder or Hub repo id) instead of building one",
    )
    parser.add_argument(
        "--n", type=COUNT, default=None, help="subjects in all (overrides --preset)"
    )
    parser.add_argument(
        "--fit-subjects", type=COUNT, default=d.fit_subjects, help="subjects per FOCE fit"
    )
    add_noise_levels(parser, default=",".join(str(k) for k in d.noise_levels))
    parser.add_argument("--epochs", type=STEPS, default=d.epochs, help="ResNet18 epochs per level")
    parser.add_argument(
        "--input-size", type=IMAGE_SIZE, default=d.input_size, help="ResNet18 input side in px"
    )
    parser.add_argument("--batch-size", type=BATCH, default=d.batch_size, help="ResNet18 batch")
    parser.add_argument(
        "--n-bootstrap", type=BOOTSTRAP, default=d.n_bootstrap, help="bootstrap resamples per score"
    )
    parser.add_argument(
        "--seed", type=SEED, default=d.seed, help="dataset, training and bootstrap seed"
    )
    parser.add_argument("--workers", type=WORKERS, default=d.workers, help="dataset build workers")
    parser.add_argument("--device", type=device, default=d.device, help="auto, cpu, cuda")
    add_amp_flag(parser)
    parser.add_argument(
        "--eta-visibility",
        type=Number(0.0, 100.0),
        default=None,
        help="phantom: how strongly eta shows in the image (unset: the phantom's own default)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="reuse the data and checkpoints already in --out"
    )
    add_progress_flag(parser)


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.atomic import write_json
    from synthoct_bench.dataset.layout import parse_noise_levels, parse_splits
    from synthoct_bench.demo import DemoConfig, run_demo

    config = DemoConfig(
        out=args.out,
        preset=args.preset,
        n=args.n,
        fit_subjects=args.fit_subjects,
        data=args.data,
        noise_levels=parse_noise_levels(args.noise_levels),
        epochs=args.epochs,
        input_size=args.input_size,
        batch_size=args.batch_size,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        amp=AMP_CHOICES[args.amp],
        resume=args.resume,
        progress=not args.no_progress,
    )
    if args.splits:
        config.splits = parse_splits(args.splits)
    if args.eta_visibility is not None:
        config.generator_kwargs["eta_visibility"] = args.eta_visibility
    result = run_demo(config, log=sys.stderr)
    text = result.format_tables()
    if args.json == "-":
        print(text, file=sys.stderr)
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(text)
        if args.json:
            write_json(args.json, result.to_dict())
            print(f"JSON written to {args.json}")
    return 0
