"""Verify a built dataset folder and upload it to the Hub: ``synthoct push`` (same flags).

Examples::

    python builders/push_dataset.py oct-mini --repo-id ORG/synthoct-bench-mini --dry-run
    HF_TOKEN=... python builders/push_dataset.py oct-full --repo-id ORG/synthoct-bench \\
        --tag v1.0

The token comes from HF_TOKEN or a cached ``hf auth login``; it is never printed.
"""

from __future__ import annotations

import sys

from synthoct_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
