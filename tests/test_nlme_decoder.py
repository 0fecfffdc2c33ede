"""The NLME decoder: accuracy against scipy Radau, sensitivities, simulation, likelihood."""

from dataclasses import replace

import numpy as np
import pytest

from synthoct_bench import rng
from synthoct_bench.nlme import (
    OBS_TIMES,
    PAPER_MODEL,
    NLMEModel,
    PopulationParams,
    loglik,
    predict,
    reference_predict,
    simulate,
)

#: every combination of η_k in {-5, 0, 5}: the stiff extremes (|J| up to ~1e4)
CORNERS = np.array(np.meshgrid(*[[-5.0, 0.0, 5.0]] * 3, indexing="ij")).reshape(3, -1).T


@pytest.fixture(scope="module")
def grid_and_reference():
    eta = np.vstack([CORNERS, np.random.default_rng(7).normal(size=(6, 3)) * 1.5])
    return eta, reference_predict(eta)


def test_prediction_matches_stiff_reference_everywhere(grid_and_reference):
    eta, ref = grid_and_reference
    pred = predict(eta)
    assert pred.shape == (eta.shape[0], OBS_TIMES.size)
    err = np.abs(pred - ref).max(axis=1)
    assert err.max() <= 1e-6, f"worst subject eta={eta[err.argmax()]} err={err.max():.2e}"
    assert np.median(err) <= 1e-7
    np.testing.assert_array_equal(pred[:, 0], 0.0)  # Central(0) = 0


def test_sensitivities_match_finite_differences_of_the_reference():
    eta = np.array([[0.3, -0.4, 0.2], [2.5, 3.0, -3.0]])
    pred, sens = predict(eta, sensitivities=True)
    assert sens.shape == (2, OBS_TIMES.size, 3)
    h = 1e-4
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        fd = (reference_predict(eta + step) - reference_predict(eta - step)) / (2 * h)
        np.testing.assert_allclose(sens[:, :, k], fd, atol=2e-6, rtol=0)


def test_sensitivities_at_the_corners_match_tight_finite_differences():
    _, sens = predict(CORNERS, sensitivities=True)
    h = 1e-5
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        hi = predict(CORNERS + step, rtol=1e-11, atol=1e-14)
        lo = predict(CORNERS - step, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(sens[:, :, k], (hi - lo) / (2 * h), atol=1e-5, rtol=0)


def test_sensitivity_pass_does_not_change_the_prediction():
    eta = np.random.default_rng(1).normal(size=(200, 3)) * 2
    pred_only = predict(eta)
    pred, _ = predict(eta, sensitivities=True)
    np.testing.assert_array_equal(pred, pred_only)


def test_theta_enters_mu_referenced():
    eta = np.random.default_rng(2).normal(size=(20, 3))
    theta = (1.3, 1.7, 0.5)
    shifted = eta + np.log(np.array(theta) / np.array(PAPER_MODEL.default_params.theta))
    a = predict(eta, PopulationParams(theta=theta))
    np.testing.assert_allclose(a, predict(shifted), atol=1e-12)
    assert PAPER_MODEL.mu_referenced


def test_custom_times_and_batch_independence():
    eta = np.random.default_rng(3).normal(size=(50, 3))
    times = np.array([0.25, 1.0, 1.0, 7.5])
    ref = reference_predict(eta[:3], times=np.unique(times))
    out = predict(eta, times=times)
    np.testing.assert_allclose(out[:3][:, [0, 1, 3]], ref, atol=1e-7)
    np.testing.assert_array_equal(out[:, 1], out[:, 2])
    np.testing.assert_array_equal(out[10:20], predict(eta[10:20], times=times))


def test_simulate_is_reproducible_per_subject_and_has_sigma_noise():
    eta = np.random.default_rng(4).normal(size=(3000, 3))
    ids = np.arange(1000, 4000)
    y = simulate(eta, seed=11, subject_ids=ids)
    part = simulate(eta[100:110], seed=11, subject_ids=ids[100:110])
    np.testing.assert_array_equal(part, y[100:110])
    resid = y - predict(eta)
    assert abs(resid.std() / 0.01 - 1) < 0.02
    expected = 0.01 * rng.standard_normal(11, rng.stream_id("residual"), ids[:5], OBS_TIMES.size)
    np.testing.assert_allclose(resid[:5], expected, atol=1e-15)
    other = simulate(eta, seed=11, subject_ids=ids, stream="residual/s9")
    assert np.corrcoef((other - y).ravel(), resid.ravel())[0, 1] < 0.8  # independent draws
    assert not np.allclose(other, y)


def test_loglik_matches_gaussian_formula_and_skips_missing():
    eta = np.random.default_rng(5).normal(size=(40, 3))
    params = PopulationParams(sigma=0.05)
    y = simulate(eta, seed=3, params=params)
    pred = predict(eta, params)
    manual = -0.5 * (21 * np.log(2 * np.pi * 0.05**2) + ((y - pred) ** 2).sum(1) / 0.05**2)
    np.testing.assert_allclose(loglik(y, eta, params), manual, rtol=1e-12)
    y_missing = y.copy()
    y_missing[:, 5:] = np.nan
    part = -0.5 * (5 * np.log(2 * np.pi * 0.05**2) + ((y - pred)[:, :5] ** 2).sum(1) / 0.05**2)
    np.testing.assert_allclose(loglik(y_missing, eta, params), part, rtol=1e-12)
    at_truth = loglik(pred, eta, params)
    np.testing.assert_allclose(at_truth, -10.5 * np.log(2 * np.pi * 0.05**2), rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: predict(np.array([[0.0, np.nan, 0.0]])), "NaN or infinite"),
        (lambda: predict(np.array([[0.0, np.inf, 0.0]])), "NaN or infinite"),
        (lambda: predict(np.zeros(3)), r"eta\[None, :\]"),
        (lambda: predict(np.zeros((4, 2))), r"shape \(N, 3\)"),
        (lambda: predict(np.zeros((1, 3)), PopulationParams(sigma=0.0)), "sigma"),
        (lambda: predict(np.zeros((1, 3)), PopulationParams(omega=(1, -1, 1))), "omega"),
        (lambda: predict(np.zeros((1, 3)), PopulationParams(theta=(1, 2))), "theta"),
        (lambda: predict(np.zeros((1, 3)), times=[0.0, 2.0, 1.0]), "sorted"),
        (lambda: predict(np.zeros((1, 3)), times=[-1.0, 2.0]), ">= 0"),
        (lambda: loglik(np.zeros((2, 20)), np.zeros((2, 3))), "shape"),
        (lambda: loglik(np.full((1, 21), np.inf), np.zeros((1, 3))), "infinite"),
        (lambda: simulate(np.zeros((2, 3)), 0, subject_ids=np.arange(3)), "subject_ids"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_population_params_round_trip():
    p = PopulationParams(theta=(1.1, 2.0, 0.3), omega=(0.5, 0.4, 0.3), sigma=0.02)
    assert PopulationParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown"):
        PopulationParams.from_dict({**p.to_dict(), "foo": 1})


def test_generic_scipy_path_agrees_with_fast_kernel():
    slow_model = replace(PAPER_MODEL, fast_kernel=None)
    eta = np.array([[0.2, -0.5, 0.4], [1.5, 1.0, -1.0]])
    fast, fast_s = predict(eta, sensitivities=True)
    slow, slow_s = predict(eta, model=slow_model, sensitivities=True)
    np.testing.assert_allclose(slow, fast, atol=1e-7)
    np.testing.assert_allclose(slow_s, fast_s, atol=1e-5)


def test_user_model_with_closed_form_solution():
    """A linear one-compartment oral model: Central has the Bateman closed form."""

    def rhs(t, y, p):
        ka, ke = p
        return np.array([-ka * y[0], ka * y[0] - ke * y[1]])

    model = NLMEModel(
        name="linear_oral",
        state_names=("Depot", "Central"),
        param_names=("Ka", "Ke"),
        rhs=rhs,
        observed_state=1,
        dose=2.0,
        default_params=PopulationParams(theta=(1.5, 0.3), omega=(0.1, 0.1), sigma=0.05),
    )
    eta = np.array([[0.0, 0.0], [0.3, -0.2]])
    pred = predict(eta, model=model)
    ka, ke = 1.5 * np.exp(eta[:, :1]), 0.3 * np.exp(eta[:, 1:])
    t = OBS_TIMES[None, :]
    exact = 2.0 * ka / (ka - ke) * (np.exp(-ke * t) - np.exp(-ka * t))
    np.testing.assert_allclose(pred, exact, atol=1e-8)
    y = simulate(eta, seed=0, model=model)
    assert y.shape == (2, 21)
    assert loglik(y, eta, model=model).shape == (2,)
    with pytest.raises(ValueError, match="fast_kernel"):
        replace(model, fast_kernel="mm_oral")
