"""NLLs: Table 2 and the extra NLLs against independent scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from synthoct_bench import rng
from synthoct_bench.latent import add_noise
from synthoct_bench.nlme.model import PopulationParams
from synthoct_bench.nlme.reference import OBS_TIMES, PAPER_THETA, reference_predict
from synthoct_bench.scoring import nll as L
from synthoct_bench.scoring import score_arrays

SIGMA = 0.01


def test_gaussian_nll_matches_scipy():
    g = np.random.default_rng(0)
    f = g.standard_normal((4, 21))
    y = f + 0.03 * g.standard_normal((4, 21))
    want = -stats.norm.logpdf(y, loc=f, scale=0.03).sum(axis=1)
    np.testing.assert_allclose(L.gaussian_nll(y, f, 0.03), want, rtol=1e-12)


def test_marginal_nll_matches_dense_multivariate_normal():
    g = np.random.default_rng(1)
    n, t, k = 5, 21, 3
    f = g.standard_normal((n, t))
    jac = g.standard_normal((n, t, k)) * 0.2
    a = g.standard_normal((n, k, k))
    cov = a @ a.transpose(0, 2, 1) + 0.05 * np.eye(k)
    y = f + 0.1 * g.standard_normal((n, t))
    got = L.marginal_nll(y, f, jac, cov, 0.05)
    for i in range(n):
        c = jac[i] @ cov[i] @ jac[i].T + 0.05**2 * np.eye(t)
        want = -stats.multivariate_normal(mean=f[i], cov=c).logpdf(y[i])
        assert got[i] == pytest.approx(want, rel=1e-9)


def test_eta_gaussian_nll_matches_scipy():
    g = np.random.default_rng(2)
    mu = g.standard_normal((4, 3))
    a = g.standard_normal((4, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(3)
    x = g.standard_normal((4, 3))
    got = L.eta_gaussian_nll(x, mu, cov)
    want = [-stats.multivariate_normal(mu[i], cov[i]).logpdf(x[i]) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def _data(n: int, sigma2: float):
    g = np.random.default_rng(3)
    ids = np.arange(1000, 1000 + n)
    eta = g.standard_normal((n, 3))
    eta_noisy = add_noise(eta, sigma2, ids, seed=4)
    ebe = 0.9 * eta_noisy
    pred = 0.5 * eta
    return ids, eta, eta_noisy, ebe, pred


def test_table2_matches_independent_scipy_computation():
    """Rebuild the Table 2 columns for a few subjects with scipy's solver and norm.logpdf."""
    n, sigma2, seed = 3, 9.0, 5
    ids, eta, eta_noisy, ebe, pred = _data(n, sigma2)
    nl = L.nlme_predictions(eta, eta_noisy, ebe, pred, ids, PopulationParams.coerce(None), seed)
    got = L.table2_nll(nl, ids, seed)
    eps = rng.standard_normal(seed, L.RESIDUAL_STREAM, ids, 21)
    random_eta = rng.standard_normal(seed, L.RANDOM_ETA_STREAM, ids, 3)
    f_true = reference_predict(eta, PAPER_THETA, OBS_TIMES, rtol=1e-8, atol=1e-10)
    sources = {
        "true": eta_noisy,
        "predicted": pred,
        "approximate": ebe,
        "average": np.zeros_like(eta),
        "random": random_eta,
    }
    for col, src in sources.items():
        y = reference_predict(src, PAPER_THETA, OBS_TIMES, rtol=1e-8, atol=1e-10) + SIGMA * eps
        want = -stats.norm.logpdf(y, loc=f_true, scale=SIGMA).sum(axis=1)
        # The fast solver agrees with scipy's Radau to ~1e-7; NLL scales errors by 1/sigma^2.
        np.testing.assert_allclose(got[col], want, rtol=1e-4, atol=0.05)


def test_true_column_at_zero_noise_is_minus_67():
    n = 3000
    ids, eta, _, _, _ = _data(n, 0.0)
    rep = score_arrays(eta, eta, eta, eta, 0.0, subject_ids=ids, n_bootstrap=200)
    expected = 21 * np.log(SIGMA * np.sqrt(2 * np.pi)) + 21 / 2  # -66.9
    t = rep.estimates["table2/true"]
    assert t.value == pytest.approx(expected, abs=0.3)
    # SD of one subject's NLL is sqrt(21/2): the interval has the width that implies.
    se = np.sqrt(21 / 2 / n)
    assert 0.5 < (t.high - t.low) / (2 * 1.96 * se) < 1.5
    # The prediction equals eta: Predicted and True columns coincide (common residuals).
    assert rep.estimates["table2/predicted"].value == pytest.approx(t.value)
    avg = rep.estimates["table2/average"].value
    assert avg > 100 and rep.estimates["table2/random"].value > avg


def test_heldout_and_marginal_nll_and_row_order():
    n, sigma2 = 300, 1.0
    ids, eta, eta_noisy, ebe, pred = _data(n, sigma2)
    params = PopulationParams.coerce(None)
    f_hat = L._predict(eta_noisy, params)
    obs = f_hat + SIGMA * np.random.default_rng(6).standard_normal(f_hat.shape)
    sd = np.full((n, 3), 0.7)
    kw = dict(obs=obs, subject_ids=ids, eta_sd=sd, n_bootstrap=100, seed=2)
    rep = score_arrays(eta, eta_noisy, ebe, pred, sigma2, **kw)
    e = rep.estimates
    want = -stats.norm.logpdf(obs, loc=L._predict(pred, params), scale=SIGMA).sum(axis=1).mean()
    assert e["heldout_nll/predicted"].value == pytest.approx(want, rel=1e-10)
    from synthoct_bench.nlme import loglik

    assert -loglik(obs, pred, params).mean() == pytest.approx(want, rel=1e-10)
    assert e["heldout_nll/true"].value == pytest.approx(-66.9, abs=2.0)
    assert np.isfinite(e["marginal_nll"].value) and np.isfinite(e["eta_noisy_nll"].value)
    # A wider predictive distribution covers the residual misfit better than a point mass.
    assert e["marginal_nll"].value < e["heldout_nll/predicted"].value
    assert rep.probabilistic and "linearisation" in rep.marginal_method

    perm = np.random.default_rng(7).permutation(n)
    kw_p = dict(obs=obs[perm], subject_ids=ids[perm], eta_sd=sd[perm], n_bootstrap=100, seed=2)
    rep_p = score_arrays(eta[perm], eta_noisy[perm], ebe[perm], pred[perm], sigma2, **kw_p)
    for name in ("table2/predicted", "table2/random", "heldout_nll/predicted", "marginal_nll"):
        assert rep_p.estimates[name].value == pytest.approx(e[name].value, rel=1e-12)


def test_jacobian_matches_finite_differences():
    params = PopulationParams.coerce(None)
    eta = np.random.default_rng(8).standard_normal((4, 3))
    jac = L.predict_jacobian(eta, params)
    h = 1e-6
    for d in range(3):
        step = np.zeros(3)
        step[d] = h
        fd = (L._predict(eta + step, params) - L._predict(eta - step, params)) / (2 * h)
        np.testing.assert_allclose(jac[..., d], fd, atol=1e-5)


def test_paired_comparison_of_probabilistic_submissions():
    n, sigma2 = 200, 9.0
    ids, eta, eta_noisy, ebe, pred = _data(n, sigma2)
    params = PopulationParams.coerce(None)
    obs = L._predict(eta_noisy, params) + SIGMA * np.random.default_rng(9).standard_normal((n, 21))
    from synthoct_bench.scoring import read_submission

    other = read_submission({"subject_id": ids, "eta_pred": 0 * pred, "eta_sd": np.ones((n, 3))})
    rep = score_arrays(
        eta, eta_noisy, ebe, pred, sigma2, obs=obs, subject_ids=ids,
        eta_sd=np.full((n, 3), 0.9), compare=other, n_bootstrap=100,
    )  # fmt: skip
    for name in ("table2/predicted", "heldout_nll/predicted", "marginal_nll", "eta_noisy_nll"):
        d = rep.difference[name]
        assert d.value == pytest.approx(rep.estimates[name].value - rep.other[name].value)
        assert d.low <= d.value <= d.high
    # Shared columns are identical for both submissions and carry no difference.
    assert rep.other["table2/true"] == rep.estimates["table2/true"]
    assert "table2/true" not in rep.difference


def test_submission_independent_solves_are_reused_and_read_only():
    n, sigma2 = 100, 18.0
    ids, eta, eta_noisy, ebe, pred = _data(n, sigma2)
    L._CACHE.clear()
    a = score_arrays(eta, eta_noisy, ebe, pred, sigma2, subject_ids=ids, n_bootstrap=20)
    assert len(L._CACHE) == 4  # eta, eta_noisy, eta_ebe, random
    cached = next(iter(L._CACHE.values()))
    with pytest.raises(ValueError):
        cached[0, 0] = 1.0
    b = score_arrays(eta, eta_noisy, ebe, 0 * pred, sigma2, subject_ids=ids, n_bootstrap=20)
    assert len(L._CACHE) == 4
    assert b["table2/true"] == a["table2/true"] and b["table2/random"] == a["table2/random"]
    L._CACHE.clear()
    c = score_arrays(eta, eta_noisy, ebe, 0 * pred, sigma2, subject_ids=ids, n_bootstrap=20)
    assert c["table2/predicted"] == b["table2/predicted"]
