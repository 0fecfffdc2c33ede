"""Which share of a sharded job this process runs: (rank, world).

The dataset build and the VAE sweep split their work the same way, by flags, by
torchrun's environment or by a SLURM array, so one rule decides for both.
"""

from __future__ import annotations

import os

__all__ = ["resolve_rank_world"]


def resolve_rank_world(rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """(rank, world) from flags, else torchrun (RANK/WORLD_SIZE), else a SLURM array."""
    env = os.environ
    if world is None:
        if "WORLD_SIZE" in env and "RANK" in env:
            rank = int(env["RANK"]) if rank is None else rank
            world = int(env["WORLD_SIZE"])
        elif "SLURM_ARRAY_TASK_COUNT" in env and "SLURM_ARRAY_TASK_ID" in env:
            offset = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            rank = int(env["SLURM_ARRAY_TASK_ID"]) - offset if rank is None else rank
            world = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            world = 1
    rank = 0 if rank is None else int(rank)
    world = int(world)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    return rank, world
