"""synthoct-bench: synthetic OCT images paired with NLME longitudinal data.

The benchmark of Deltadahl et al., "A framework for evaluating predictive
models using synthetic image covariates and longitudinal data": latents z
drive both an image generator and, through three chosen dims η, a nonlinear
mixed-effects model of five longitudinal series at controlled noise levels.

``load`` and ``score`` are imported on first use so that ``import
synthoct_bench`` stays light (no torch, no datasets).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": "synthoct_bench.dataset.load",
    "score": "synthoct_bench.scoring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthoct_bench' has no attribute {name!r}")
