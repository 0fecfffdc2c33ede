"""Run one reference baseline on a dataset and write a submission for the scorer.

    python baselines/run_baseline.py resnet18 --data DIR_OR_REPO --noise 9 --out pred_s9.parquet
    python baselines/run_baseline.py oracle --data DIR_OR_REPO --noise 9 --out oracle_s9.parquet

Same options as ``synthoct baseline`` (the logic is in ``synthoct_bench.baselines``).
"""

import sys

from synthoct_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["baseline", *sys.argv[1:]]))
