"""Bootstrap intervals for statistics built from per-subject sums.

Every benchmark metric here (mean NLL, MSE, R², paired differences) is a
function of a few totals over subjects, Σ_i s_i for per-subject statistics
s_i. A bootstrap resample only changes how often each subject is counted, so
its totals are ``counts @ S`` for a count matrix (B, N) and the per-subject
statistic matrix S (N, m). That turns 1000 resamples of 100k subjects into a
few matrix products instead of 1000 Python-level recomputations. Counts for
the same seed are identical across calls, so two submissions scored with the
same seed are compared on the same resamples (a paired bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "bootstrap_counts", "bootstrap_totals", "bootstrap"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __format__(self, spec: str) -> str:
        spec = spec or ".4f"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def bootstrap_counts(n: int, n_resamples: int, seed: int, chunk: int = 64) -> Iterator[np.ndarray]:
    """Yield (b, n) float64 count matrices, b <= chunk, n_resamples rows in all.

    Row r counts how often each subject appears in resample r (each row sums to n).
    """
    if n < 1:
        raise ValueError("bootstrap needs at least one subject")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    gen = np.random.Generator(np.random.PCG64(seed))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = gen.integers(0, n, size=(b, n))
        offsets = (np.arange(b) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=b * n).reshape(b, n)
        done += b
        yield counts.astype(np.float64)


def bootstrap_totals(stats: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column totals of ``stats`` (N, m) under each resample: shape (n_resamples, m)."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim == 1:
        stats = stats[:, None]
    return np.concatenate(
        [c @ stats for c in bootstrap_counts(stats.shape[0], n_resamples, seed)], axis=0
    )


def bootstrap(
    stats: np.ndarray,
    metric: Callable[[np.ndarray, int], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate | list[Estimate]:
    """Percentile bootstrap of ``metric(totals, n)`` over subjects.

    ``stats`` is (N, m) per-subject statistics; ``metric`` maps totals of shape
    (..., m) and the subject count to a value of shape (...) or (..., k) for k
    metrics at once. Returns one Estimate, or a list of k.
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim == 1:
        stats = stats[:, None]
    n = stats.shape[0]
    point = np.asarray(metric(stats.sum(axis=0), n), dtype=np.float64)
    boot = np.asarray(metric(bootstrap_totals(stats, n_resamples, seed), n), dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    if point.ndim == 0:
        return Estimate(float(point), float(low), float(high))
    return [
        Estimate(float(p), float(lo), float(hi)) for p, lo, hi in zip(point, low, high, strict=True)
    ]
