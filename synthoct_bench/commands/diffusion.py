"""`synthoct diffusion train|evaluate`: the paper's generator, a UNet conditioned on a VAE's z.

The logic lives in :mod:`synthoct_bench.generators.diffusion.run`; this module only
maps options onto it.
"""

from __future__ import annotations

import argparse

from synthoct_bench.commands.checks import (
    BATCH,
    COUNT,
    IMAGE_SIZE,
    LEARNING_RATE,
    SEED,
    STEPS,
    Integer,
    device,
    existing_folder,
    image_source,
    output_file,
    output_folder,
)
from synthoct_bench.commands.common import (
    HelpFormatter,
    add_json_flag,
    add_progress_flag,
    emit_result,
    run_subcommand,
)

HELP = "train and evaluate the paper's image generator: a diffusion UNet conditioned on a VAE's z"


def configure(parser: argparse.ArgumentParser) -> None:
    from synthoct_bench.generators.diffusion.run import CONDITIONS, VAE_Z

    parser.set_defaults(_diffusion_parser=parser)
    sub = parser.add_subparsers(dest="diffusion_command", metavar="SUBCOMMAND")
    t = sub.add_parser(
        "train",
        help="train a diffusion generator into a run folder (resumable)",
        description="Train the small pixel-space generator from scratch (the CPU recipe: "
        "3,000 steps of 32 images, about 50 minutes on 2 cores at 64 px), or fine-tune "
        "pretrained SD 1.5 weights (--base, the paper's recipe for a GPU). Writes "
        "OUT/run.json, OUT/checkpoints, OUT/validation (real images above generated ones "
        "of the same z, per checkpoint), OUT/loss_curves.png and OUT/pipeline.",
        formatter_class=HelpFormatter,
    )
    t.add_argument("--out", required=True, type=output_folder, help="run folder")
    t.add_argument(
        "--vae",
        type=existing_folder,
        default=None,
        help="a `synthoct vae train` run (after `synthoct vae select`): z is its encoder's "
        "posterior of each training image",
    )
    t.add_argument(
        "--vae-z",
        choices=VAE_Z,
        default="sample",
        help="sample (a fresh draw of the posterior each step, the spread of the prior z a "
        "dataset is built from) or mean (the encoder's means alone)",
    )
    t.add_argument(
        "--condition",
        choices=CONDITIONS,
        default="vae",
        help="vae (z from --vae) or phantom (the phantom's own z: an oracle to compare with)",
    )
    t.add_argument(
        "--images",
        type=image_source,
        default="phantom",
        help="'phantom' (rendered on the fly) or a folder of images, searched recursively",
    )
    t.add_argument("--n", type=COUNT, default=10_000, help="number of phantom training images")
    t.add_argument("--image-size", type=IMAGE_SIZE, default=64, help="image side in px")
    t.add_argument(
        "--base",
        default=None,
        help="pretrained pipeline folder or Hub repo id (SD 1.5 layout) to fine-tune with "
        "the paper's recipe (unset: the small generator from scratch)",
    )
    t.add_argument(
        "--max-steps", type=STEPS, default=None, help="optimizer steps (unset: the recipe's)"
    )
    t.add_argument(
        "--batch-size", type=BATCH, default=None, help="images per step (unset: the recipe's)"
    )
    t.add_argument(
        "--lr", type=LEARNING_RATE, default=None, help="AdamW learning rate (unset: the recipe's)"
    )
    t.add_argument(
        "--checkpoint-every",
        type=STEPS,
        default=None,
        help="steps per checkpoint, sample grid and loss curve (unset: the recipe's)",
    )
    t.add_argument(
        "--mixed-precision",
        choices=("no", "fp16", "bf16"),
        default=None,
        help="accelerate's mixed precision on a GPU (the paper: fp16; unset: the recipe's, no)",
    )
    t.add_argument("--seed", type=SEED, default=0, help="weights, data order and noise seed")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cuda")
    add_progress_flag(t)
    t.set_defaults(_diffusion_run=_train)

    e = sub.add_parser(
        "evaluate",
        help="learned at all, conditioning fidelity, eta carried, realism (KID) and sampling "
        "speed on held-out phantom subjects",
        description="Evaluate a trained diffusion run on phantom subjects after its training "
        "ones: paired MSE against the mean image's, z re-encoded by the run's VAE (R2 per "
        "active dim and at the eta dims), eta read by a ridge probe fitted on real images "
        "(generated / real), KID against a second real sample, images/s and FLOPs an image.",
        formatter_class=HelpFormatter,
    )
    e.add_argument("dir", type=existing_folder, metavar="DIR", help="run folder")
    e.add_argument("--n", type=Integer(8, 100_000), default=512, help="held-out subjects")
    e.add_argument(
        "--probe-n", type=Integer(8, 100_000), default=1000, help="real images the eta probe fits"
    )
    e.add_argument(
        "--grid", type=output_file, default=None, metavar="PNG",
        help="also save real held-out images above generated ones of the same z",
    )  # fmt: skip
    add_json_flag(e, "the evaluation")
    e.add_argument("--device", type=device, default="cpu", help="torch device")
    e.set_defaults(_diffusion_run=_evaluate)


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args, "diffusion")


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from synthoct_bench.generators.diffusion.run import DiffusionRunSpec, train_run
    from synthoct_bench.generators.diffusion.training import DiffusionTrainingConfig

    spec = DiffusionRunSpec(
        images=args.images, n=args.n, image_size=args.image_size, condition=args.condition,
        vae=args.vae, vae_z=args.vae_z, base=args.base, seed=args.seed,
    )  # fmt: skip
    config = DiffusionTrainingConfig() if args.base else DiffusionTrainingConfig.small_recipe()
    changes: dict[str, object] = {"seed": args.seed}
    for flag, field in (("max_steps", "max_steps"), ("batch_size", "batch_size"),
                        ("lr", "learning_rate")):  # fmt: skip
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    if args.mixed_precision is not None:
        changes["mixed_precision"] = args.mixed_precision
    if args.checkpoint_every is not None:
        changes["checkpoint_every"] = changes["validation_every"] = args.checkpoint_every
    config = replace(config, **changes)
    result = train_run(
        args.out, spec, config, device=args.device, resume=args.resume,
        progress=not args.no_progress,
    )  # fmt: skip
    last = result["history"][-1] if result["history"] else {}
    loss = f", loss {last['loss']:.4g}" if "loss" in last else ""
    print(f"trained {result['step']} steps{loss}")
    print(
        f"pipeline: {args.out}/pipeline  samples: {args.out}/validation  "
        f"loss curves: {args.out}/loss_curves.png"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from synthoct_bench.generators.diffusion.evaluate import evaluate_run

    result = evaluate_run(
        args.dir, n=args.n, probe_n=args.probe_n, device=args.device, grid=args.grid
    )
    emit_result(args, result)
    if args.grid and args.json != "-":
        print(f"grid: {args.grid}")
    return 0
