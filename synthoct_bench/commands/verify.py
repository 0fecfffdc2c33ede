"""`synthoct verify`: check a built dataset folder against its manifest."""

from __future__ import annotations

import argparse

HELP = "check every shard of a built dataset (presence, size, rows, sha256); non-zero on problems"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset folder (with manifest.json)")
    parser.add_argument(
        "--quick", action="store_true", help="sizes and row counts only, skip the sha256"
    )


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.dataset.manifest import verify

    report = verify(args.path, check_sha=not args.quick)
    print(report)
    return 0 if report.ok else 1
