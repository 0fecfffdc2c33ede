"""`synthoct traversal`: a latent traversal figure (the paper's Figure 5) for any generator."""

from __future__ import annotations

import argparse

import numpy as np

from synthoct_bench.commands.checks import (
    IMAGE_SIZE,
    LATENT_DIM,
    SEED,
    Integer,
    Number,
    output_file,
)
from synthoct_bench.commands.common import add_generator_arg

#: most traversal columns (the paper's Figure 5 has 7)
MAX_COLUMNS = 64
#: a 0-based latent dim
LATENT_INDEX = Integer(0, LATENT_DIM.maximum - 1)

HELP = "Draw a latent traversal figure (rows = latent dims, columns = values -3..3) as a PNG."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--generator",
        default="phantom",
        help="image generator: phantom (CPU), diffusion, or package.module:Class",
    )
    parser.add_argument("--out", type=output_file, default="traversal.png", help="output PNG path")
    parser.add_argument(
        "--dims",
        type=LATENT_INDEX,
        nargs="+",
        default=None,
        help="0-based latent dims, one per row (unset: the generator's config()"
        "['traversal_dims'], else its eta_dims)",
    )
    parser.add_argument(
        "--values",
        type=Number(-1e6, 1e6),
        nargs=3,
        default=(-3.0, 3.0, 7),
        metavar=("LOW", "HIGH", "COUNT"),
        help="column values as np.linspace(LOW, HIGH, COUNT)",
    )
    parser.add_argument(
        "--image-size",
        type=IMAGE_SIZE,
        default=None,
        help="image side in px (unset: the generator's)",
    )
    parser.add_argument("--seed", type=SEED, default=0, help="base latent and image seed")
    add_generator_arg(parser)


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.generators import get_generator
    from synthoct_bench.generators.traversal import save_traversal_figure

    kwargs = dict(args.generator_arg)
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    low, high, count = args.values
    if not 1 <= count <= MAX_COLUMNS or count != int(count):
        raise ValueError(
            f"--values COUNT must be an integer from 1 to {MAX_COLUMNS}, got {count:g}"
        )
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
