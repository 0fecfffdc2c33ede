"""``synthoct reproduce``: the paper's Table 1 and 2 cells that follow from the NLME model
alone (:mod:`synthoct_bench.reproduce`), next to the paper's values."""

from __future__ import annotations

import argparse
import json

from synthoct_bench.commands.checks import BOOTSTRAP, COUNT, SEED, Integer, output_file
from synthoct_bench.commands.common import add_json_flag, add_noise_levels, add_progress_flag

HELP = "Reproduce the paper's Table 1 and 2 cells that follow from the NLME model alone."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n", type=Integer(2, 10**9), default=100_000, help="subjects (paper: 100,000)"
    )
    parser.add_argument(
        "--seed", type=SEED, default=0, help="global seed (latents, noise, bootstrap)"
    )
    add_noise_levels(parser)
    parser.add_argument("--n-bootstrap", type=BOOTSTRAP, default=1000, help="bootstrap resamples")
    add_json_flag(parser)
    parser.add_argument(
        "--plot", type=output_file, metavar="PNG", help="also save a plot of Table 2"
    )
    add_progress_flag(parser)
    parser.add_argument(
        "--fit-subjects",
        type=COUNT,
        default=2000,
        help="subjects in each level's population fit for the EBE cells",
    )
    parser.add_argument(
        "--estimator",
        choices=("foce", "importance"),
        default="foce",
        help="population fit for the EBE cells: foce (the paper's; biased ~10%% in "
        "tvImax/tvIC50 on this model) or importance (importance sampling)",
    )
    parser.add_argument(
        "--no-encoder",
        action="store_true",
        help="skip the EBE cells (Table 2 Approximate, Table 1 eta_hat vs eta_approx)",
    )


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.atomic import write_text
    from synthoct_bench.dataset.layout import parse_noise_levels
    from synthoct_bench.reproduce import (
        Encoder,
        format_table1,
        format_table2,
        plot_table2,
        reproduce_table1,
        reproduce_table2,
    )

    levels = parse_noise_levels(args.noise_levels)
    encoder = None
    if not args.no_encoder:
        encoder = Encoder(fit_subjects=args.fit_subjects, estimator=args.estimator)
    result = reproduce_table2(
        n=args.n,
        seed=args.seed,
        noise_levels=levels,
        n_bootstrap=args.n_bootstrap,
        encoder=encoder,
        progress=not args.no_progress,
    )
    if encoder is not None:
        result["table1"] = reproduce_table1(args.n, args.seed, levels, encoder, args.n_bootstrap)
    text = json.dumps(result, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(format_table2(result))
        if encoder is not None:
            print(format_table1(result["table1"]))
        if args.json:
            write_text(args.json, text + "\n")
    if args.plot:
        plot_table2(result, args.plot)
    return 0
