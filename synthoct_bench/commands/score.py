"""`synthoct score`: check submissions and report the paper's Tables 1 and 2 with intervals.

    synthoct score --data DIR_OR_REPO --noise 9 --split test --predictions pred_s9.parquet
    synthoct score --data D --predictions subs/ --plot scores.png --json scores.json

``--predictions`` may be repeated and may name a directory (every *.parquet and
*.csv in it): each file is scored at the noise level it records (or ``--noise``),
and ``--plot`` draws R² and fraction of max across levels, one line per model.

    synthoct score --data D --predictions subs/ --seeds-of mine --summary \
        --leaderboard-entry mine.jsonl --model-index mine.yaml --dataset-id ORG/NAME

``--seeds-of MODEL`` scores that model's files at each level as training seeds;
``--summary`` prints one row per level; the JSON is always
``{"schema_version": 1, "reports": [...]}`` (:mod:`synthoct_bench.scoring.leaderboard`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthoct_bench.commands.checks import (
    BOOTSTRAP,
    NOISE_LEVEL,
    SEED,
    dataset_source,
    existing_path,
    output_file,
)
from synthoct_bench.commands.common import add_json_flag

HELP = "score submissions of predicted random effects (Tables 1 and 2, bootstrap intervals)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, type=dataset_source, help="dataset directory or Hub repo id"
    )
    parser.add_argument(
        "--predictions",
        required=True,
        type=existing_path,
        action="append",
        metavar="FILE_OR_DIR",
        help="submission .parquet/.csv, or a directory of them; repeat for several",
    )
    parser.add_argument(
        "--noise",
        type=NOISE_LEVEL,
        default=None,
        help="noise level sigma2, one of the dataset's (unset: the level each file records)",
    )
    parser.add_argument("--split", default="test", help="split to score")
    parser.add_argument(
        "--compare",
        type=existing_path,
        metavar="FILE",
        help="second submission: paired differences (this - other)",
    )
    add_json_flag(parser, "the reports")
    parser.add_argument(
        "--plot", type=output_file, metavar="FILE.png", help="plot R2 and fraction of max"
    )
    parser.add_argument("--n-bootstrap", type=BOOTSTRAP, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=SEED, default=0, help="bootstrap and simulation seed")
    parser.add_argument("--revision", default=None, help="Hub revision (tag or commit) to pin")
    parser.add_argument(
        "--references",
        type=existing_path,
        metavar="FILE",
        default=None,
        help="a blind build's private references (references/test.parquet): needed to "
        "score its blind test split; checked against the dataset's manifest",
    )
    parser.add_argument(
        "--no-nll", action="store_true", help="skip the NLME-based NLLs (Table 2 and beyond)"
    )
    parser.add_argument(
        "--seeds-of",
        action="append",
        default=[],
        metavar="MODEL",
        help="score the files recording this model as its training seeds: one report per "
        "level, mean ± sd over seeds beside the bootstrap interval; repeatable",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="print one row per noise level (R2 with interval, fraction of max, Table 2 "
        "Predicted NLL) instead of the full tables",
    )
    parser.add_argument(
        "--leaderboard-entry",
        type=output_file,
        metavar="FILE",
        help="write one model's leaderboard entry as one JSON line (see RULES.md)",
    )
    parser.add_argument(
        "--model-index",
        type=output_file,
        metavar="FILE.yaml",
        help="write a Hugging Face model-index YAML snippet for the model card",
    )
    parser.add_argument(
        "--dataset-id",
        metavar="ORG/NAME",
        help="Hub dataset id for --model-index (unset: --data, if it is a Hub id)",
    )
    parser.add_argument(
        "--nll-params",
        choices=("simulation", "fitted"),
        default="simulation",
        help="NLME parameters of the NLLs: the dataset's simulation ones or its "
        "FOCE fit at this noise level",
    )


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.atomic import write_text
    from synthoct_bench.scoring import leaderboard as lb
    from synthoct_bench.scoring.batch import expand_predictions, score_files

    outputs = (
        ("--json", args.json),
        ("--plot", args.plot),
        ("--leaderboard-entry", args.leaderboard_entry),
        ("--model-index", args.model_index),
    )
    for flag, target in outputs:
        if target and target != "-" and Path(target).is_dir():
            raise ValueError(f"{flag} {target} is a folder; give a file name")
    if args.compare and len(expand_predictions(args.predictions)) != 1:
        raise ValueError("--compare needs exactly one --predictions file")
    if args.compare and args.seeds_of:
        raise ValueError("--compare takes one submission, not --seeds-of training seeds")
    reports = score_files(
        args.predictions,
        args.data,
        noise=args.noise,
        split=args.split,
        seeds_of=args.seeds_of,
        compare=args.compare,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        revision=args.revision,
        nll=not args.no_nll,
        nll_params=args.nll_params,
        references=args.references,
    )
    # Build every leaderboard output before writing any, so a refusal leaves no file.
    entry = lb.entry_line(lb.leaderboard_entry(reports)) if args.leaderboard_entry else None
    card = lb.model_index_yaml(reports, dataset_id=args.dataset_id) if args.model_index else None
    payload = json.dumps(lb.reports_payload(reports), indent=2)
    notes = []
    if args.json and args.json != "-":
        write_text(args.json, payload + "\n")
        notes.append(f"JSON written to {args.json}")
    if entry is not None:
        write_text(args.leaderboard_entry, entry + "\n")
        notes.append(f"leaderboard entry written to {args.leaderboard_entry}")
    if card is not None:
        write_text(args.model_index, card)
        notes.append(f"model-index written to {args.model_index}")
    if args.plot:
        from synthoct_bench.scoring.plot import plot_reports

        plot_reports(reports, args.plot)
        notes.append(f"plot written to {args.plot}")
    if args.json == "-":
        print(payload)
        return 0
    if args.summary:
        print(lb.format_summary(reports))
    else:
        print("\n\n".join(str(r) for r in reports))
    if notes:
        print("\n" + "\n".join(notes))
    return 0
