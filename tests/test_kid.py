"""KID: near zero for two samples of one distribution, large for different ones."""

from __future__ import annotations

import numpy as np
import pytest

from synthoct_bench.generators.metrics.kid import kid


def test_kid_tells_one_distribution_from_two():
    rs = np.random.default_rng(0)
    a, b = rs.standard_normal((400, 8)), rs.standard_normal((400, 8))
    same = kid(a, b, subset_size=100, n_subsets=20)
    shifted = kid(a, b + 1.0, subset_size=100, n_subsets=20)
    assert abs(same.mean) < 3 * same.std + 0.01
    assert shifted.mean > 10 * max(abs(same.mean), same.std)
    assert kid(a, b, subset_size=100, n_subsets=20) == same  # seeded
    assert same.subset_size == 100 and same.to_dict()["n_subsets"] == 20


def test_kid_checks_its_input():
    with pytest.raises(ValueError, match="one d"):
        kid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=">= 2"):
        kid(np.zeros((1, 3)), np.zeros((5, 3)))
