"""Every baseline at every noise level on an existing dataset, scored: the results table.

    synthoct build --preset small --out data/small
    python baselines/results_table.py --data data/small --out runs/small \\
        --epochs 10 --input-size 224 --batch-size 16 --device cuda

Trains the paper's ResNet18 per level, writes the average, random and oracle
submissions, scores all of them with 1,000 bootstrap resamples and prints the
paper's Tables 1 and 2 beside this run's (``synthoct demo --data ...``).
"""

import sys

from synthoct_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
