"""FOCE population fit: objective definition, a short fit that improves, subsampling, errors."""

import numpy as np
import pytest

import synthoct_bench.nlme as nlme
from synthoct_bench.nlme import ebe, fit_foce
from synthoct_bench.nlme.foce import REFERENCE_INIT, foce_objective

TRUE = nlme.PopulationParams()
INIT = nlme.PopulationParams(**REFERENCE_INIT)


@pytest.fixture(scope="module")
def data():
    eta = np.random.default_rng(0).normal(size=(150, 3))
    return nlme.simulate(eta, 3)


def test_foce_objective_formula(data):
    y = data[:5]
    res = ebe(y, TRUE)
    f, s = nlme.predict(res.eta, TRUE, sensitivities=True)
    w = np.einsum("ntd,nte->nde", s, s) / TRUE.sigma**2
    nll = -nlme.loglik(y, res.eta, TRUE)
    expect = nll + 0.5 * (
        np.sum(res.eta**2, axis=1) + 0.0 + np.linalg.slogdet(np.eye(3) + w)[1]
    )  # log det Ω = 0 at Ω = I
    np.testing.assert_allclose(foce_objective(res, TRUE), expect, rtol=1e-8)


def test_true_params_beat_initial_values(data):
    ofv_true = 2 * foce_objective(ebe(data, TRUE), TRUE).sum()
    ofv_init = 2 * foce_objective(ebe(data, INIT), INIT).sum()
    assert ofv_true < ofv_init


def test_short_fit_lowers_ofv_and_reports(data):
    fit = fit_foce(data, em_iter=4, max_iter=1, compute_se=False)
    assert fit.n_subjects_used == 150
    assert fit.history[0]["phase"] == "em" and fit.history[-1]["phase"] == "final"
    assert fit.ofv < fit.history[0]["ofv"]
    assert np.all(np.isfinite(fit.params.theta)) and fit.params.sigma > 0
    # the Laplace-EM moves the typical values towards the truth from the reference's start
    assert abs(np.log(fit.params.theta[1] / TRUE.theta[1])) < abs(np.log(1.1 / 2.1))
    assert np.isnan(fit.se["sigma"])  # not computed
    assert fit.ebe.eta.shape == (150, 3)
    # stopped after one BFGS step: a Newton step promises a real OFV decrease,
    # so the fit must not claim convergence
    assert not fit.converged
    assert fit.info["predicted_ofv_decrease"] > 0.1


def test_bfgs_stops_after_two_stalled_iterations_and_judges_the_stop(data):
    # a stall tolerance no iteration can beat: BFGS stops after exactly two iterations
    fit = fit_foce(data, em_iter=4, max_iter=20, compute_se=False, ofv_stall_tol=1e9)
    assert [h["phase"] for h in fit.history].count("bfgs") == 2
    assert fit.info["message"].startswith("stalled")
    # an early stop is judged by the OFV a Newton step still promises
    assert "predicted_ofv_decrease" in fit.info
    assert fit.converged == (fit.info["predicted_ofv_decrease"] < 0.1)
    # a tolerance of zero never stalls: BFGS runs on its own criteria
    full = fit_foce(data, em_iter=4, max_iter=20, compute_se=False, ofv_stall_tol=0.0)
    assert not full.info["message"].startswith("stalled")
    assert full.ofv <= fit.ofv + 1e-6


def test_subsample_is_deterministic(data):
    a = fit_foce(data, max_subjects=40, seed=1, em_iter=1, max_iter=0, compute_se=False)
    b = fit_foce(data, max_subjects=40, seed=1, em_iter=1, max_iter=0, compute_se=False)
    c = fit_foce(data, max_subjects=40, seed=2, em_iter=1, max_iter=0, compute_se=False)
    assert a.n_subjects_used == 40
    np.testing.assert_array_equal(a.subjects, b.subjects)
    assert not np.array_equal(a.subjects, c.subjects)
    assert a.ofv == b.ofv


def test_bad_input_raises(data):
    bad = data[:4].copy()
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        fit_foce(bad)
    with pytest.raises(ValueError, match="max_subjects"):
        fit_foce(data[:4], max_subjects=0)
