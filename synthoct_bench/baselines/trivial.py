"""Trivial reference predictors: the floor (average, random) and the ceiling (oracle).

They bracket every real model on the benchmark's R² scale:

- ``AverageBaseline`` predicts η = 0 for everyone (the population mean): R² ≈ 0.
- ``RandomBaseline`` predicts independent N(0, I) draws, the paper's "Random"
  column: R² ≈ -1, since a draw adds its own unit variance to the error.
- ``OracleBaseline`` predicts E[η̂ | η] = η/√(1+σ²) from the hidden noise-free η.
  No image model can do better in expectation, so its R² ≈ 1/(1+σ²) is the
  theoretical maximum: an upper bound, not a model (it needs η, which a
  benchmark user never sees).

All three follow scikit-learn's shape (``fit`` returns self, ``predict``
returns (N, 3)) and hold no state learned from data, so ``fit`` only checks
its input. Random draws come from :mod:`synthoct_bench.rng`, keyed by
(seed, subject id): a subject's draw does not depend on the split or batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthoct_bench import rng

__all__ = ["ETA_DIM", "AverageBaseline", "RandomBaseline", "OracleBaseline"]

#: Number of random effects η per subject (Ka, Imax, IC50).
ETA_DIM = 3


def _subject_ids(subject_id: Any) -> np.ndarray:
    ids = np.asarray(subject_id)
    if ids.ndim != 1:
        raise ValueError(f"subject_id must be a 1-d array of subject ids, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"subject_id must hold integers, got dtype {ids.dtype}")
    return ids


class AverageBaseline:
    """Predicts the population mean η = 0 for every subject (the paper's "Average")."""

    #: What ``predict`` takes: the subject ids of the split.
    input_column = "subject_id"

    def fit(self, subject_id: Any = None, y: Any = None) -> AverageBaseline:
        """Nothing to learn: the population mean of η is 0 by construction."""
        return self

    def predict(self, subject_id: Any) -> np.ndarray:
        """Zeros of shape (N, 3)."""
        ids = _subject_ids(subject_id)
        return np.zeros((ids.size, ETA_DIM), dtype=np.float64)

    def get_params(self) -> dict[str, Any]:
        return {}


class RandomBaseline:
    """Predicts η ~ N(0, I) drawn per subject (the paper's "Random").

    Draws are keyed by (seed, subject id) on their own RNG stream, so they are
    reproducible and independent of every draw used to build the data.
    """

    input_column = "subject_id"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def fit(self, subject_id: Any = None, y: Any = None) -> RandomBaseline:
        return self

    def predict(self, subject_id: Any) -> np.ndarray:
        """N(0, I) draws of shape (N, 3)."""
        ids = _subject_ids(subject_id)
        return rng.standard_normal(self.seed, rng.stream_id("baseline/random"), ids, ETA_DIM)

    def get_params(self) -> dict[str, Any]:
        return {"seed": self.seed}


class OracleBaseline:
    """Upper bound, not a model: η/√(1+σ²) computed from the hidden noise-free η.

    With η̂ = (η + r)/√(1+σ²) and r independent of η (paper eq. 10), this is
    E[η̂ | η], the best prediction anything that only sees the image can make.
    Its expected R² against η̂ is 1/(1+σ²), the benchmark's theoretical max.
    """

    input_column = "eta"

    def __init__(self, noise: float) -> None:
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite variance >= 0 (e.g. 9), got {noise}")
        self.noise = float(noise)

    def fit(self, eta: Any = None, y: Any = None) -> OracleBaseline:
        return self

    def predict(self, eta: Any) -> np.ndarray:
        """η/√(1+σ²) of shape (N, 3) from the noise-free η (N, 3)."""
        eta = np.asarray(eta, dtype=np.float64)
        if eta.ndim != 2 or eta.shape[1] != ETA_DIM:
            raise ValueError(
                f"the oracle needs the noise-free eta with shape (N, {ETA_DIM}), got {eta.shape}"
            )
        return eta / np.sqrt(1.0 + self.noise)

    def get_params(self) -> dict[str, Any]:
        return {"noise": self.noise}
