"""`synthoct score`: check submissions and report the paper's Tables 1 and 2 with intervals.

    synthoct score --data DIR_OR_REPO --noise 9 --split test --predictions pred_s9.parquet
    synthoct score --data D --predictions subs/ --plot scores.png --json scores.json

``--predictions`` may be repeated and may name a directory (every *.parquet and
*.csv in it): each file is scored at the noise level it records (or ``--noise``),
and ``--plot`` draws R² and fraction of max across levels, one line per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthoct_bench.commands.common import add_json_flag

HELP = "score submissions of predicted random effects (Tables 1 and 2, bootstrap intervals)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset directory or Hub repo id")
    parser.add_argument(
        "--predictions",
        required=True,
        action="append",
        metavar="FILE_OR_DIR",
        help="submission .parquet/.csv, or a directory of them; repeat for several",
    )
    parser.add_argument(
        "--noise",
        type=int,
        default=None,
        help="noise level sigma2, one of the dataset's (unset: the level each file records)",
    )
    parser.add_argument("--split", default="test", help="split to score")
    parser.add_argument(
        "--compare", metavar="FILE", help="second submission: paired differences (this - other)"
    )
    add_json_flag(parser, "the reports")
    parser.add_argument("--plot", metavar="FILE.png", help="plot R2 and fraction of max")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap and simulation seed")
    parser.add_argument("--revision", default=None, help="Hub revision (tag or commit) to pin")
    parser.add_argument(
        "--no-nll", action="store_true", help="skip the NLME-based NLLs (Table 2 and beyond)"
    )
    parser.add_argument(
        "--nll-params",
        choices=("simulation", "fitted"),
        default="simulation",
        help="NLME parameters of the NLLs: the dataset's simulation ones or its "
        "FOCE fit at this noise level",
    )


def _expand(entries: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".pq", ".csv")
            )
            if not found:
                raise ValueError(f"{path}: directory holds no *.parquet or *.csv submissions")
            files.extend(found)
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.atomic import write_text
    from synthoct_bench.scoring import read_submission, score
    from synthoct_bench.scoring.submission import max_submission_bytes

    for flag, target in (("--json", args.json), ("--plot", args.plot)):
        if target and target != "-" and Path(target).is_dir():
            raise ValueError(f"{flag} {target} is a folder; give a file name")
    files = _expand(args.predictions)
    if args.compare and len(files) != 1:
        raise ValueError("--compare needs exactly one --predictions file")
    reports = []
    for path in files:
        noise = args.noise
        if noise is None:
            # Peek at the declared level; size is re-checked against the split in score().
            declared = read_submission(path, max_bytes=max_submission_bytes(10**7)).noise
            if declared is None:
                raise ValueError(f"{path}: the file records no noise level; pass --noise")
            noise = declared
        reports.append(
            score(
                path,
                args.data,
                noise,
                args.split,
                compare=args.compare,
                n_bootstrap=args.n_bootstrap,
                seed=args.seed,
                revision=args.revision,
                nll=not args.no_nll,
                nll_params=args.nll_params,
            )
        )

    payload = (
        reports[0].to_dict() if len(reports) == 1 else {"reports": [r.to_dict() for r in reports]}
    )
    if args.json == "-":
        print(json.dumps(payload, indent=2))
    else:
        print("\n\n".join(str(r) for r in reports))
        if args.json:
            write_text(args.json, json.dumps(payload, indent=2) + "\n")
            print(f"\nJSON written to {args.json}")
    if args.plot:
        from synthoct_bench.scoring.plot import plot_reports

        plot_reports(reports, args.plot)
        if args.json != "-":
            print(f"plot written to {args.plot}")
    return 0
