"""`synthoct reproduce`: Table 2's NLME-only cells at small n."""

import argparse
import json

import numpy as np
import pytest

from synthoct_bench.cli import main
from synthoct_bench.commands import reproduce
from synthoct_bench.commands.reproduce import COLUMNS, format_table, reproduce_table2

#: the columns that need the NLME model alone (the encoder adds EBE-based ones)
NLME_ONLY = [c for c in COLUMNS if c.name in ("True", "Average", "Random")]


def _table2(**kw):
    return reproduce_table2(columns=NLME_ONLY, progress=False, **kw)


@pytest.fixture(scope="module")
def small_result():
    return _table2(n=400, seed=3, noise_levels=(0, 1, 49), n_bootstrap=100)


def test_true_column_at_zero_noise_is_pure_residual_error(small_result):
    cell = small_result["levels"]["0"]["True"]["ours"]
    # E[NLL] = 21·½·log(2πσ²) + 21/2 with σ = 0.01: -66.9
    expected = 21 * 0.5 * np.log(2 * np.pi * 1e-4) + 10.5
    assert abs(cell["value"] - expected) < 1.0
    assert cell["low"] <= cell["value"] <= cell["high"]
    assert small_result["levels"]["0"]["True"]["inside_paper_interval"]
    assert abs(small_result["levels"]["0"]["True"]["z_vs_paper"]) < 1.96


def test_structure_average_is_level_free_and_true_grows_with_noise(small_result):
    levels = small_result["levels"]
    avg = [levels[k]["Average"]["ours"]["value"] for k in ("0", "1", "49")]
    assert avg[0] == avg[1] == avg[2]
    true = [levels[k]["True"]["ours"]["value"] for k in ("0", "1", "49")]
    assert true[0] < true[1] < true[2]
    for k in ("0", "1", "49"):
        # data from a random eta fit the true eta worse than data from the population mean
        assert levels[k]["Random"]["ours"]["value"] > levels[k]["Average"]["ours"]["value"]
        assert levels[k]["Random"]["paper"]["value"] > 2800
    assert small_result["columns"] == ["True", "Average", "Random"]
    assert "Average (ours / paper)" in format_table(small_result)


def test_same_seed_same_numbers_and_paired_bootstrap():
    a = _table2(n=200, seed=5, noise_levels=(9,), n_bootstrap=50)
    b = _table2(n=200, seed=5, noise_levels=(9,), n_bootstrap=50)
    assert a == b
    c = _table2(n=200, seed=6, noise_levels=(9,), n_bootstrap=50)
    assert a["levels"]["9"]["True"] != c["levels"]["9"]["True"]


def test_cli_json_output(tmp_path, capsys):
    out = tmp_path / "t2.json"
    png = tmp_path / "t2.png"
    parser = argparse.ArgumentParser()
    reproduce.configure(parser)
    argv = ["--n", "150", "--noise-levels", "0,9", "--n-bootstrap", "40"]
    args = parser.parse_args([*argv, "--json", str(out), "--plot", str(png), "--quiet"])
    args.no_encoder = True  # NLME-only cells (the encoder's EBE columns have their own tests)
    assert reproduce.run(args) == 0
    data = json.loads(out.read_text())
    assert set(data["levels"]) == {"0", "9"}
    assert set(data["levels"]["9"]) >= {"True", "Average", "Random"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "sigma2" in capsys.readouterr().out


def test_cli_rejects_bad_noise_levels():
    with pytest.raises(SystemExit):
        main(["reproduce", "--noise-levels", "0,-1"])


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
        "MSE": est,
        "R2": est,
        "paper": None,
        "fitted_params": {"theta": [1.0, 2.0, 0.4], "omega": [1.0, 1.0, 1.0], "sigma": 0.01},
        "foce_subjects": 50,
        "foce_converged": True,
        "estimator": method,
        "ebe_convergence_rate": 1.0,
    }
    text = reproduce.format_table1({"0": row})
    assert label in text
    assert ("FOCE on" in text) == label.startswith("FOCE")
