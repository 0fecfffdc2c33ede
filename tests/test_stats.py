import numpy as np
import pytest

from synthoct_bench.stats import bootstrap, bootstrap_counts


def test_counts_sum_to_n_and_are_seeded():
    a = np.concatenate(list(bootstrap_counts(50, 130, seed=3)))
    b = np.concatenate(list(bootstrap_counts(50, 130, seed=3)))
    assert a.shape == (130, 50)
    np.testing.assert_array_equal(a.sum(axis=1), 50)
    np.testing.assert_array_equal(a, b)


def test_mean_interval_matches_normal_theory():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=20_000)
    est = bootstrap(x, lambda t, n: t[..., 0] / n, n_resamples=1000, seed=1)
    se = 2.0 / np.sqrt(x.size)
    assert est.low < x.mean() < est.high
    assert abs((est.high - est.low) / (2 * 1.96 * se) - 1) < 0.1


def test_ratio_metric_and_multiple_outputs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=5000)
    b = a + rng.normal(scale=0.5, size=5000)
    stats = np.stack([(a - b) ** 2, a, a**2], axis=1)

    def metrics(t, n):
        sse, s1, s2 = t[..., 0], t[..., 1], t[..., 2]
        sst = s2 - s1**2 / n
        return np.stack([sse / n, 1 - sse / sst], axis=-1)

    mse, r2 = bootstrap(stats, metrics, n_resamples=200, seed=0)
    assert mse.value == pytest.approx(np.mean((a - b) ** 2))
    assert r2.value == pytest.approx(1 - np.sum((a - b) ** 2) / np.sum((a - a.mean()) ** 2))
    assert r2.low < r2.value < r2.high
