"""synthoct-bench: synthetic OCT images paired with NLME longitudinal data.

The benchmark of Deltadahl et al., "A framework for evaluating predictive
models using synthetic image covariates and longitudinal data": latents z
drive both an image generator and, through three chosen dims η, a nonlinear
mixed-effects model of five longitudinal series at controlled noise levels.

The whole loop from the top level::

    import synthoct_bench as sb
    sb.build("oct-mini", preset="mini", workers=2)        # or use a Hub dataset
    assert sb.verify("oct-mini").ok
    test = sb.read_columns("oct-mini", "test", ["subject_id", "image"])
    sb.write_submission("pred.parquet", test["subject_id"], eta_pred, noise=9, split="test",
                        dataset="oct-mini")
    print(sb.score("pred.parquet", "oct-mini", noise=9))

``load`` gives a ``datasets.Dataset`` with the same column names at every
noise level. Every name is imported on first use, so ``import synthoct_bench``
stays light (no torch, no datasets).
"""

from __future__ import annotations

from synthoct_bench.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "load": "synthoct_bench.dataset.load:load",
    "read_columns": "synthoct_bench.dataset.load:read_columns",
    "read_metadata": "synthoct_bench.dataset.load:read_metadata",
    "build": "synthoct_bench.dataset.build:build",
    "verify": "synthoct_bench.dataset.verify:verify",
    "write_submission": "synthoct_bench.scoring.submission:write_submission",
    "score": "synthoct_bench.scoring.core:score",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, eager=__all__)
