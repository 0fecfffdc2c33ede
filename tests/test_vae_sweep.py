"""Korkic's (2021) sensitivity grid: cells, outcomes (diverged, out of memory), resume, ranks,
the report and its variance decomposition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthoct_bench.cli import main
from synthoct_bench.generators.vae import sweep as vae_sweep
from synthoct_bench.generators.vae.sweep import (
    SWEEP_PRESETS,
    TRAINED,
    SweepGrid,
    read_cells,
    run_sweep,
    shares_over_seeds,
    sweep_report,
    variance_shares,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: two cells: one that trains, one whose learning rate makes the loss NaN at once
TINY = SweepGrid(objectives=("vae",), optimizers=("adam",), lrs=(1e-3, 1e6), latent_dims=(4,),
                 n=32, val_n=8, image_size=32, epochs=1, batch_size=16, eval_n=32,
                 n_method1=64, n_method2=16)  # fmt: skip


def test_grid_cells_presets_and_checks():
    assert len(SWEEP_PRESETS["reduced"].cells) == 4 * 3 * 5 * 3
    assert len(SWEEP_PRESETS["korkic2021"].cells) == 360  # the thesis's count
    grid = SweepGrid(seeds=(0, 1), lrs=(1e-3,), latent_dims=(10,))
    ids = [c.cell_id for c in grid.cells]
    assert ids[0] == "vae-adam-lr1e-03-d10-s0" and ids[-1] == "logcosh-rmsprop-lr1e-03-d10-s1"
    assert len(set(ids)) == len(ids) == 2 * 4 * 3
    assert SweepGrid.from_dict(json.loads(json.dumps(grid.to_dict()))) == grid
    for bad, match in (({"objectives": ("vea",)}, "unknown objectives"),
                       ({"optimizers": ("adagrad",)}, "unknown optimizers"),
                       ({"lrs": (1e-3, 1e-3)}, "without repeats"),
                       ({"latent_dims": (2,)}, "latent dims >= 3"),
                       ({"val_n": 0}, "val_n must be >= 1"),
                       ({"max_steps": 0}, "max_steps must be an int >= 1")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            SweepGrid(**bad)


def test_variance_shares_recover_known_structure():
    cells = [{"a": a, "b": b} for a in range(3) for b in range(4)]
    only_a = [{**c, "y": 2.0 * c["a"]} for c in cells]
    shares = variance_shares(only_a, ["a", "b"], value="y")
    assert shares["a"] == pytest.approx(1.0) and shares["b"] == pytest.approx(0.0)
    # additive, balanced: the shares are the factors' variance ratios
    additive = [{**c, "y": c["a"] + 2.0 * c["b"]} for c in cells]
    shares = variance_shares(additive, ["a", "b"], value="y")
    var_a, var_b = 2 / 3, 4 * 5 / 4  # var of 0..2 and of 0,2,4,6
    assert shares["a"] == pytest.approx(var_a / (var_a + var_b))
    assert shares["a x b"] == pytest.approx(0.0, abs=1e-12)
    # a pure interaction (XOR): no main effect explains anything
    xor = [{"a": a, "b": b, "y": float(a ^ b)} for a in (0, 1) for b in (0, 1)]
    shares = variance_shares(xor, ["a", "b"], value="y")
    assert shares["a"] == shares["b"] == 0.0 and shares["a x b"] == pytest.approx(1.0)
    assert variance_shares([{"a": 0, "y": 1.0}], ["a"], value="y") == {}


def test_shares_over_seeds_mean_and_student_t_interval():
    over = shares_over_seeds({0: {"lr": 0.2, "b": 0.0}, 1: {"lr": 0.4, "b": 0.1},
                              2: {"lr": 0.3}})  # fmt: skip
    # mean 0.3, sd 0.1, t(0.975, 2) = 4.3027: half width 4.3027 * 0.1 / sqrt(3)
    half = 4.302653 * 0.1 / 3**0.5
    assert over["lr"]["mean"] == pytest.approx(0.3)
    assert (over["lr"]["low"], over["lr"]["high"]) == pytest.approx((0.3 - half, 0.3 + half))
    assert over["lr"]["seeds"] == 3
    # two seeds report b; its interval would go below 0 and is clipped there
    assert over["b"]["seeds"] == 2 and over["b"]["low"] == 0.0
    assert shares_over_seeds({0: {"lr": 0.2}}) == {}


def test_the_report_gives_each_share_an_interval_over_seeds(tmp_path):
    """Cells written by hand (no training): log10 MSE = lr's effect + a seed-dependent
    latent-size effect, so the lr share is large in every seed and the interval says how
    much the seeds disagree."""
    from dataclasses import asdict

    grid = SweepGrid(objectives=("vae",), optimizers=("adam",), lrs=(1e-3, 1e-2),
                     latent_dims=(4, 8), seeds=(0, 1, 2), n=32, val_n=8, image_size=32,
                     epochs=1, batch_size=16, eval_n=32)  # fmt: skip
    out = tmp_path / "sweep"
    (out / "cells").mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps(grid.to_dict()))
    for cell in grid.cells:
        mse = 10 ** (-2.0 - (cell.lr == 1e-2) - 0.1 * cell.seed * (cell.latent_dim == 8))
        row = {**asdict(cell), "outcome": "converged", "reconstruction_mse": mse}
        (out / "cells" / f"{cell.cell_id}.json").write_text(json.dumps(row))
    report = sweep_report(out, plots=False)
    assert set(report.shares_by_seed) == {0, 1, 2}
    assert report.shares_by_seed[0]["lr"] == pytest.approx(1.0)  # seed 0: only lr moves
    over = json.loads((out / "report.json").read_text())["variance_shares_over_seeds"]
    lr = over["lr"]
    assert lr["seeds"] == 3 and lr["low"] < lr["mean"] < lr["high"] <= 1.2
    assert lr["mean"] == pytest.approx(np.mean([s["lr"] for s in report.shares_by_seed.values()]))
    assert "95% interval over seeds" in report.summary()


def test_a_sweep_records_divergence_and_reports(tmp_path):
    results = run_sweep(TINY, tmp_path / "sweep", progress=False)
    by_lr = {r["lr"]: r for r in results}
    assert by_lr[1e6]["outcome"] == "diverged" and "lower --lr" in by_lr[1e6]["error"]
    trained = by_lr[1e-3]
    assert trained["outcome"] in TRAINED and trained["epochs"] == 1
    assert trained["val_mse"] > 0 and 0 <= trained["top_overlap_method1_method2"] <= 1
    assert isinstance(trained["methods_agree"], bool) and "eta_probe_r2" in trained
    report = sweep_report(tmp_path / "sweep")
    assert report.outcomes["diverged"] == 1 and len(report.rows) == 2
    for name in ("results.parquet", "results.csv", "loss_vs_lr.png", "outcomes.png",
                 "report.json"):  # fmt: skip
        assert (tmp_path / "sweep" / name).stat().st_size > 0
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "sweep" / "results.parquet")
    assert table.num_rows == 2
    assert sorted(table.column("outcome").to_pylist()) == sorted(r["outcome"] for r in results)

    # the counts against the mean image: set the trained cell's MSE either side of half of it
    cell = tmp_path / "sweep" / "cells" / "vae-adam-lr1e-03-d4-s0.json"
    row = json.loads(cell.read_text())
    for fraction, below, half in ((0.4, 1, 1), (0.5, 1, 1), (0.7, 1, 0), (1.2, 0, 0)):
        cell.write_text(json.dumps({**row, "reconstruction_mse": fraction * report.mean_image_mse}))
        again = sweep_report(tmp_path / "sweep", plots=False)
        assert (again.cells_below_mean_image, again.cells_below_half_mean_image) == (below, half)
        assert f"{half} by at least 2x" in again.summary()
    # an older sweep folder's name for a spent budget reads as today's
    cell.write_text(json.dumps({**row, "outcome": "max_epochs"}))
    assert [r["outcome"] for r in read_cells(tmp_path / "sweep")].count("budget") == 1


def test_resume_neither_loses_nor_repeats_a_cell(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    real = vae_sweep.run_cell
    calls: list[str] = []

    def killed_after_one(grid, cell, out_, device="cpu"):
        if calls:
            raise KeyboardInterrupt  # the sweep is killed during its second cell
        calls.append(cell.cell_id)
        return real(grid, cell, out_, device)

    monkeypatch.setattr(vae_sweep, "run_cell", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(TINY, out, progress=False)
    first = out / "cells" / f"{calls[0]}.json"
    written = first.read_text()
    with pytest.raises(ValueError, match="pass --resume"):
        run_sweep(TINY, out, progress=False)
    with pytest.raises(ValueError, match="another sweep grid"):
        run_sweep(SweepGrid(**{**TINY.to_dict(), "epochs": 2}), out, resume=True, progress=False)
    resumed: list[str] = []
    monkeypatch.setattr(
        vae_sweep,
        "run_cell",
        lambda g, c, o, d="cpu": resumed.append(c.cell_id) or real(g, c, o, d),
    )
    run_sweep(TINY, out, resume=True, progress=False)
    assert resumed == [c.cell_id for c in TINY.cells[1:]]  # only the cell not done
    assert first.read_text() == written and len(read_cells(out)) == 2

    # a finished sweep takes more seeds after its own, and trains only theirs
    resumed.clear()
    more = SweepGrid(**{**TINY.to_dict(), "seeds": (0, 1)})
    run_sweep(more, out, resume=True, progress=False)
    assert resumed == [c.cell_id for c in more.cells if c.seed == 1]
    assert first.read_text() == written and len(read_cells(out)) == 4
    with pytest.raises(ValueError, match=r"list those first \(e.g. --seeds 0,1,2\)"):
        run_sweep(SweepGrid(**{**TINY.to_dict(), "seeds": (2, 0, 1)}), out, resume=True,
                  progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="another sweep grid"):
        run_sweep(SweepGrid(**{**more.to_dict(), "seeds": (0, 1, 2), "epochs": 2}), out,
                  resume=True, progress=False)  # fmt: skip


def test_ranks_split_the_cells_and_an_out_of_memory_is_an_outcome(tmp_path, monkeypatch):
    from synthoct_bench.generators.vae import run as vae_run

    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(vae_run, "train_run", oom)
    results = run_sweep(TINY, tmp_path / "s", rank=1, world=2, progress=False)
    assert [r["cell_id"] for r in results] == [TINY.cells[1].cell_id]
    assert results[0]["outcome"] == "oom" and "out of memory" in results[0]["error"]

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(vae_run, "train_run", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):  # not every error is an outcome
        run_sweep(TINY, tmp_path / "s", rank=0, world=2, resume=True, progress=False)


def test_cli_sweep_with_workers_then_report(tmp_path, capsys):
    argv = ["vae", "sweep", "--out", str(tmp_path / "w"), "--objectives", "vae,logcosh",
            "--optimizers", "sgd", "--lrs", "1e-3", "--latent-dims", "4", "--n", "32",
            "--val-n", "8", "--image-size", "32", "--epochs", "1", "--batch-size", "16",
            "--workers", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 cells in the grid" in out and "2 of 2 cells done" in out
    assert main(["vae", "sweep", "--out", str(tmp_path / "w"), "--report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cells_done"] == 2
    with pytest.raises(SystemExit) as exc:
        main([*argv[:4], "--lrs", "fast"])
    assert exc.value.code == 2
    assert "in the comma-separated 'fast': expected a number" in capsys.readouterr().err
