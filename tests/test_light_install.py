"""The light core (``pip install synthoct-bench``): load, verify and score without torch,
numba or diffusers, and a clear one-line hint for a feature that needs an extra."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "numba", "diffusers", "accelerate", "transformers")

#: Runs the CLI with HEAVY (and the build extra's modules) made unimportable, as on a
#: light install, then prints which of them got imported anyway.
BLOCKED_CLI = textwrap.dedent(
    """
    import importlib.abc, json, sys
    BLOCK = {"torch", "torchvision", "numba", "diffusers", "accelerate", "transformers",
             "matplotlib", "isal", "safetensors"}
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCK:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Blocker())
    from synthoct_bench.cli import main
    rc = main(sys.argv[1:])
    print("IMPORTED", json.dumps(sorted({m.split(".")[0] for m in sys.modules} & BLOCK)))
    sys.exit(rc)
    """
)


def _blocked(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, *argv], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def submission(tiny_dataset, tmp_path_factory) -> Path:
    import synthoct_bench as sb

    ids = sb.read_columns(tiny_dataset, "test", ["subject_id"])["subject_id"]
    path = tmp_path_factory.mktemp("light") / "pred_s9.parquet"
    pred = np.random.default_rng(0).normal(size=(len(ids), 3))
    sb.write_submission(path, ids, pred, noise=9, split="test", dataset=tiny_dataset)
    return path


def test_score_and_verify_run_without_the_extras(tiny_dataset, submission, tmp_path):
    import synthoct_bench as sb

    out = tmp_path / "report.json"
    argv = ["score", "--predictions", str(submission), "--data", str(tiny_dataset)]
    light = _blocked(*argv, "--json", str(out), cwd=tmp_path)
    assert light.returncode == 0, light.stderr
    assert "IMPORTED []" in light.stdout
    # the scipy solve gives the same Table 2 as the compiled kernel
    full = sb.score(submission, tiny_dataset, noise=9).to_dict()
    mine = json.loads(out.read_text())["reports"][0]
    assert mine["table2"] and _numbers(mine["table2"]) == pytest.approx(
        _numbers(full["table2"]), rel=1e-6, abs=1e-6
    )
    assert _numbers(mine["table1"]) == _numbers(full["table1"])  # no ODE in Table 1
    checked = _blocked("verify", str(tiny_dataset), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "z, eta, eta_noisy and obs of" in checked.stdout
    assert "not checked: content: EBEs and images" in checked.stdout
    assert "synthoct-bench[build]" in checked.stdout and "IMPORTED []" in checked.stdout


def _numbers(tree) -> list[float]:
    """The numbers of a JSON tree, depth first, in key order."""
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _numbers(tree[k])]
    if isinstance(tree, list):
        return [x for v in tree for x in _numbers(v)]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [float(tree)]
    return []


def test_features_of_an_extra_name_it(tmp_path, tiny_dataset):
    built = _blocked("build", "--out", str(tmp_path / "x"), "--n", "60", cwd=tmp_path)
    assert built.returncode == 2
    assert built.stderr.strip().splitlines() == [
        "synthoct build: error: this needs numba, which the light install leaves out: "
        "pip install 'synthoct-bench[build]'"
    ]
    trained = _blocked("vae", "train", "--out", str(tmp_path / "v"), cwd=tmp_path)
    assert trained.returncode == 2 and "synthoct-bench[torch]" in trained.stderr
    assert "Traceback" not in trained.stderr


def test_missing_extra_errors_in_python(monkeypatch):
    import importlib.util

    from synthoct_bench import extras, lazy

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a)
    )
    with pytest.raises(extras.MissingExtraError, match=r"pip install 'synthoct-bench\[build\]'"):
        extras.require("building a dataset", "build")

    def broken(name):
        raise ModuleNotFoundError("No module named 'diffusers'", name="diffusers")

    monkeypatch.setattr(lazy.importlib, "import_module", broken)
    with pytest.raises(ImportError, match=r"synthoct-bench\[diffusion\]"):
        lazy.resolve("synthoct_bench.generators.diffusion.pipeline:LatentDiffusionGenerator")
    assert extras.extra_for(ModuleNotFoundError("x", name="yaml")) is None


def test_scipy_solver_matches_the_kernel_and_the_reference():
    from synthoct_bench.nlme import PAPER_MODEL, predict
    from synthoct_bench.nlme.model import PopulationParams
    from synthoct_bench.nlme.reference import OBS_TIMES, reference_predict
    from synthoct_bench.nlme.solver_scipy import solve_mm_oral

    eta = np.random.default_rng(1).normal(0.0, 0.8, (60, 3))
    params = PopulationParams.coerce(None, PAPER_MODEL)
    ind = PAPER_MODEL.params_for(eta, params.theta)
    f, sens = solve_mm_oral(*ind.T, OBS_TIMES, dose=PAPER_MODEL.dose, sensitivities=True)
    np.testing.assert_allclose(f, reference_predict(eta, params.theta), rtol=0, atol=1e-9)
    kernel_f, kernel_sens = predict(eta, params, sensitivities=True)
    np.testing.assert_allclose(f, kernel_f, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sens, kernel_sens, rtol=0, atol=1e-5)
    assert np.abs(sens).max() > 0.01  # not a vacuous match
    # unsorted, repeated and zero times come back in the order asked
    times = np.array([2.0, 0.0, 0.5, 2.0])
    got = solve_mm_oral(*ind[:3].T, times, dose=PAPER_MODEL.dose)
    np.testing.assert_allclose(got, kernel_f[:3][:, [4, 0, 1, 4]], atol=1e-6)
    assert solve_mm_oral(*ind[:0].T, OBS_TIMES).shape == (0, OBS_TIMES.size)


@pytest.mark.slow
def test_the_core_wheel_installs_alone_and_scores(tiny_dataset, submission, tmp_path):
    """Build the wheel, install it with its core dependencies alone into a fresh venv,
    and score: no torch, numba or diffusers is installed, and the card template ships."""
    # build from a copy: setuptools leaves build/ beside the sources it builds
    source = tmp_path / "source"
    shutil.copytree(ROOT / "synthoct_bench", source / "synthoct_bench",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    wheel = next(wheels.glob("synthoct_bench-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900)
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & set(HEAVY), installed & set(HEAVY)
    synthoct = env_dir / "bin" / "synthoct"
    out = tmp_path / "report.json"
    scored = subprocess.run(
        [synthoct, "score", "--predictions", str(submission), "--data", str(tiny_dataset),
         "--summary", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert json.loads(out.read_text())["reports"][0]["noise"] == 9
    card = subprocess.run(
        [python, "-c", "from synthoct_bench.dataset.card import TEMPLATE_PATH as t; "
         "print(t.is_file(), 'site-packages' in str(t))"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert card.stdout.split() == ["True", "True"]
    built = subprocess.run(
        [synthoct, "build", "--out", str(tmp_path / "x")], capture_output=True, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 2 and "synthoct-bench[build]" in built.stderr
