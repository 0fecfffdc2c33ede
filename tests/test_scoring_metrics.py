"""Table 1 metrics with known answers, determinism, row-order independence, paired comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthoct_bench.latent import add_noise
from synthoct_bench.scoring import score_arrays
from synthoct_bench.scoring.metrics import StatMatrix, add_r2_stats, evaluate, r2_metric

N = 4000


def _data(sigma2: float, n: int = N, seed: int = 0):
    rng = np.random.default_rng(seed)
    eta = rng.standard_normal((n, 3))
    ids = np.arange(n)
    eta_noisy = add_noise(eta, sigma2, ids, seed=seed + 1)
    # An EBE-like estimate: shrunk towards 0, with its own error.
    ebe = 0.8 * eta_noisy + 0.35 * rng.standard_normal((n, 3))
    return eta, eta_noisy, ebe, ids


@pytest.mark.parametrize("sigma2", [0, 1, 9, 49])
def test_oracle_reaches_theoretical_max(sigma2):
    eta, eta_noisy, ebe, _ = _data(sigma2, n=20_000)
    oracle = eta / np.sqrt(1 + sigma2)
    rep = score_arrays(eta, eta_noisy, ebe, oracle, sigma2, nll=False, n_bootstrap=300)
    tmax = 1 / (1 + sigma2)
    assert rep.theoretical_max == pytest.approx(tmax)
    assert rep.r2.low <= tmax <= rep.r2.high
    assert rep.fraction_of_max.low <= 1.0 <= rep.fraction_of_max.high
    assert rep.fraction_of_max.value == pytest.approx(rep.r2.value * (1 + sigma2))


def test_zero_predictions_give_r2_near_zero_and_mse_near_one():
    eta, eta_noisy, ebe, _ = _data(9)
    rep = score_arrays(eta, eta_noisy, ebe, np.zeros_like(eta), 9, nll=False, n_bootstrap=200)
    assert abs(rep.r2.value) < 0.01
    assert rep.r2.low <= 0.0 <= rep.r2.high + 1e-3
    assert rep["mse"].value == pytest.approx(np.mean(eta_noisy**2))


def test_r2_and_mse_match_direct_formulas():
    eta, eta_noisy, ebe, _ = _data(1)
    pred = 0.5 * eta + 0.1
    rep = score_arrays(eta, eta_noisy, ebe, pred, 1, nll=False, n_bootstrap=50)

    def r2(ref, cmp):
        return 1 - np.sum((ref - cmp) ** 2) / np.sum((ref - ref.mean()) ** 2)

    e = rep.estimates
    assert e["table1/eta_noisy/eta_pred/r2"].value == pytest.approx(r2(eta_noisy, pred))
    assert e["table1/eta_noisy/eta_ebe/r2"].value == pytest.approx(r2(eta_noisy, ebe))
    assert e["table1/eta_ebe/eta_pred/r2"].value == pytest.approx(r2(ebe, pred))
    assert e["table1/eta_ebe/eta_pred/mse"].value == pytest.approx(np.mean((ebe - pred) ** 2))
    for d in range(3):
        assert e[f"r2_dim{d + 1}"].value == pytest.approx(r2(eta_noisy[:, d], pred[:, d]))


def test_bootstrap_interval_matches_naive_resampling():
    eta, eta_noisy, ebe, _ = _data(9, n=2000)
    pred = eta / np.sqrt(10) + 0.2 * np.random.default_rng(5).standard_normal(eta.shape)
    stats = StatMatrix(eta.shape[0])
    add_r2_stats(stats, "p", eta_noisy, pred)
    fast = evaluate(stats, {"r2": r2_metric("p", 3)}, n_resamples=400, seed=3)["r2"]
    gen = np.random.default_rng(11)
    naive = []
    for _ in range(400):
        idx = gen.integers(0, eta.shape[0], eta.shape[0])
        ref, cmp = eta_noisy[idx], pred[idx]
        naive.append(1 - np.sum((ref - cmp) ** 2) / np.sum((ref - ref.mean()) ** 2))
    lo, hi = np.quantile(naive, [0.025, 0.975])
    width = hi - lo
    assert abs(fast.low - lo) < 0.15 * width and abs(fast.high - hi) < 0.15 * width


def test_deterministic_and_row_order_independent():
    eta, eta_noisy, ebe, ids = _data(18)
    pred = 0.3 * eta_noisy
    a = score_arrays(eta, eta_noisy, ebe, pred, 18, nll=False, n_bootstrap=100, seed=7)
    b = score_arrays(eta, eta_noisy, ebe, pred, 18, nll=False, n_bootstrap=100, seed=7)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    c = score_arrays(eta, eta_noisy, ebe, pred, 18, nll=False, n_bootstrap=100, seed=8)
    assert c.r2.value == a.r2.value and c.r2.low != a.r2.low
    assert a.to_dict()["bootstrap"] == {
        "n_resamples": 100,
        "seed": 7,
        "level": 0.95,
        "method": "percentile; resamples subjects; all metrics on the same resamples",
    }


def test_paired_comparison_difference_and_interval():
    eta, eta_noisy, ebe, _ = _data(1)
    good = eta / np.sqrt(2)
    worse = good + 0.3 * np.random.default_rng(9).standard_normal(eta.shape)
    rep = score_arrays(eta, eta_noisy, ebe, good, 1, nll=False, compare=worse, n_bootstrap=300)
    diff = rep.difference["r2"]
    assert diff.value == pytest.approx(rep.r2.value - rep.other["r2"].value)
    assert diff.low > 0  # significantly better, paired
    # The paired interval is narrower than the two unpaired intervals combined.
    assert diff.high - diff.low < (rep.r2.high - rep.r2.low) + (
        rep.other["r2"].high - rep.other["r2"].low
    )
    same = score_arrays(eta, eta_noisy, ebe, good, 1, nll=False, compare=good, n_bootstrap=50)
    assert same.difference["r2"].low == same.difference["r2"].high == 0.0
    out = rep.to_dict()
    assert set(out["comparison"]) == {"other", "other_metrics", "difference", "note"}
    assert "table1/eta_noisy/eta_ebe/r2" not in out["comparison"]["difference"]


def test_json_layout_and_text():
    eta, eta_noisy, ebe, _ = _data(9)
    rep = score_arrays(eta, eta_noisy, ebe, 0.2 * eta, 9, nll=False, n_bootstrap=50, model="m")
    out = json.loads(json.dumps(rep.to_dict()))
    for key in ("r2", "mse", "theoretical_max", "fraction_of_max"):
        assert set(out[key]) == {"value", "low", "high"}
    assert out["theoretical_max"]["value"] == pytest.approx(0.1)
    assert [(r["term1"], r["term2"]) for r in out["table1"]] == [
        ("eta_noisy", "eta_pred"),
        ("eta_noisy", "eta_ebe"),
        ("eta_ebe", "eta_pred"),
    ]
    assert out["paper"]["r2"]["value"] == 0.0544
    text = str(rep)
    assert "Table 1" in text and "0.0544" in text and "fraction of max" in text


def test_bad_arrays_raise():
    eta, eta_noisy, ebe, _ = _data(1, n=50)
    with pytest.raises(ValueError, match=r"eta_noisy must have shape \(50, 3\)"):
        score_arrays(eta, eta_noisy[:10], ebe, eta, 1, nll=False)
    with pytest.raises(ValueError, match="sigma2"):
        score_arrays(eta, eta_noisy, ebe, eta, -1, nll=False)
    with pytest.raises(ValueError, match="NaN or infinite"):
        bad = eta.copy()
        bad[0, 0] = np.nan
        score_arrays(eta, eta_noisy, ebe, bad, 1, nll=False)
