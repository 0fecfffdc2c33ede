"""Smoke test of the main job on a tiny configuration, and of `synthoct baseline` on its data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthoct_bench.cli import main as cli_main
from synthoct_bench.demo import DEMO_BASELINES, DemoConfig, check_ordering, run_demo

# builds a dataset (FOCE + EBE fits) and trains twice: ~1-2 min of CPU on 2 cores
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    config = DemoConfig(
        out=str(out),
        n=120,
        noise_levels=(0, 49),
        epochs=1,
        input_size=32,
        image_size=64,
        batch_size=16,
        n_bootstrap=50,
        progress=False,
        device="cpu",
    )
    return run_demo(config, log=None)


def test_demo_json_structure(demo):
    d = json.loads(json.dumps(demo.to_dict()))
    rows = d["results"]
    assert {(r["noise"], r["baseline"]) for r in rows} == {
        (k, b) for k in (0, 49) for b in DEMO_BASELINES
    }
    for r in rows:
        assert np.isfinite(r["r2"]) and np.isfinite(r["fraction_of_max"])
        assert r["fraction_of_max"] == pytest.approx(r["r2"] * (1 + r["noise"]))
    r2 = {(r["noise"], r["baseline"]): r["r2"] for r in rows}
    assert r2[(0, "oracle")] == pytest.approx(1.0)  # eta itself at sigma2 = 0
    assert r2[(0, "random")] < r2[(0, "average")] < r2[(0, "oracle")]
    assert set(d["checks"]) >= {"ordering", "r2_falls_with_noise"}
    assert d["dataset"]["n_test"] > 0 and d["config"]["input_size"] == 32


def test_demo_writes_tables_plot_and_submissions(demo, tmp_path):
    out = demo.config.out
    text = demo.format_tables()
    for needle in ("Table 1", "Table 2", "paper", "32x32 px"):
        assert needle in text
    from pathlib import Path

    root = Path(out)
    assert (root / "results.png").stat().st_size > 5_000
    assert json.loads((root / "results.json").read_text())["results"]
    assert len(list((root / "submissions").glob("*.parquet"))) == 8


def test_check_ordering_flags_violations():
    rows = [
        {"noise": k, "baseline": b, "r2": v}
        for k, vals in ((0, (1.0, 0.5, 0.0, -1.0)), (9, (0.1, 0.2, 0.0, -1.0)))
        for b, v in zip(DEMO_BASELINES, vals, strict=True)
    ]
    checks = check_ordering(rows, (0, 9))
    assert not checks["ordering"]["ok"] and "sigma2=9" in checks["ordering"]["detail"]
    assert checks["r2_falls_with_noise"]["ok"]


def test_baseline_command_writes_valid_submissions(demo, tmp_path, capsys):
    from synthoct_bench.scoring import read_submission, score

    data = f"{demo.config.out}/data"
    for name in ("average", "random", "oracle"):
        path = tmp_path / f"{name}.parquet"
        assert (
            cli_main(["baseline", name, "--data", data, "--noise", "49", "--out", str(path)]) == 0
        )
        sub = read_submission(path)
        assert sub.eta_pred.shape == (demo.dataset["n_test"], 3)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["baseline"] == "oracle" and "upper bound" in summary["note"]
    # resnet18 from the demo's saved model: predicts without training
    model = f"{demo.config.out}/resnet18/s49/model"
    path = tmp_path / "resnet18.parquet"
    args = ["baseline", "resnet18", "--data", data, "--noise", "49", "--out", str(path)]
    assert cli_main([*args, "--model", model, "--device", "cpu"]) == 0
    report = score(path, data, 49, "test", n_bootstrap=20, nll=False)
    assert np.isfinite(report.r2.value)
    with pytest.raises(ValueError, match="unknown baseline"):
        from synthoct_bench.baselines.run import run_baseline

        run_baseline("knn", data, 49)
