"""score() on a built dataset and the `synthoct score` command: provenance, JSON, plot, errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from synthoct_bench.cli import main
from synthoct_bench.dataset import dataset_fingerprint, read_columns
from synthoct_bench.scoring import SubmissionError, score, write_submission


def _oracle_file(tmp_path, data, noise, split="test", suffix=".parquet", scale=1.0, model=None):
    cols = read_columns(data, split, ["subject_id", "eta"])
    pred = scale * cols["eta"].astype(np.float64) / np.sqrt(1 + noise)
    path = tmp_path / f"{model or 'oracle'}_s{noise}_{split}{suffix}"
    return write_submission(
        path, cols["subject_id"], pred, noise=noise, split=split, model=model or "oracle"
    )


def test_score_file_provenance_and_tables(tmp_path, tiny_dataset):
    path = _oracle_file(tmp_path, tiny_dataset, 9, suffix=".csv")
    rep = score(path, tiny_dataset, noise=9, split="test", n_bootstrap=50, seed=3)
    out = json.loads(json.dumps(rep.to_dict()))
    prov = out["provenance"]
    (sub,) = out["submissions"]
    assert sub["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sub["source"] == str(path) and sub["model"] == "oracle" and sub["declared_noise"] == 9
    assert prov["dataset_fingerprint"] == dataset_fingerprint(tiny_dataset)
    assert out["seeds"] is None
    assert prov["scorer_version"]
    assert out["bootstrap"]["seed"] == 3 and out["bootstrap"]["n_resamples"] == 50
    assert (out["noise"], out["split"], out["model"]) == (9.0, "test", "oracle")
    assert set(out["table2"]) == {"true", "predicted", "approximate", "average", "random"}
    assert set(out["beyond_paper"]["heldout_nll"]) == {
        "predicted",
        "true",
        "approximate",
        "average",
    }
    assert "dataset's simulation parameters" in out["nll_params"]
    text = str(rep)
    assert "Table 2" in text
    # Provenance prints whole values: the full fingerprint and sha256, nothing cut short.
    assert f"dataset_fingerprint: {prov['dataset_fingerprint']}" in text
    assert f"{path} (sha256 {sub['sha256']})" in text


def test_score_rejects_wrong_split_level_and_unknown_level(tmp_path, tiny_dataset):
    val = _oracle_file(tmp_path, tiny_dataset, 9, split="validation")
    with pytest.raises(SubmissionError, match="split 'validation', but split 'test'"):
        score(val, tiny_dataset, noise=9, split="test", n_bootstrap=20)
    path = _oracle_file(tmp_path, tiny_dataset, 1)
    with pytest.raises(SubmissionError, match="noise level 1, but noise level 9"):
        score(path, tiny_dataset, noise=9, split="test", n_bootstrap=20)
    with pytest.raises(ValueError, match="not in this dataset"):
        score(path, tiny_dataset, noise=4, split="test", n_bootstrap=20)


def test_cli_several_levels_json_plot_and_compare(tmp_path, tiny_dataset, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    for k in (1, 9):
        _oracle_file(subs, tiny_dataset, k)
        _oracle_file(subs, tiny_dataset, k, scale=0.5, model="half")
    js, png = tmp_path / "scores.json", tmp_path / "scores.png"
    rc = main(
        ["score", "--data", str(tiny_dataset), "--predictions", str(subs), "--json", str(js),
         "--plot", str(png), "--n-bootstrap", "30", "--no-nll"]
    )  # fmt: skip
    assert rc == 0
    payload = json.loads(js.read_text())
    assert payload["schema_version"] == 1
    assert [(r["model"], r["noise"]) for r in payload["reports"]] == [
        ("half", 1.0),
        ("half", 9.0),
        ("oracle", 1.0),
        ("oracle", 9.0),
    ]
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()

    a = _oracle_file(tmp_path, tiny_dataset, 9)
    b = _oracle_file(tmp_path, tiny_dataset, 9, scale=0.5, model="half")
    rc = main(
        ["score", "--data", str(tiny_dataset), "--noise", "9", "--predictions", str(a),
         "--compare", str(b), "--json", "--n-bootstrap", "30"]
    )  # fmt: skip
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["schema_version"] == 1 and len(payload["reports"]) == 1
    out = payload["reports"][0]
    assert out["comparison"]["other"]["model"] == "half"
    diff = out["comparison"]["difference"]["r2"]["value"]
    assert diff == pytest.approx(
        out["r2"]["value"] - out["comparison"]["other_metrics"]["r2"]["value"]
    )


def test_cli_reports_errors_with_exit_code_2(tmp_path, tiny_dataset, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,eta_pred_1,eta_pred_2\n1,0.1,0.2\n")
    rc = main(["score", "--data", str(tiny_dataset), "--noise", "9", "--predictions", str(bad)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error" in err and "(2 dims)" in err


def test_fitted_params_are_the_dataset_foce_fit(tmp_path, tiny_dataset):
    path = _oracle_file(tmp_path, tiny_dataset, 18)
    sim = score(path, tiny_dataset, noise=18, n_bootstrap=20)
    fit = score(path, tiny_dataset, noise=18, n_bootstrap=20, nll_params="fitted")
    assert "FOCE fit at noise=18" in fit.nll_params and "simulation" in sim.nll_params
    assert fit["table2/average"].value != sim["table2/average"].value
    with pytest.raises(ValueError, match="'simulation' or 'fitted'"):
        score(path, tiny_dataset, noise=18, n_bootstrap=20, nll_params="paper")
