"""Kernel distance between two image sets (KID, Bińkowski et al. 2018) on any features.

KID is the unbiased squared MMD under the cubic polynomial kernel
``k(x, y) = (x·y / d + 1)³``, averaged over random equal-size subsets. Unlike FID it
is unbiased in the sample size, so small CPU-sized samples compare fairly. The
published metric uses Inception-v3 features, which cannot be downloaded here; the
caller passes features of a network trained here and says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthoct_bench import rng

__all__ = ["KID", "kid"]


@dataclass(frozen=True)
class KID:
    """Mean and standard deviation of the subsets' MMD² estimates."""

    mean: float
    std: float
    subset_size: int
    n_subsets: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "subset_size": self.subset_size,
                "n_subsets": self.n_subsets}  # fmt: skip


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = len(x)
    off = ~np.eye(m, dtype=bool)
    return float(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean())


def kid(
    a: np.ndarray, b: np.ndarray, subset_size: int = 100, n_subsets: int = 50, seed: int = 0
) -> KID:
    """KID between feature sets ``a`` (N, d) and ``b`` (M, d); subsets of ``subset_size``
    (at most min(N, M)) drawn ``n_subsets`` times, reproducibly from ``seed``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, d) and (M, d) with one d, got {a.shape}, {b.shape}")
    m = min(int(subset_size), len(a), len(b))
    if m < 2 or n_subsets < 1:
        raise ValueError(f"need subsets of >= 2 and n_subsets >= 1, got {m} and {n_subsets}")
    ids = np.arange(n_subsets)
    pick_a = np.argsort(rng.uniform(seed, rng.stream_id("kid/a"), ids, len(a)), axis=1)[:, :m]
    pick_b = np.argsort(rng.uniform(seed, rng.stream_id("kid/b"), ids, len(b)), axis=1)[:, :m]
    values = np.array([_mmd2_unbiased(a[i], b[j]) for i, j in zip(pick_a, pick_b, strict=True)])
    return KID(float(values.mean()), float(values.std()), m, int(n_subsets))
