"""MIG, DCI and SAP against oracles and independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthoct_bench.generators.metrics.disentanglement import (
    dci,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    mig,
    sap,
)


def factors_and_rotation(n: int = 4000, k: int = 4, seed: int = 0):
    rs = np.random.default_rng(seed)
    factors = rs.uniform(-1, 1, (n, k))
    q, _ = np.linalg.qr(rs.standard_normal((k, k)))
    return factors, q


def test_mig_oracles():
    factors, rot = factors_and_rotation()
    identity = mig(factors, factors)
    assert identity.score >= 0.9
    assert identity.mutual_info.shape == (4, 4) and identity.per_factor.shape == (4,)
    # a constant code carries nothing
    assert mig(np.zeros((len(factors), 4)), factors).score == 0.0
    # every factor in two code dims: the top two MIs tie, the gap is 0
    duplicated = np.repeat(factors, 2, axis=1)
    assert mig(duplicated, factors).score < 0.05
    # a rotated code is informative but entangled: in between
    rotated = mig(factors @ rot, factors).score
    assert 0.0 < rotated < identity.score
    # the gap's two terms: the identity's best code holds most of each factor, the
    # duplicated code's second best as much as its best
    first, second = identity.best_two()
    np.testing.assert_allclose(first - second, identity.per_factor)
    assert (first > 0.9).all() and (second < 0.1).all()
    first, second = mig(duplicated, factors).best_two()
    np.testing.assert_allclose(first, second)
    # equal-width bins per column: an affine map of each code changes nothing
    assert mig(-3 * factors + 1, factors).score == pytest.approx(identity.score)
    json.dumps(identity.to_dict())


def test_mig_pieces_match_a_direct_computation():
    rs = np.random.default_rng(1)
    x = rs.normal(size=(500, 1))
    y = x + 0.5 * rs.normal(size=(500, 1))
    bx, by = discretize(x, 20), discretize(y, 20)
    assert bx.min() == 0 and bx.max() == 19  # 20 equal-width bins over the range
    edges = np.linspace(x.min(), x.max(), 21)
    expected = np.clip(np.searchsorted(edges, x[:, 0], side="right") - 1, 0, 19)
    np.testing.assert_array_equal(bx[:, 0], expected)
    # MI from the joint table, written out with loops over cells
    joint = np.zeros((20, 20))
    for a, b in zip(bx[:, 0], by[:, 0], strict=True):
        joint[a, b] += 1 / 500
    mi = sum(
        joint[a, b] * np.log(joint[a, b] / (joint[a].sum() * joint[:, b].sum()))
        for a in range(20)
        for b in range(20)
        if joint[a, b] > 0
    )
    assert discrete_mutual_info(bx, by)[0, 0] == pytest.approx(mi, rel=1e-12)
    assert discrete_entropy(bx)[0] == pytest.approx(discrete_mutual_info(bx, bx)[0, 0])
    # one code: the gap is the MI itself, normalised by the factor's entropy
    res = mig(x, y)
    assert res.score == pytest.approx(mi / discrete_entropy(by)[0])
    # a constant factor has no entropy: left out of the mean, refused when alone
    two = np.hstack([y, np.ones_like(y)])
    res2 = mig(x, two)
    assert np.isnan(res2.per_factor[1]) and res2.score == pytest.approx(res.score)
    first, second = res2.best_two()
    assert np.isnan(first[1]) and second[0] == 0.0  # one code: no second best
    with pytest.raises(ValueError, match="constant"):
        mig(x, np.ones_like(y))


def test_dci_oracles():
    factors, rot = factors_and_rotation(2000)
    for regressor in ("lasso", "ridge"):
        ident = dci(factors, factors, regressor=regressor)
        assert ident.disentanglement > 0.95 and ident.completeness > 0.95
        assert ident.informativeness > 0.95
        assert ident.importance.shape == (4, 4)
    # the importance is diagonal: code j carries factor j only
    ident = dci(factors, factors)
    assert np.all(np.argmax(ident.importance, axis=0) == np.arange(4))
    const = dci(np.zeros((2000, 3)), factors)
    assert const.disentanglement == const.completeness == 0.0
    assert abs(const.informativeness) < 0.01
    # each factor in two codes: disentangled codes but incomplete factors
    dup = dci(np.repeat(factors, 2, axis=1), factors, regressor="ridge")
    assert dup.disentanglement > 0.95 and dup.completeness < 0.9
    # a rotation keeps the information, loses the disentanglement
    rotated = dci(factors @ rot, factors)
    assert rotated.informativeness > 0.95
    assert rotated.disentanglement < ident.disentanglement - 0.2
    # irrelevant noise codes add nothing to the information
    noisy = dci(np.random.default_rng(3).normal(size=(2000, 4)), factors)
    assert noisy.informativeness < 0.05
    json.dumps(ident.to_dict())


def test_dci_lasso_matches_closed_form_without_penalty():
    rs = np.random.default_rng(2)
    codes = rs.normal(size=(600, 3))
    factors = codes @ np.array([[1.0, 0.2], [0.0, -0.7], [0.3, 0.0]]) + 0.1 * rs.normal(
        size=(600, 2)
    )
    lasso = dci(codes, factors, regressor="lasso", alpha=0.0, tol=1e-12)
    ridge = dci(codes, factors, regressor="ridge", alpha=0.0)
    np.testing.assert_allclose(lasso.importance, ridge.importance, atol=1e-8)
    # and least squares by numpy on the same standardised training rows
    order = np.random.default_rng(0).permutation(600)
    train = order[120:]
    x = (codes[train] - codes[train].mean(0)) / codes[train].std(0)
    y = (factors[train] - factors[train].mean(0)) / factors[train].std(0)
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(ridge.importance, np.abs(coef), atol=1e-10)


def test_sap_oracles_and_direct_computation():
    factors, rot = factors_and_rotation(3000)
    assert sap(factors, factors).score == pytest.approx(1.0, abs=0.01)
    assert sap(np.zeros((3000, 4)), factors).score == 0.0
    assert sap(np.repeat(factors, 2, axis=1), factors).score == pytest.approx(0.0, abs=1e-12)
    # S is the squared correlation of each (code, factor) pair
    codes = factors @ rot
    res = sap(codes, factors)
    corr = np.corrcoef(codes.T, factors.T)[:4, 4:]
    np.testing.assert_allclose(res.score_matrix, corr**2, atol=1e-12)
    top = np.sort(corr**2, axis=0)
    assert res.score == pytest.approx(np.mean(top[-1] - top[-2]))
    json.dumps(res.to_dict())


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        mig(np.zeros(10), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="one row per sample"):
        sap(np.zeros((10, 2)), np.zeros((9, 1)))
    with pytest.raises(ValueError, match="finite"):
        dci(np.full((10, 2), np.nan), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="regressor"):
        dci(np.zeros((10, 2)), np.zeros((10, 1)), regressor="forest")
