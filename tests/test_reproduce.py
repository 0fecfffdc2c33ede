"""`synthoct reproduce`: Table 2's NLME-only cells at small n."""

import argparse
import json

import numpy as np
import pytest

from synthoct_bench import reproduce as library
from synthoct_bench.cli import main
from synthoct_bench.commands import reproduce
from synthoct_bench.reproduce import COLUMNS, format_table2, reproduce_table2

#: the columns that need the NLME model alone (the encoder adds EBE-based ones)
NLME_ONLY = [c for c in COLUMNS if c.name in ("true", "average", "random")]


def _table2(**kw):
    return reproduce_table2(columns=NLME_ONLY, progress=False, **kw)


@pytest.fixture(scope="module")
def small_result():
    return _table2(n=400, seed=3, noise_levels=(0, 1, 49), n_bootstrap=100)


def test_true_column_at_zero_noise_is_pure_residual_error(small_result):
    cell = small_result["levels"]["0"]["true"]["ours"]
    # E[NLL] = 21·½·log(2πσ²) + 21/2 with σ = 0.01: -66.9
    expected = 21 * 0.5 * np.log(2 * np.pi * 1e-4) + 10.5
    assert abs(cell["value"] - expected) < 1.0
    assert cell["low"] <= cell["value"] <= cell["high"]
    assert small_result["levels"]["0"]["true"]["inside_paper_interval"]
    assert abs(small_result["levels"]["0"]["true"]["z_vs_paper"]) < 1.96


def test_structure_average_is_level_free_and_true_grows_with_noise(small_result):
    levels = small_result["levels"]
    avg = [levels[k]["average"]["ours"]["value"] for k in ("0", "1", "49")]
    assert avg[0] == avg[1] == avg[2]
    true = [levels[k]["true"]["ours"]["value"] for k in ("0", "1", "49")]
    assert true[0] < true[1] < true[2]
    for k in ("0", "1", "49"):
        # data from a random eta fit the true eta worse than data from the population mean
        assert levels[k]["random"]["ours"]["value"] > levels[k]["average"]["ours"]["value"]
        assert levels[k]["random"]["paper"]["value"] > 2800
    assert small_result["columns"] == ["true", "average", "random"]
    assert "Average (ours / paper)" in format_table2(small_result)


def test_same_seed_same_numbers_and_paired_bootstrap():
    a = _table2(n=200, seed=5, noise_levels=(9,), n_bootstrap=50)
    b = _table2(n=200, seed=5, noise_levels=(9,), n_bootstrap=50)
    assert a == b
    c = _table2(n=200, seed=6, noise_levels=(9,), n_bootstrap=50)
    assert a["levels"]["9"]["true"] != c["levels"]["9"]["true"]


def test_cli_json_output(tmp_path, capsys):
    out = tmp_path / "t2.json"
    png = tmp_path / "t2.png"
    parser = argparse.ArgumentParser()
    reproduce.configure(parser)
    argv = ["--n", "150", "--noise-levels", "0,9", "--n-bootstrap", "40"]
    args = parser.parse_args([*argv, "--json", str(out), "--plot", str(png), "--no-progress"])
    args.no_encoder = True  # NLME-only cells (the encoder's EBE columns have their own tests)
    assert reproduce.run(args) == 0
    data = json.loads(out.read_text())
    assert set(data["levels"]) == {"0", "9"}
    assert set(data["levels"]["9"]) >= {"true", "average", "random"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "sigma2" in capsys.readouterr().out


def test_cli_rejects_bad_noise_levels(capsys):
    assert main(["reproduce", "--noise-levels", "0,-1"]) == 2
    assert "non-negative integers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("method", "label"),
    [
        ("FOCE (= FOCEI: additive residual error), Gauss-Newton Laplace", "FOCE on 50"),
        ("importance sampling (200 t(4) draws per subject ...)", "importance sampling on 50"),
    ],
)
def test_table1_text_names_the_population_fit_used(method, label):
    est = {"value": 0.69, "low": 0.68, "high": 0.70}
    row = {
        "mse": est,
        "r2": est,
        "paper": None,
        "fitted_params": {"theta": [1.0, 2.0, 0.4], "omega": [1.0, 1.0, 1.0], "sigma": 0.01},
        "fit_subjects": 50,
        "fit_converged": True,
        "estimator": method,
        "ebe_convergence_rate": 1.0,
    }
    text = library.format_table1({"0": row})
    assert label in text
    assert ("FOCE on" in text) == label.startswith("FOCE")


def test_encoder_cells_share_one_fit_and_use_the_scorer_metrics():
    encoder = library.Encoder(fit_subjects=60)
    t2 = reproduce_table2(
        n=120, seed=2, noise_levels=(9,), n_bootstrap=30, encoder=encoder, progress=False
    )
    assert t2["columns"] == ["true", "approximate", "average", "random"]
    t1 = library.reproduce_table1(120, 2, (9,), encoder, n_bootstrap=30)
    assert len(encoder._cache) == 1  # Table 1 reused Table 2's fit and EBEs
    row = t1["9"]
    level = library.make_level(9, 120, 2)
    eta_ebe = encoder.encode(level).eta_ebe
    sse = np.sum((level.eta_noisy - eta_ebe) ** 2)
    sst = np.sum((level.eta_noisy - level.eta_noisy.mean()) ** 2)
    assert row["r2"]["value"] == pytest.approx(1 - sse / sst, rel=1e-9)
    assert row["mse"]["value"] == pytest.approx(sse / level.eta_noisy.size, rel=1e-9)
    assert row["paper"]["r2"][0] == pytest.approx(0.6948)
    assert "FOCE on" in library.format_table1(t1)
    with pytest.raises(ValueError, match="estimator"):
        library.Encoder(estimator="laplace")
