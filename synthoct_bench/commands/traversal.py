"""`synthoct traversal`: a latent traversal figure (the paper's Figure 5) for any generator."""

from __future__ import annotations

import argparse

import numpy as np

from synthoct_bench.commands.common import add_generator_arg

HELP = "Draw a latent traversal figure (rows = latent dims, columns = values -3..3) as a PNG."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--generator",
        default="phantom",
        help="image generator: phantom (CPU), diffusion, or package.module:Class",
    )
    parser.add_argument("--out", default="traversal.png", help="output PNG path")
    parser.add_argument(
        "--dims",
        type=int,
        nargs="+",
        default=None,
        help="0-based latent dims, one per row (unset: the generator's config()"
        "['traversal_dims'], else its eta_dims)",
    )
    parser.add_argument(
        "--values",
        type=float,
        nargs=3,
        default=(-3.0, 3.0, 7),
        metavar=("LOW", "HIGH", "COUNT"),
        help="column values as np.linspace(LOW, HIGH, COUNT)",
    )
    parser.add_argument(
        "--image-size", type=int, default=None, help="image side in px (unset: the generator's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="base latent and image seed")
    add_generator_arg(parser)


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.generators import get_generator
    from synthoct_bench.generators.traversal import save_traversal_figure

    kwargs = dict(args.generator_arg)
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    low, high, count = args.values
    if count < 1 or count != int(count):
        raise ValueError("--values COUNT must be a positive integer")
    generator = get_generator(args.generator, **kwargs)
    dims = args.dims
    if dims is None:
        config = generator.get_config()
        dims = list(config.get("traversal_dims") or generator.eta_dims)
    path = save_traversal_figure(
        generator, dims, args.out, values=np.linspace(low, high, int(count)), seed=args.seed
    )
    print(f"wrote {path} (dims {list(dims)})")
    return 0
