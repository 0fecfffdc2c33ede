"""Importance-sampling population fit: the likelihood estimate, its gradient, a short fit."""

import numpy as np
import pytest

import synthoct_bench.nlme as nlme
from synthoct_bench.nlme import ebe
from synthoct_bench.nlme.foce import foce_objective
from synthoct_bench.nlme.importance import _draw, _objective, fit_importance
from synthoct_bench.nlme.population import pack

TRUE = nlme.PopulationParams()


@pytest.fixture(scope="module")
def data():
    eta = np.random.default_rng(4).normal(size=(60, 3))
    return nlme.simulate(eta, 5)


def _samples(y, params, n_samples=400, inflate=2.0, seed=0, ridge=None):
    res = ebe(y, params)
    mask = ~np.isnan(y)
    return _draw(
        np.where(mask, y, 0.0), mask, res, params, n_samples, 4, inflate, seed,
        np.arange(len(y)), None, None, None, ridge=ridge,
    )  # fmt: skip


def test_estimate_does_not_depend_on_the_proposal(data):
    """Two proposals (different spread, different draws) estimate the same likelihood."""
    psi = pack(TRUE)
    a = _objective(psi, _samples(data, TRUE, 1000, inflate=2.0, seed=0), 3, 3)[0]
    b = _objective(psi, _samples(data, TRUE, 1000, inflate=3.0, seed=1), 3, 3)[0]
    # −2LL of 60 subjects: Monte Carlo error ~1 here; a wrong proposal density
    # (e.g. a missing log-det term, ~log 1.5³ per subject) would be off by ~70
    assert abs(a - b) < 3.0
    # the ridge mixture (draws shared with components along Imax-IC50) is another
    # proposal of the same likelihood: a wrong mixture density would be off by
    # ~log 5 per subject
    c = _objective(psi, _samples(data, TRUE, 1000, seed=2, ridge=(0.0, 1.0, 1.0)), 3, 3)[0]
    assert abs(a - c) < 3.0
    # and it sits near Laplace's approximation (FOCE), which errs by ~0.1 per subject
    laplace = 2 * foce_objective(ebe(data, TRUE), TRUE).sum()
    assert abs(a - laplace) < 0.5 * len(data)


def test_gradient_matches_finite_differences(data):
    s = _samples(data[:20], TRUE, n_samples=50)
    psi = pack(TRUE) + np.array([0.05, -0.1, 0.1, 0.2, -0.1, 0.05, 0.02])
    _, grad, ess = _objective(psi, s, 3, 3)
    assert ess.shape == (20,) and np.all((ess >= 1) & (ess <= 50))
    for k in range(psi.size):
        e = np.zeros_like(psi)
        e[k] = 1e-6
        fd = (_objective(psi + e, s, 3, 3)[0] - _objective(psi - e, s, 3, 3)[0]) / 2e-6
        assert fd == pytest.approx(grad[k], rel=1e-4, abs=1e-3)


def _objective_numpy(psi, s, d, bias_correction):
    """The IS −2LL and gradient written as array expressions (the definition)."""
    from scipy.special import logsumexp

    log_theta, omega, log_sigma = psi[:d], np.exp(psi[d : 2 * d]), psi[2 * d]
    sigma2 = np.exp(2 * log_sigma)
    dev = s.phi - log_theta
    quad = dev**2 / omega
    w = (
        -0.5 * s.sse / sigma2
        - (s.n_obs * (log_sigma + 0.5 * np.log(2 * np.pi)))[:, None]
        - 0.5 * quad.sum(axis=2)
        - 0.5 * np.sum(np.log(2 * np.pi * omega))
        - s.log_q
    )
    n, m = w.shape
    lse = logsumexp(w, axis=1)
    wt = np.exp(w - lse[:, None])
    s2 = (wt**2).sum(axis=1)
    ll = np.sum(lse - np.log(m))
    mix = wt
    if bias_correction:
        ll += 0.5 * np.sum(s2 - 1 / m)
        mix = wt + wt**2 - s2[:, None] * wt
    grad = np.concatenate(
        [
            np.einsum("nm,nmd->d", mix, dev) / omega,
            0.5 * (np.einsum("nm,nmd->d", mix, quad) - n),
            [np.sum(mix * s.sse) / sigma2 - np.sum(s.n_obs)],
        ]
    )
    return -2 * ll, -2 * grad, 1 / s2


@pytest.mark.parametrize("correct", [True, False])
def test_compiled_objective_matches_array_definition(data, correct):
    s = _samples(data[:25], TRUE, n_samples=30, seed=3)
    psi = pack(TRUE) + np.array([0.1, -0.2, 0.05, -0.3, 0.2, 0.1, 0.05])
    got = _objective(psi, s, 3, 3, bias_correction=correct)
    want = _objective_numpy(psi, s, 3, correct)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-12)


def test_short_fit_improves_and_is_reproducible(data):
    init = nlme.PopulationParams(theta=(0.9, 1.6, 0.3), omega=(0.8, 0.8, 0.8), sigma=0.012)
    a = fit_importance(data, init, n_samples=40, n_outer=2, compute_se=True)
    b = fit_importance(data, init, n_samples=40, n_outer=2, compute_se=False)
    assert a.params == b.params and a.ofv == b.ofv
    assert a.history[0]["phase"] == "importance" and len(a.history) <= 2
    assert a.params.sigma == pytest.approx(0.01, rel=0.15)
    psi0 = pack(init)
    s = _samples(data, a.params, n_samples=200, seed=9)
    assert _objective(pack(a.params), s, 3, 3)[0] < _objective(psi0, s, 3, 3)[0]
    assert np.all(np.isfinite(a.se["theta"])) and a.se["sigma"] > 0
    assert a.ebe.eta.shape == (60, 3) and a.method == "importance"
    assert "importance sampling" in a.description


def test_needs_a_mu_referenced_model(data):
    model = nlme.NLMEModel(
        name="custom", state_names=("Depot", "Central"), param_names=("Ka", "Imax", "IC50"),
        rhs=nlme.paper_rhs, observed_state=1, n_eta=3,
        individual_params=lambda th, eta: th[None, :] * np.exp(eta),
    )  # fmt: skip
    with pytest.raises(ValueError, match="mu-referenced"):
        fit_importance(data, model=model)
    with pytest.raises(ValueError, match="n_samples"):
        fit_importance(data, TRUE, n_samples=2)


def test_ridge_direction_is_checked():
    assert nlme.PAPER_MODEL.ridge == (0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="ridge"):
        nlme.NLMEModel(
            name="bad", state_names=("Depot", "Central"), param_names=("Ka", "Imax", "IC50"),
            rhs=nlme.PAPER_MODEL.rhs, observed_state=1, ridge=(0.0, 1.0),
        )  # fmt: skip
