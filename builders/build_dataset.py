"""Build the benchmark dataset: a thin wrapper over ``synthoct build`` (same flags).

Examples::

    # laptop preview: 4,000 subjects, phantom images, both cores
    python builders/build_dataset.py --preset mini --workers 2 --out oct-mini

    # the paper's scale on a SLURM array of 64 tasks sharing one filesystem:
    # each task builds shards s with s % 64 == its index, the last to finish merges
    sbatch --array=0-63 --wrap "python builders/build_dataset.py --preset full \\
        --workers 16 --out /scratch/oct-full --resume"

    # or with torchrun across nodes (RANK / WORLD_SIZE), diffusion images on GPUs
    torchrun --nnodes 8 --nproc-per-node 8 builders/build_dataset.py --preset full \\
        --generator diffusion --weights /models/oct-sd15 --image-size 512 \\
        --out /scratch/oct-full-sd --resume

    # if ranks finished at different times and none merged:
    python builders/build_dataset.py --merge --out /scratch/oct-full

``--resume`` is safe on a fresh folder and needed to finish an interrupted one.
"""

from __future__ import annotations

import sys

from synthoct_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
