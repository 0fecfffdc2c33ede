"""`synthoct push`: upload a verified dataset folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse

HELP = "upload a built dataset to the Hub (token from HF_TOKEN or the cached login)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset folder (verified before upload)")
    parser.add_argument("--repo-id", required=True, help="dataset repo, ORG/NAME")
    parser.add_argument("--revision", default=None, help="branch to upload to (unset: main)")
    parser.add_argument("--tag", default=None, help="tag the uploaded commit, e.g. v1.0")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be uploaded where; upload nothing"
    )


def run(args: argparse.Namespace) -> int:
    from synthoct_bench.dataset.push import push

    plan = push(
        args.path,
        args.repo_id,
        revision=args.revision,
        tag=args.tag,
        private=args.private,
        dry_run=args.dry_run,
    )
    print(("dry run: would upload " if args.dry_run else "") + str(plan))
    return 0
