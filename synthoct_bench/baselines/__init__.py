"""Reference baselines: trivial bounds (average, random, oracle) and the paper's ResNet18.

Torch is imported only when the ResNet18 names are first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from synthoct_bench.baselines.trivial import AverageBaseline, OracleBaseline, RandomBaseline

__all__ = [
    "AverageBaseline",
    "RandomBaseline",
    "OracleBaseline",
    "ResNet18Baseline",
    "TrainConfig",
    "BASELINES",
]

#: Names accepted by ``synthoct baseline`` and :func:`synthoct_bench.baselines.run.run_baseline`.
BASELINES: tuple[str, ...] = ("average", "random", "oracle", "resnet18")

_LAZY = {
    "ResNet18Baseline": "synthoct_bench.baselines.training",
    "TrainConfig": "synthoct_bench.baselines.training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthoct_bench.baselines' has no attribute {name!r}")
