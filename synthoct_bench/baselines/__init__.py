"""Reference baselines: trivial bounds (average, random, oracle), the paper's ResNet18 and
the interpretable pipeline of Soelistyo & Lowe 2024 (β-TCVAE features with a dense, sparse
or symbolic head).

All are scikit-learn style estimators: parameters in the constructor,
``get_params``/``set_params``, ``fit(X, y)`` returning self, ``predict(X)``
returning (N, 3). X is one split's column mapping, as
:func:`synthoct_bench.dataset.read_columns` returns it, for every baseline;
:mod:`synthoct_bench.baselines.base` says which columns each reads.

Torch is imported only when the ResNet18 names are first used.
"""

from __future__ import annotations

from synthoct_bench.baselines.trivial import AverageBaseline, OracleBaseline, RandomBaseline
from synthoct_bench.lazy import lazy_exports

__all__ = [
    "AverageBaseline",
    "RandomBaseline",
    "OracleBaseline",
    "ResNet18Baseline",
    "TCVAEHeadBaseline",
    "BASELINES",
    "TRIVIAL",
    "run_baseline",
]

#: The baselines that learn nothing from images.
TRIVIAL: tuple[str, ...] = ("average", "random", "oracle")
#: Names accepted by ``synthoct baseline`` and :func:`synthoct_bench.baselines.run.run_baseline`.
BASELINES: tuple[str, ...] = (
    *TRIVIAL,
    "resnet18",
    "tcvae-dense",
    "tcvae-sparse",
    "tcvae-symbolic",
)

_LAZY = {
    "ResNet18Baseline": "synthoct_bench.baselines.training:ResNet18Baseline",
    "TCVAEHeadBaseline": "synthoct_bench.baselines.interpretable:TCVAEHeadBaseline",
    "run_baseline": "synthoct_bench.baselines.run:run_baseline",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, eager=__all__)
