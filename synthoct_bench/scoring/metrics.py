"""Table 1 metrics (MSE, R², fraction of the theoretical max) and the shared bootstrap engine.

Every scorer metric is a function of totals over subjects of a few per-subject
statistics, so all of them (Table 1, Table 2, the extra NLLs, and the paired
differences between two submissions) are bootstrapped together: one (N, m)
statistic matrix, one set of resamples (``synthoct_bench.stats.bootstrap_totals``),
every metric evaluated on the same resampled totals. Same seed, same resamples.

R² follows the paper's section 3 (DESIGN.md, "Evaluation"): sums over subjects
and all three dims, against one scalar mean of the reference,

    R² = 1 - Σ_i Σ_d (ref - cmp)² / Σ_i Σ_d (ref - mean(ref))²,

and MSE = Σ_i Σ_d (ref - cmp)² / (3 N). Both need only the per-subject sums
Σ_d (ref - cmp)², Σ_d ref and Σ_d ref².
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from synthoct_bench.stats import Estimate, bootstrap_totals

__all__ = [
    "TABLE1_PAIRS",
    "StatMatrix",
    "Totals",
    "MetricFn",
    "evaluate",
    "add_r2_stats",
    "r2_metric",
    "mse_metric",
]

#: (reference, compared) pairs of the paper's Table 1, in its row order.
TABLE1_PAIRS: tuple[tuple[str, str], ...] = (
    ("eta_noisy", "eta_pred"),
    ("eta_noisy", "eta_ebe"),
    ("eta_ebe", "eta_pred"),
)


class Totals:
    """Named view of summed statistics: ``T["name"]`` has shape (...) (one per resample)."""

    def __init__(self, values: np.ndarray, index: Mapping[str, int]):
        self._values = values
        self._index = index

    def __getitem__(self, name: str) -> np.ndarray:
        return self._values[..., self._index[name]]


MetricFn = Callable[[Totals, int], np.ndarray]


@dataclass
class StatMatrix:
    """Per-subject statistics collected by name, turned into one (N, m) matrix."""

    n: int
    names: list[str] = field(default_factory=list)
    columns: list[np.ndarray] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.n,):
            raise ValueError(f"statistic {name!r} must have shape ({self.n},), got {values.shape}")
        if name in self.names:
            raise ValueError(f"statistic {name!r} added twice")
        self.names.append(name)
        self.columns.append(values)

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def matrix(self) -> np.ndarray:
        return np.stack(self.columns, axis=1)


def evaluate(
    stats: StatMatrix,
    metrics: Mapping[str, MetricFn],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Estimate]:
    """Point value and percentile bootstrap interval of every metric, on shared resamples."""
    if n_resamples < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    mat = stats.matrix()
    index = stats.index()
    point_totals = Totals(mat.sum(axis=0), index)
    boot_totals = Totals(bootstrap_totals(mat, n_resamples, seed), index)
    alpha = (1.0 - level) / 2.0
    out: dict[str, Estimate] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, fn in metrics.items():
            value = float(fn(point_totals, stats.n))
            boot = np.asarray(fn(boot_totals, stats.n), dtype=np.float64)
            low, high = np.quantile(boot, [alpha, 1.0 - alpha])
            out[name] = Estimate(value, float(low), float(high))
    return out


def add_r2_stats(stats: StatMatrix, key: str, ref: np.ndarray, cmp: np.ndarray) -> None:
    """Add the per-subject sums R² and MSE of (ref, cmp) need, under ``key.sse/.s1/.s2``."""
    ref = np.asarray(ref, dtype=np.float64)
    cmp = np.asarray(cmp, dtype=np.float64)
    if ref.shape != cmp.shape or ref.ndim != 2:
        raise ValueError(f"{key}: reference {ref.shape} and compared {cmp.shape} must be (N, k)")
    stats.add(f"{key}.sse", np.sum((ref - cmp) ** 2, axis=1))
    stats.add(f"{key}.s1", ref.sum(axis=1))
    stats.add(f"{key}.s2", np.sum(ref**2, axis=1))


def r2_metric(key: str, dims: int) -> MetricFn:
    """R² of the pair added under ``key``, over subjects and ``dims`` dims, one scalar mean."""

    def fn(t: Totals, n: int) -> np.ndarray:
        m = n * dims
        sst = t[f"{key}.s2"] - t[f"{key}.s1"] ** 2 / m
        return 1.0 - t[f"{key}.sse"] / sst

    return fn


def mse_metric(key: str, dims: int) -> MetricFn:
    """Mean squared error of the pair added under ``key`` over subjects and ``dims`` dims."""

    def fn(t: Totals, n: int) -> np.ndarray:
        return t[f"{key}.sse"] / (n * dims)

    return fn


def mean_metric(name: str) -> MetricFn:
    """Mean over subjects of the per-subject statistic ``name``."""

    def fn(t: Totals, n: int) -> np.ndarray:
        return t[name] / n

    return fn


def scaled(fn: MetricFn, factor: float) -> MetricFn:
    """``factor * fn`` (fraction of max = R² · (1 + σ²))."""
    return lambda t, n: factor * fn(t, n)


def mean_of(fns: list[MetricFn]) -> MetricFn:
    """The mean of several metrics on the same totals (one metric over training seeds)."""
    return lambda t, n: sum(fn(t, n) for fn in fns) / len(fns)


def difference(a: MetricFn, b: MetricFn) -> MetricFn:
    """``a - b`` evaluated on the same totals: a paired difference."""
    return lambda t, n: a(t, n) - b(t, n)
