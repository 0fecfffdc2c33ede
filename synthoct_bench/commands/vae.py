"""`synthoct vae train|evaluate|select`: a VAE run folder from training to a dataset's η dims.

The logic lives in :mod:`synthoct_bench.generators.vae.run`; this module only maps
options onto it. Names the library validates (objective, architecture, optimizer) are
checked there, so ``synthoct --help`` does not import torch.
"""

from __future__ import annotations

import argparse

from synthoct_bench.commands.checks import (
    BATCH,
    COUNT,
    IMAGE_SIZE,
    LATENT_DIM,
    LEARNING_RATE,
    SEED,
    STEPS,
    WORKERS,
    Integer,
    Number,
    device,
    existing_path,
    image_source,
    output_folder,
)
from synthoct_bench.commands.common import (
    HelpFormatter,
    add_json_flag,
    add_progress_flag,
    add_rank_world,
    emit_result,
    key_value,
    run_subcommand,
)

HELP = "train a VAE (phantom or image folder), evaluate it, select its eta dims for a dataset"

_OBJECTIVES = "beta, vae, tcvae, iwae, infovae, logcosh"
#: the default training budget: enough for every objective to learn on 10,000 phantom
#: images at 64 px (BENCHMARKS.md), about 1.5-4 minutes on 2 cores
DEFAULT_STEPS = 2000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(_vae_parser=parser)
    sub = parser.add_subparsers(dest="vae_command", metavar="SUBCOMMAND")

    t = sub.add_parser(
        "train",
        help="train a VAE into a run folder (resumable)",
        description="Train a VAE; writes OUT/run.json, OUT/model (safetensors + config.json), "
        "OUT/checkpoints and OUT/loss_curves.png.",
        formatter_class=HelpFormatter,
    )
    t.add_argument("--out", required=True, type=output_folder, help="run folder")
    t.add_argument("--objective", default="beta", help=f"training objective: {_OBJECTIVES}")
    t.add_argument(
        "--objective-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="constant of a non-beta objective (e.g. beta=4 for tcvae); repeatable",
    )
    t.add_argument(
        "--likelihood",
        default=None,
        choices=("gaussian", "sech", "korkic2021"),
        help="reconstruction likelihood of a non-beta objective: gaussian (default; sech for "
        "logcosh), summed over pixels with the KL at weight 1, or korkic2021 (the thesis's "
        "pixel-mean scale, KL x batch/N)",
    )
    t.add_argument(
        "--sigma",
        type=Number(0.0, 1e6, open_low=True),
        default=None,
        help="the decoder's noise SD (default: learned, the batch's RMSE)",
    )
    t.add_argument("--arch", default="small", help="architecture: paper (Table 3) or small")
    t.add_argument(
        "--images",
        type=image_source,
        default="phantom",
        help="'phantom' (rendered on the fly) or a folder of PNG/JPEG images, searched "
        "recursively (one sub-folder per class is fine)",
    )
    t.add_argument("--n", type=COUNT, default=10_000, help="number of phantom training images")
    t.add_argument("--image-size", type=IMAGE_SIZE, default=64, help="image side in px")
    t.add_argument("--latent-dim", type=LATENT_DIM, default=32, help="latent dims")
    t.add_argument(
        "--val-n",
        type=Integer(0, COUNT.maximum),
        default=0,
        help="images held out for validation (phantom subjects after the training ones, or "
        "files of the folder drawn by --seed)",
    )
    t.add_argument(
        "--epochs",
        type=STEPS,
        default=None,
        help="train this many epochs (after the beta warm-up) instead of a step budget",
    )
    t.add_argument(
        "--stop-rel-change",
        type=REL_CHANGE,
        default=None,
        help="stop once the validation reconstruction MSE moves by less than this fraction "
        "between epochs (Korkic 2021: 0.01); needs --val-n",
    )
    t.add_argument(
        "--stop-patience",
        type=STEPS,
        default=1,
        help="epochs in a row that must each move by less than --stop-rel-change",
    )
    t.add_argument(
        "--stop-start-epoch",
        type=Integer(0, STEPS.maximum),
        default=0,
        help="judge the stop from this epoch on (the first epochs can plateau at the mean image)",
    )
    t.add_argument(
        "--latent-augment",
        default=None,
        choices=("gaussian", "cutout", "mixup", "adaptive"),
        help="Ramisetti 2024: augment z before decoding (adaptive: chosen per epoch from the "
        "validation MSE; needs --val-n)",
    )
    t.add_argument(
        "--max-steps",
        type=STEPS,
        default=None,
        help=f"the training budget in optimizer steps (default {DEFAULT_STEPS} unless "
        "--epochs is given; with --epochs, a cap)",
    )
    t.add_argument("--batch-size", type=BATCH, default=32, help="images per step")
    t.add_argument("--optimizer", default="adam", help="adam, sgd or rmsprop")
    t.add_argument("--lr", type=LEARNING_RATE, default=1e-3, help="learning rate")
    t.add_argument(
        "--lr-decay",
        type=Number(0.0, 1.0, open_low=True),
        default=None,
        help="exponential decay: the learning rate's factor per epoch",
    )
    t.add_argument(
        "--lr-warmup-steps",
        type=Integer(0, STEPS.maximum),
        default=None,
        help="linear learning-rate warm-up over this many steps (default: the objective's "
        "own: 500 for logcosh, else none)",
    )
    t.add_argument(
        "--augment",
        action="store_true",
        help="the paper's flips and vertical crops (off by default for phantom images, whose "
        "tilt a flip changes; on for a folder)",
    )
    t.add_argument(
        "--no-perceptual", action="store_true", help="beta objective without the VGG16 terms"
    )
    t.add_argument("--log-every", type=STEPS, default=50, help="steps per logged loss row")
    t.add_argument("--checkpoint-every", type=STEPS, default=2000, help="steps per checkpoint")
    t.add_argument("--seed", type=SEED, default=0, help="weights, data order and phantom seed")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cuda")
    add_progress_flag(t)
    t.set_defaults(_vae_run=_train)

    e = sub.add_parser(
        "evaluate",
        help="reconstruction, KL, active units, MIG/DCI/SAP and the eta-probe on held-out "
        "phantom images",
        description="Evaluate a trained VAE on phantom images after the training subjects.",
        formatter_class=HelpFormatter,
    )
    e.add_argument(
        "dir", type=existing_path, metavar="DIR", help="run folder (or its model folder)"
    )
    e.add_argument(
        "--n", type=Integer(8, COUNT.maximum), default=512, help="held-out phantom images"
    )
    add_json_flag(e, "the evaluation")
    e.add_argument(
        "--plots", type=output_folder, default=None, metavar="DIR", help="write the four plots here"
    )
    e.add_argument("--device", type=device, default="cpu", help="torch device")
    e.set_defaults(_vae_run=_evaluate)

    s = sub.add_parser(
        "select",
        help="rank latent dims by the paper's Methods 1 and 2; save DIR's eta dims",
        description="Run the paper's Methods 1 and 2, compare them (and with the phantom's own "
        "ranking), and write selection.json beside the weights for `synthoct build "
        "--generator vae --weights DIR`.",
        formatter_class=HelpFormatter,
    )
    s.add_argument(
        "dir", type=existing_path, metavar="DIR", help="run folder (or its model folder)"
    )
    s.add_argument(
        "--n1", type=Integer(1, 10**7), default=10_000, help="Method 1 draws (paper: 1,000,000)"
    )
    s.add_argument(
        "--n2", type=Integer(1, 10**6), default=1_000, help="Method 2 draws (paper: 10,000)"
    )
    s.add_argument(
        "--n-phantom", type=Integer(8, 10**6), default=512, help="phantom images for its ranking"
    )
    s.add_argument("--seed", type=SEED, default=0, help="seed of the draws")
    s.add_argument("--batch-size", type=BATCH, default=256, help="decoder batch")
    s.add_argument("--device", type=device, default="cpu", help="torch device")
    add_json_flag(s, "the selection")
    add_progress_flag(s)
    s.set_defaults(_vae_run=_select)

    w = sub.add_parser(
        "sweep",
        help="Korkic's (2021) sensitivity grid: objectives x optimizers x learning rates x latent "
        "sizes x seeds, resumable",
        description="Train one VAE per cell of the grid on phantom images (or a folder), "
        "stopping by Korkic's (2021) rule; record validation loss, epochs to converge, wall time, "
        "MIG, the eta-probe and whether Methods 1 and 2 agree; write OUT/results.parquet, "
        "results.csv, loss_vs_lr.png, outcomes.png and report.json. Unset grid options take "
        "the preset's values.",
        formatter_class=HelpFormatter,
    )
    w.add_argument("--out", required=True, type=output_folder, help="sweep folder")
    w.add_argument("--preset", default="reduced", help="grid: reduced (180 cells at 32 px, "
                   "sized for a 2-core CPU) or korkic2021 (the thesis's 360 runs)")  # fmt: skip
    for flag, kind, what in (
        ("--objectives", str, "objectives"), ("--optimizers", str, "adam, sgd, rmsprop"),
        ("--lrs", LEARNING_RATE, "learning rates"), ("--latent-dims", LATENT_DIM, "latent sizes"),
        ("--seeds", SEED, "training seeds"),
    ):  # fmt: skip
        w.add_argument(flag, type=_comma_list(kind), default=None, help=f"comma-separated {what}")
    w.add_argument(
        "--images", type=image_source, default=None, help="'phantom' or a folder of images"
    )
    for flag, kind, what in (
        ("--n", COUNT, "training images"), ("--val-n", COUNT, "validation images"),
        ("--image-size", IMAGE_SIZE, "image side in px"),
        ("--epochs", STEPS, "at most this many epochs"),
        ("--max-steps", STEPS, "at most this many optimizer steps a cell"),
        ("--batch-size", BATCH, "images per step"),
        ("--stop-rel-change", REL_CHANGE, "convergence: relative change of the validation MSE"),
        ("--stop-patience", STEPS, "convergence: epochs in a row"),
        ("--stop-start-epoch", Integer(0, STEPS.maximum), "convergence: judged from this epoch on"),
    ):  # fmt: skip
        w.add_argument(flag, type=kind, default=None, help=what)
    w.add_argument("--likelihood", default=None, choices=("objective", "korkic2021"),
                   help="every objective's reconstruction likelihood: its own (a "
                   "log-likelihood over pixels, KL weight 1) or korkic2021 (the thesis's "
                   "pixel-mean scale, KL x batch/N)")  # fmt: skip
    w.add_argument("--workers", type=WORKERS, default=1, help="cells trained in parallel processes")
    add_rank_world(w)
    w.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in --out; it may add --seeds after its own",
    )
    w.add_argument(
        "--report",
        action="store_true",
        help="only rebuild the table, plots and report from the finished cells",
    )
    w.add_argument("--device", type=device, default="cpu", help="torch device")
    add_json_flag(w, "the report")
    add_progress_flag(w)
    w.set_defaults(_vae_run=_sweep)


def _comma_list(kind: object) -> object:
    """Comma-separated values, each read by ``kind`` (a type of :mod:`.checks`, or str)."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())  # type: ignore[operator]
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise argparse.ArgumentTypeError(f"in the comma-separated {text!r}: {exc}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
        return values

    parse.kind = kind  # type: ignore[attr-defined]
    return parse


#: a relative change in (0, 1] (Korkic 2021: 0.01)
REL_CHANGE = Number(0.0, 1.0, open_low=True)


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args, "vae")


def _train(args: argparse.Namespace) -> int:
    from synthoct_bench.generators.vae.run import VAERunSpec, train_run
    from synthoct_bench.generators.vae.training import VAETrainingConfig

    spec = VAERunSpec(
        images=args.images,
        n=args.n,
        image_size=args.image_size,
        latent_dim=args.latent_dim,
        arch=args.arch,
        seed=args.seed,
        val_n=args.val_n,
    )
    if args.stop_rel_change is not None and args.val_n == 0:
        raise ValueError("--stop-rel-change compares validation losses: set --val-n > 0")
    objective_args = dict(args.objective_arg)
    for key in ("likelihood", "sigma"):
        if getattr(args, key) is not None:
            if args.objective == "beta":
                raise ValueError(
                    f"--{key} sets a non-beta objective's likelihood; the beta objective is "
                    "the paper's own loss"
                )
            objective_args[key] = getattr(args, key)
    config = VAETrainingConfig(
        objective=args.objective,
        objective_config=objective_args or None,
        arch=args.arch,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_decay=args.lr_decay,
        lr_warmup_steps=args.lr_warmup_steps,
        optimizer=args.optimizer,
        epochs=args.epochs if args.epochs is not None else VAETrainingConfig.epochs,
        max_steps=args.max_steps
        if args.max_steps is not None or args.epochs is not None
        else DEFAULT_STEPS,
        augment=args.augment or not spec.is_phantom,
        perceptual=not args.no_perceptual,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        stop_rel_change=args.stop_rel_change,
        stop_patience=args.stop_patience,
        stop_start_epoch=args.stop_start_epoch,
        latent_augment=args.latent_augment,
    )
    result = train_run(
        args.out, spec, config, device=args.device, resume=args.resume,
        progress=not args.no_progress,
    )  # fmt: skip
    last = result["history"][-1] if result["history"] else {}
    loss = f", loss {last['loss']:.4g}" if "loss" in last else ""
    stop = ""
    if result["converged_step"] is not None:
        stop = (
            f", stopped at epoch {result['epochs']:g}: validation MSE moved by less than "
            f"{args.stop_rel_change:g}"
        )
    print(f"trained {result['step']} steps{loss}{stop}")
    print(f"model: {args.out}/model  loss curves: {args.out}/loss_curves.png")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from synthoct_bench.generators.vae.run import evaluate_run

    emit_result(args, evaluate_run(args.dir, n=args.n, plots_dir=args.plots, device=args.device))
    return 0


def _select(args: argparse.Namespace) -> int:
    from synthoct_bench.generators.vae.run import run_model_dir, select_run

    selection = select_run(
        args.dir, n_method1=args.n1, n_method2=args.n2, n_phantom=args.n_phantom,
        seed=args.seed, device=args.device, batch_size=args.batch_size,
        progress=not args.no_progress,
    )  # fmt: skip
    emit_result(args, selection)
    if args.json != "-":
        print(f"selection: {run_model_dir(args.dir) / 'selection.json'}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from synthoct_bench.generators.vae.sweep import grid_from_options, run_sweep, sweep_report

    if not args.report:
        grid = grid_from_options(
            args.preset, objectives=args.objectives, optimizers=args.optimizers, lrs=args.lrs,
            latent_dims=args.latent_dims, seeds=args.seeds, images=args.images, n=args.n,
            val_n=args.val_n, image_size=args.image_size, epochs=args.epochs,
            max_steps=args.max_steps, batch_size=args.batch_size,
            stop_rel_change=args.stop_rel_change, stop_patience=args.stop_patience,
            stop_start_epoch=args.stop_start_epoch,
        )  # fmt: skip
        if args.likelihood is not None:
            from dataclasses import replace

            likelihood = None if args.likelihood == "objective" else args.likelihood
            grid = replace(grid, likelihood=likelihood)
        print(f"{len(grid.cells)} cells in the grid")
        run_sweep(
            grid, args.out, resume=args.resume, workers=args.workers, rank=args.rank,
            world=args.world, device=args.device, progress=not args.no_progress,
        )  # fmt: skip
    emit_result(args, sweep_report(args.out))
    return 0
