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
    out = capsys.readouterr().out
    assert "reconstruction MSE" in out and "the mean image" in out
    # the trivial answer beside it, and the likelihood the model was trained with
    assert 0 < result["mean_image_mse"] and result["mse_ratio"] == pytest.approx(
        result["reconstruction_mse"] / result["mean_image_mse"]
    )
    assert result["likelihood"] == "vae: gaussian, sigma learned (batch RMSE)"
    # two steps learn nothing, and evaluate says so first
    assert result["collapsed"] and out.startswith("COLLAPSED: ")


def test_evaluation_names_collapse_against_the_mean_image():
    from synthoct_bench.generators.vae.run import EtaProbe, VAEEvaluation

    def evaluation(mse, mu_variance):
        probe = EtaProbe(("tilt",), np.zeros(1), 1.0, 6, 2)
        return VAEEvaluation(n=8, offset=0, reconstruction_mse=mse, mean_image_mse=0.02,
                             kl_per_dim=np.ones(2), mu_variance=np.asarray(mu_variance),
                             factor_names=(), mig=None, dci=None, sap=None,
                             eta_probe=probe)  # fmt: skip

    assert evaluation(0.007, [0.5, 0.5]).collapsed is None
    assert "0.95 x the mean image" in evaluation(0.019, [0.5, 0.5]).collapsed
    assert "no active latent unit" in evaluation(0.007, [0.001, 0.0]).collapsed


def test_train_takes_a_likelihood_and_refuses_bad_ones(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "literal"
    argv = [*TRAIN, "--out", str(out), "--max-steps", "1", "--likelihood", "korkic2021"]
    assert main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["training"]["objective_config"]["likelihood"] == "korkic2021"
    # resuming under another likelihood is refused, in one line
    assert main([*TRAIN, "--out", str(out), "--max-steps", "2", "--resume"]) == 2
    assert "trained with other settings" in capsys.readouterr().err
    for bad, why in ((["--sigma", "0"], "--sigma"), (["--likelihood", "bernoulli"], "invalid")):
        with pytest.raises(SystemExit) as exc:
            main([*TRAIN, "--out", str(tmp_path / "bad"), "--max-steps", "1", *bad])
        assert exc.value.code == 2 and why in capsys.readouterr().err
    logcosh = ["--objective", "logcosh", "--likelihood", "gaussian"]
    assert main([*TRAIN, "--out", str(tmp_path / "bad"), "--max-steps", "1", *logcosh]) == 2
    assert "likelihood must be one of sech, korkic2021" in capsys.readouterr().err
