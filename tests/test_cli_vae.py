"""`synthoct vae train|evaluate|select` and a dataset built from the trained decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthoct_bench.cli import main

TRAIN = [
    "vae", "train", "--arch", "small", "--objective", "vae", "--n", "16", "--image-size", "32",
    "--latent-dim", "8", "--batch-size", "8", "--log-every", "1", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_torch_thread):
    """A small-arch VAE trained 2 steps on 16 phantom images, evaluated and selected."""
    out = tmp_path_factory.mktemp("vae") / "run"
    assert main([*TRAIN, "--out", str(out), "--max-steps", "2"]) == 0
    return out


def test_train_writes_a_loadable_run(run_dir):
    from synthoct_bench.generators.vae import load_vae
    from synthoct_bench.generators.vae.run import VAERunSpec, load_run_spec

    run = json.loads((run_dir / "run.json").read_text())
    assert run["training"]["objective"] == "vae" and run["training"]["augment"] is False
    assert load_run_spec(run_dir) == VAERunSpec(n=16, image_size=32, latent_dim=8, arch="small")
    vae = load_vae(run_dir / "model")
    assert type(vae).__name__ == "SmallConvVAE" and vae.config.latent_dim == 8
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert (run_dir / "loss_curves.png").stat().st_size > 0


def test_resume_continues_and_refuses_other_settings(tmp_path, one_torch_thread):
    from synthoct_bench.generators.vae import load_vae

    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*TRAIN, "--out", str(a), "--max-steps", "3"]) == 0
    assert main([*TRAIN, "--out", str(b), "--max-steps", "2"]) == 0
    assert main([*TRAIN, "--out", str(b), "--max-steps", "3"]) == 2  # exists, no --resume
    assert main([*TRAIN, "--out", str(b), "--max-steps", "3", "--resume"]) == 0
    sa, sb = load_vae(a / "model").state_dict(), load_vae(b / "model").state_dict()
    assert all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    other = [*TRAIN, "--out", str(b), "--max-steps", "4", "--resume", "--n", "24"]
    assert main(other) == 2


def test_evaluate_writes_json_and_plots(run_dir, tmp_path, capsys):
    path, plots = tmp_path / "eval.json", tmp_path / "plots"
    argv = ["vae", "evaluate", str(run_dir), "--n", "24", "--json", str(path)]
    assert main([*argv, "--plots", str(plots)]) == 0
    result = json.loads(path.read_text())
    assert {"reconstruction_mse", "kl_per_dim", "active_units", "mig", "dci", "sap",
            "eta_probe"} <= set(result)  # fmt: skip
    assert result["offset"] == 16 and result["n"] == 24  # held out: after the 16 trained on
    assert len(result["kl_per_dim"]) == 8 and 0 <= result["active_units"] <= 8
    assert set(result["eta_probe"]["r2"]) == {"vertical_position", "tilt", "luminance"}
    assert np.shape(result["mig"]["mutual_info"]) == (8, 21)
    for name in ("reconstructions", "traversals", "kl_per_dim", "mutual_info"):
        assert (plots / f"{name}.png").stat().st_size > 0
    assert "reconstruction MSE" in capsys.readouterr().out


def test_eta_probe_recovers_a_linear_code():
    from synthoct_bench.generators.vae.run import eta_probe

    rng = np.random.default_rng(0)
    factors = rng.normal(size=(200, 3))
    codes = np.c_[factors @ rng.normal(size=(3, 3)), rng.normal(size=(200, 2))]
    assert eta_probe(codes, factors, alpha=1e-6).r2.min() > 0.99
    assert eta_probe(rng.normal(size=(200, 5)), factors).mean_r2 < 0.1


def test_select_writes_selection_and_builds_a_dataset(run_dir, tmp_path, capsys):
    from synthoct_bench.dataset import verify
    from synthoct_bench.dataset.manifest import read_manifest

    argv = ["vae", "select", str(run_dir), "--n1", "32", "--n2", "8", "--n-phantom", "16"]
    assert main([*argv, "--no-progress"]) == 0
    sel = json.loads((run_dir / "model" / "selection.json").read_text())
    assert len(sel["eta_dims"]) == 3 and sel["eta_dims"] == sel["top_method2"]
    assert sorted(sel["method1_ranking"]) == list(range(8))
    assert len(sel["phantom_top"]) == 3
    assert {"top_overlap_method1_method2", "spearman_method1_method2",
            "top_overlap_method2_phantom"} <= set(sel["agreement"])  # fmt: skip
    capsys.readouterr()

    out = tmp_path / "ds"
    build = ["build", "--generator", "vae", "--weights", str(run_dir), "--n", "60",
             "--image-size", "32", "--noise-levels", "0", "--out", str(out), "--no-progress",
             "--fit-arg", "compute_se=false", "--fit-arg", "em_iter=5",
             "--fit-arg", "max_iter=0"]  # fmt: skip
    assert main(build) == 0
    manifest = read_manifest(out / "manifest.json")
    assert list(manifest.eta_dims) == sel["eta_dims"]
    assert manifest.generator.config["eta_dims_source"] == "selection.json"
    assert '"eta_dims_source": "selection.json"' in (out / "README.md").read_text()
    report = verify(out)
    assert report.ok, report.problems
    # without a selection.json and without eta_dims the build is refused
    (run_dir / "model" / "selection.json").unlink()
    assert main([*build[:-7], "--out", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "selection.json" in capsys.readouterr().err


def test_vae_generator_needs_eta_dims(tmp_path):
    from synthoct_bench.generators import get_generator
    from synthoct_bench.generators.vae.small import SmallConvVAE, SmallConvVAEConfig

    SmallConvVAE(SmallConvVAEConfig(image_size=32, latent_dim=4)).save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="selection.json"):
        get_generator("vae", path_or_repo_id=tmp_path / "m", image_size=32)
    with pytest.raises(ValueError, match="3 distinct dims in 0..3"):
        get_generator("vae", path_or_repo_id=tmp_path / "m", eta_dims=[1, 2, 9], image_size=32)
    with pytest.raises(ValueError, match="--image-size 32"):
        get_generator("vae", path_or_repo_id=tmp_path / "m", eta_dims=[1, 2, 3], image_size=64)
    gen = get_generator("vae", path_or_repo_id=tmp_path / "m", eta_dims=[1, 2, 3], image_size=32)
    z = np.random.default_rng(0).normal(size=(2, 128))
    images = gen.generate(z, np.arange(2))
    np.testing.assert_array_equal(images, gen.generate(np.c_[z[:, :4], z[:, 4:] * 0], [0, 1]))
    assert gen.get_config()["eta_dims_source"] == "explicit"


def test_train_on_a_folder_of_class_folders(tmp_path, capsys, one_torch_thread):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(8):
        folder = tmp_path / "images" / ("CNV" if i % 2 else "NORMAL")
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if i < 4 else ".jpeg"
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(
            folder / f"{i}{suffix}"
        )
    out = tmp_path / "run"
    argv = [*TRAIN, "--images", str(tmp_path / "images"), "--out", str(out), "--max-steps", "1"]
    assert main(argv) == 0
    assert json.loads((out / "run.json").read_text())["training"]["augment"] is True
    capsys.readouterr()
    assert main(["vae", "evaluate", str(out / "model"), "--n", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["offset"] == 0  # phantom images, none trained on
    assert main([*TRAIN, "--images", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_validation_images_and_the_convergence_stop(tmp_path, capsys, one_torch_thread):
    from synthoct_bench.generators.vae.run import VAERunSpec

    out = tmp_path / "run"
    argv = [*TRAIN, "--out", str(out), "--val-n", "8", "--epochs", "5", "--lr", "1e-7",
            "--stop-rel-change", "0.5"]  # fmt: skip
    assert main(argv) == 0
    assert "stopped at epoch 1" in capsys.readouterr().out
    state = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert state["converged_step"] == 2 and len(state["val_history"]) == 2
    assert main(["vae", "evaluate", str(out), "--n", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["offset"] == 24  # after 16 trained, 8 validated
    assert main([*TRAIN, "--out", str(tmp_path / "x"), "--stop-rel-change", "0.01"]) == 2
    assert "set --val-n" in capsys.readouterr().err
    # a folder's validation files are drawn by seed, disjoint from the training files
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(np.full((20, 20), i * 20, dtype=np.uint8)).save(folder / f"{i}.png")
    spec = VAERunSpec(images=str(folder), n=1, image_size=16, val_n=3)
    train, val = spec.sources()
    assert len(train) == 7 and len(val) == 3 and not set(train.items) & set(val.items)
    assert spec.sources()[1].items == val.items  # the same draw again
    with pytest.raises(ValueError, match="lower --val-n"):
        VAERunSpec(images=str(folder), val_n=10).sources()
