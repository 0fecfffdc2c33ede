import numpy as np
import pytest

from synthoct_bench import latent, rng


def test_draws_depend_only_on_subject_index():
    ids = np.arange(1000)
    full = rng.standard_normal(7, rng.stream_id("z"), ids, 5)
    part = rng.standard_normal(7, rng.stream_id("z"), ids[[999, 3, 500]], 5)
    np.testing.assert_array_equal(full[[999, 3, 500]], part)


def test_streams_and_seeds_differ():
    ids = np.arange(100)
    a = rng.uniform(1, rng.stream_id("a"), ids, 4)
    b = rng.uniform(1, rng.stream_id("b"), ids, 4)
    c = rng.uniform(2, rng.stream_id("a"), ids, 4)
    assert not np.allclose(a, b) and not np.allclose(a, c)


def test_normal_moments_and_independence():
    x = rng.standard_normal(0, rng.stream_id("z"), np.arange(200_000), 4)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    corr = np.corrcoef(x.T)
    assert np.abs(corr - np.eye(4)).max() < 0.01
    u = rng.uniform(0, 3, np.arange(10_000), 2)
    assert u.min() > 0 and u.max() < 1


def test_noise_keeps_unit_variance_and_sets_max_r2():
    ids = np.arange(100_000)
    eta = latent.select_eta(latent.sample_z(ids, seed=0))
    for s2 in latent.NOISE_LEVELS:
        noisy = latent.add_noise(eta, s2, ids, seed=0)
        assert abs(noisy.var() - 1) < 0.02
        oracle = eta / np.sqrt(1 + s2)
        r2 = 1 - ((noisy - oracle) ** 2).sum() / ((noisy - noisy.mean()) ** 2).sum()
        assert abs(r2 - latent.theoretical_max_r2(s2)) < 0.01


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="sigma2"):
        latent.add_noise(np.zeros((2, 3)), -1, np.arange(2), 0)
    with pytest.raises(ValueError, match="0-based"):
        latent.select_eta(np.zeros((2, 128)), (1, 2, 128))
    with pytest.raises(ValueError, match="integers"):
        rng.uniform(0, 0, np.array([0.5]), 1)
