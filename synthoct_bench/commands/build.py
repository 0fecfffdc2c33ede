"""`synthoct build`: generate the benchmark dataset (Parquet shards, manifest, card)."""

from __future__ import annotations

import argparse

from synthoct_bench.commands.checks import (
    COUNT,
    IMAGE_SIZE,
    SEED,
    WORKERS,
    output_folder,
)
from synthoct_bench.commands.common import (
    add_generator_arg,
    add_noise_levels,
    add_progress_flag,
    add_rank_world,
    key_value,
)

HELP = "build the dataset: latents, images, NLME data and EBE targets as Hub-ready Parquet"


def configure(parser: argparse.ArgumentParser) -> None:
    from synthoct_bench.dataset.build import DEFAULT_FIT_SUBJECTS
    from synthoct_bench.dataset.layout import PRESETS

    sizes = ", ".join(f"{k} {sum(v.values()):,}" for k, v in PRESETS.items())
    parser.add_argument(
        "--out", required=True, type=output_folder, help="output folder (the dataset root)"
    )
    parser.add_argument("--preset", default="mini", choices=list(PRESETS), help=f"size ({sizes})")
    parser.add_argument("--n", type=COUNT, default=None, help="total subjects (overrides --preset)")
    parser.add_argument(
        "--splits",
        default=None,
        metavar="train=N,validation=N,test=N",
        help="explicit split sizes (override --preset and --n)",
    )
    parser.add_argument(
        "--generator",
        default="phantom",
        help="image generator: phantom (CPU), diffusion, or package.module:Class",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="diffusion: saved pipeline folder or Hub repo; vae: a `synthoct vae` run or model "
        "folder, its eta dims from `synthoct vae select` (path_or_repo_id=...)",
    )
    add_generator_arg(parser)
    parser.add_argument("--image-size", type=IMAGE_SIZE, default=224, help="image side in px")
    add_noise_levels(parser)
    parser.add_argument("--seed", type=SEED, default=0, help="dataset seed (every random draw)")
    parser.add_argument("--workers", type=WORKERS, default=1, help="local worker processes")
    parser.add_argument(
        "--shard-size",
        type=COUNT,
        default=None,
        help="rows per shard (unset: about 500 MB or n/16 rows, whichever is fewer)",
    )
    parser.add_argument(
        "--fit-subjects",
        type=COUNT,
        default=DEFAULT_FIT_SUBJECTS,
        help="training subjects per FOCE population fit",
    )
    parser.add_argument(
        "--fit-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="extra nlme.fit_foce keyword, e.g. compute_se=false; repeatable",
    )
    parser.add_argument(
        "--blind-test",
        action="store_true",
        help="publish the test split as images and subject_id only; its references go to "
        "references/test.parquet (private, never pushed; score with --references)",
    )
    parser.add_argument("--resume", action="store_true", help="finish an interrupted build")
    add_rank_world(parser)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="only merge finished shards into manifest.json and README.md",
    )
    add_progress_flag(parser)


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.dataset.build import build, merge
    from synthoct_bench.dataset.layout import parse_noise_levels, parse_splits

    if args.merge:
        path = merge(args.out)
        print(f"merged: {path} and {path.parent / 'README.md'}")
        return 0
    kwargs = dict(args.generator_arg)
    if args.weights and args.generator == "phantom":
        raise ValueError("--weights is for --generator vae or diffusion; the phantom has none")
    if args.weights:
        kwargs["path_or_repo_id"] = args.weights
        if args.generator == "vae":
            from synthoct_bench.generators.vae.run import run_model_dir

            kwargs["path_or_repo_id"] = str(run_model_dir(args.weights))
    summary = build(
        args.out,
        preset=args.preset,
        n=args.n,
        splits=parse_splits(args.splits) if args.splits else None,
        generator=args.generator,
        generator_kwargs=kwargs or None,
        image_size=args.image_size,
        noise_levels=parse_noise_levels(args.noise_levels),
        seed=args.seed,
        workers=args.workers,
        resume=args.resume,
        shard_size=args.shard_size,
        rank=args.rank,
        world=args.world,
        progress=not args.no_progress,
        fit_subjects=args.fit_subjects,
        fit_options=dict(args.fit_arg) or None,
        blind_test=args.blind_test,
    )
    print(summary)
    return 0
