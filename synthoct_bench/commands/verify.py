"""`synthoct verify`: check a built dataset folder against its manifest."""

from __future__ import annotations

import argparse

HELP = (
    "check a built dataset against its manifest: the manifest's consistency, the card, every "
    "shard (size, rows, sha256) and one regenerated subject per shard; non-zero on problems"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset folder (with manifest.json)")
    parser.add_argument(
        "--quick", action="store_true", help="sizes and row counts only, skip the sha256"
    )
    parser.add_argument(
        "--no-content",
        action="store_true",
        help="skip regenerating the first subject of each shard from the manifest",
    )


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.dataset.verify import verify

    report = verify(args.path, check_sha=not args.quick, content=not args.no_content)
    print(report)
    return 0 if report.ok else 1
