"""Diagnostics: shrinkage definitions, IWRES with missing data, the GOF plot."""

import numpy as np
import pytest

import synthoct_bench.nlme as nlme
from synthoct_bench.nlme import diagnostics, ebe, gof_plot


@pytest.fixture(scope="module")
def fitted():
    eta = np.random.default_rng(1).normal(size=(40, 3))
    y = nlme.simulate(eta, 5)
    y[3, [2, 9]] = np.nan
    return y, ebe(y)


def test_shrinkage_and_residuals(fitted):
    y, res = fitted
    d = diagnostics(y, res)
    sd = res.eta.std(axis=0, ddof=1)
    np.testing.assert_allclose(d["eta_shrinkage_sd"], 1 - sd)
    np.testing.assert_allclose(d["eta_shrinkage_var"], 1 - sd**2)
    assert np.isnan(d["iwres"][3, 2]) and np.isnan(d["iwres"][3, 9])
    obs = ~np.isnan(y)
    np.testing.assert_allclose(d["iwres"][obs], ((y - res.ipred) / 0.01)[obs])
    assert d["epsilon_shrinkage"] == pytest.approx(1 - np.std(d["iwres"][obs], ddof=1))
    assert 0 <= d["ebe_convergence_rate"] <= 1
    assert d["pred"].shape == y.shape


def test_gof_plot_writes_png(fitted, tmp_path):
    y, res = fitted
    path = gof_plot(y, res, None, tmp_path / "sub" / "gof.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_mismatched_subjects_raise(fitted):
    y, res = fitted
    with pytest.raises(ValueError, match="subjects"):
        diagnostics(y[:10], res)
