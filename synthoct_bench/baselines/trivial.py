"""Trivial reference predictors: the floor (average, random) and the ceiling (oracle).

They bracket every real model on the benchmark's R² scale:

- ``AverageBaseline`` learns the training targets' mean and predicts it for
  everyone: R² ≈ 0 (the EBE targets' mean is ≈ 0, the population mean of η).
- ``RandomBaseline`` predicts independent N(0, I) draws, the paper's "Random"
  column: R² ≈ -1, since a draw adds its own unit variance to the error.
- ``OracleBaseline`` predicts E[η̂ | η] = η/√(1+σ²) from the hidden noise-free η.
  No image model can do better in expectation, so its R² ≈ 1/(1+σ²) is the
  theoretical maximum: an upper bound, not a model (it needs η, which a
  benchmark user never sees).

X and y are as for every baseline (:mod:`synthoct_bench.baselines.base`).
Random and oracle learn nothing from data: their ``fit`` only checks the
parameters and columns, and ``predict`` works without it. Random draws come
from :mod:`synthoct_bench.rng`, keyed by (seed, subject id): a subject's draw
does not depend on the split or batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthoct_bench import rng
from synthoct_bench.baselines.base import (
    ETA_DIM,
    Columns,
    ParamsMixin,
    check_targets,
    column,
    n_rows,
)

__all__ = ["ETA_DIM", "AverageBaseline", "RandomBaseline", "OracleBaseline"]


def _subject_ids(subject_id: Any) -> np.ndarray:
    ids = np.asarray(subject_id)
    if ids.ndim != 1:
        raise ValueError(f"subject_id must be a 1-d array of subject ids, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"subject_id must hold integers, got dtype {ids.dtype}")
    return ids


class AverageBaseline(ParamsMixin):
    """Predicts the mean of the training targets for every subject (the paper's "Average").

    Reads no column of X beyond its row count. Learned: ``mean_`` (3,), y's mean.
    """

    input_columns: tuple[str, ...] = ()

    def __init__(self) -> None:
        pass

    def fit(self, X: Columns, y: Any) -> AverageBaseline:
        """Learn ``mean_`` = y.mean(axis=0) from the (N, 3) targets."""
        self.mean_ = check_targets(y, n_rows(X)).mean(axis=0)
        return self

    def predict(self, X: Columns) -> np.ndarray:
        """``mean_`` repeated for each row of X: (N, 3)."""
        if not hasattr(self, "mean_"):
            raise ValueError("this AverageBaseline is not fitted; call fit(X, y) first")
        return np.tile(self.mean_, (n_rows(X), 1))


class RandomBaseline(ParamsMixin):
    """Predicts η ~ N(0, I) drawn per subject (the paper's "Random").

    Reads X["subject_id"]. Draws are keyed by (seed, subject id) on their own
    RNG stream, so they are reproducible and independent of every draw used to
    build the data.
    """

    input_columns: tuple[str, ...] = ("subject_id",)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: Columns, y: Any = None) -> RandomBaseline:
        """Nothing to learn; checks that X has subject ids."""
        _subject_ids(column(X, "subject_id", type(self).__name__))
        return self

    def predict(self, X: Columns) -> np.ndarray:
        """N(0, I) draws of shape (N, 3), one row per subject id."""
        ids = _subject_ids(column(X, "subject_id", type(self).__name__))
        return rng.standard_normal(int(self.seed), rng.stream_id("baseline/random"), ids, ETA_DIM)


class OracleBaseline(ParamsMixin):
    """Upper bound, not a model: η/√(1+σ²) computed from the hidden noise-free η.

    Reads X["eta"]. With η̂ = (η + r)/√(1+σ²) and r independent of η (paper
    eq. 10), this is E[η̂ | η], the best prediction anything that only sees the
    image can make. Its expected R² against η̂ is 1/(1+σ²), the benchmark's
    theoretical max. ``noise`` is σ², the variance of the level being predicted.
    """

    input_columns: tuple[str, ...] = ("eta",)

    def __init__(self, noise: float) -> None:
        self.noise = noise

    def _variance(self) -> float:
        noise = float(self.noise)
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite variance >= 0 (e.g. 9), got {self.noise}")
        return noise

    def fit(self, X: Columns, y: Any = None) -> OracleBaseline:
        """Nothing to learn; checks ``noise`` and that X has the noise-free eta."""
        self._variance()
        self._eta(X)
        return self

    def predict(self, X: Columns) -> np.ndarray:
        """η/√(1+σ²) of shape (N, 3) from the noise-free X["eta"] (N, 3)."""
        return self._eta(X) / np.sqrt(1.0 + self._variance())

    def _eta(self, X: Columns) -> np.ndarray:
        eta = np.asarray(column(X, "eta", type(self).__name__), dtype=np.float64)
        if eta.ndim != 2 or eta.shape[1] != ETA_DIM:
            raise ValueError(
                f"the oracle needs the noise-free eta with shape (N, {ETA_DIM}), got {eta.shape}"
            )
        return eta
