"""`synthoct diffusion train`: the small pixel-space generator trains, resumes bit for bit
after a kill, and its pipeline builds a dataset that verifies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthoct_bench.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN = ["diffusion", "train", "--n", "16", "--image-size", "32", "--batch-size", "4",
         "--checkpoint-every", "2", "--no-progress"]  # fmt: skip


def _unet(folder):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(folder)


def test_train_writes_checkpoints_samples_and_a_pipeline(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--condition", "phantom", "--max-steps", "4", "--out", str(out)]) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    record = json.loads((out / "run.json").read_text())
    assert record["spec"]["condition"] == "phantom" and record["training"]["max_steps"] == 4
    step = out / "checkpoints" / "step-000000004"
    for name in ("unet/diffusion_pytorch_model.safetensors", "unet_ema", "optimizer.safetensors"):
        assert (step / name).exists(), name
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    from PIL import Image

    grid = Image.open(out / "validation" / "step-000000004.png")
    assert grid.size == (8 * 32, 2 * 32)  # real images above, generated below
    assert (out / "loss_curves.png").is_file()
    settings = json.loads((out / "pipeline" / "synthoct_generator.json").read_text())
    assert settings["pixel_space"] is True and settings["prompt_length"] == 1
    assert settings["latent_dim"] == 128 and settings["sampler"] == "ddim"
    assert not (out / "pipeline" / "vae").exists()

    from synthoct_bench.generators.diffusion import LatentDiffusionGenerator

    gen = LatentDiffusionGenerator.from_pretrained(out / "pipeline", image_size=32, device="cpu")
    assert gen.pixel_space and gen.num_inference_steps == 25
    z = np.random.default_rng(0).standard_normal((2, 128))
    a, b = gen.generate(z, np.arange(2)), gen.generate(z, np.arange(2))
    assert a.shape == (2, 32, 32) and a.dtype == np.uint8 and np.array_equal(a, b)

    # an existing run is not overwritten without --resume
    assert main([*TRAIN, "--condition", "phantom", "--max-steps", "4", "--out", str(out)]) == 2

    capsys.readouterr()
    report, grid = tmp_path / "eval.json", tmp_path / "grid.png"
    assert main(["diffusion", "evaluate", str(out), "--n", "16", "--probe-n", "16", "--json",
                 str(report), "--grid", str(grid)]) == 0  # fmt: skip
    ev = json.loads(report.read_text())
    assert ev["learned"] == (ev["paired_mse_ratio"] < 1)
    assert "NOT LEARNED" in capsys.readouterr().out or ev["learned"]
    assert ev["conditioning_r2"] is None and ev["eta_r2_prior"] is None  # no encoder to ask
    assert len(ev["eta_probe_r2_generated"]) == len(ev["eta_dims"]) == 3
    assert ev["unet_calls"] == 25 and ev["gflop_per_image"] > 0 and ev["images_per_s"] > 0
    assert Image.open(grid).size == (8 * 32, 4 * 32)


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    common = [*TRAIN, "--condition", "phantom"]
    assert main([*common, "--max-steps", "4", "--out", str(straight)]) == 0
    assert main([*common, "--max-steps", "2", "--out", str(cut)]) == 0
    assert main([*common, "--max-steps", "4", "--out", str(cut), "--resume"]) == 0
    for part in ("unet", "unet_ema"):
        a = _unet(straight / "checkpoints" / "step-000000004" / part).state_dict()
        b = _unet(cut / "checkpoints" / "step-000000004" / part).state_dict()
        for name in a:
            assert torch.equal(a[name], b[name]), (part, name)
    # resuming with another spec is refused in one line
    assert main([*common, "--max-steps", "6", "--n", "20", "--out", str(cut), "--resume"]) == 2


def test_conditioned_on_a_vae_and_built_into_a_dataset(tmp_path, capsys):
    vae_run = tmp_path / "vae"
    assert main(["vae", "train", "--objective", "vae", "--n", "16", "--image-size", "32",
                 "--latent-dim", "4", "--batch-size", "8", "--max-steps", "1", "--no-progress",
                 "--out", str(vae_run)]) == 0  # fmt: skip
    out = tmp_path / "diff"
    # without the VAE's eta dims the diffusion model cannot say which dims carry eta
    assert main([*TRAIN, "--vae", str(vae_run), "--max-steps", "2", "--out", str(out)]) == 2
    assert "synthoct vae select" in capsys.readouterr().err
    assert main(["vae", "select", str(vae_run), "--n1", "16", "--n2", "8", "--n-phantom", "8",
                 "--no-progress"]) == 0  # fmt: skip
    assert main([*TRAIN, "--vae", str(vae_run), "--max-steps", "2", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["spec"]["vae_z"] == "sample"
    settings = json.loads((out / "pipeline" / "synthoct_generator.json").read_text())
    selection = json.loads((vae_run / "model" / "selection.json").read_text())
    assert settings["latent_dim"] == 4 and settings["eta_dims"] == selection["eta_dims"]
    data = tmp_path / "data"
    capsys.readouterr()
    assert main(["build", "--out", str(data), "--generator", "diffusion", "--weights",
                 str(out / "pipeline"), "--n", "60", "--image-size", "32",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["verify", str(data), "--quick"]) == 0
    capsys.readouterr()
    assert main(["diffusion", "evaluate", str(out), "--n", "16", "--probe-n", "16",
                 "--json"]) == 0  # fmt: skip
    ev = json.loads(capsys.readouterr().out)
    assert len(ev["eta_r2"]) == len(ev["eta_r2_prior"]) == len(ev["eta_r2_prior_vae_decoder"]) == 3
    assert len(ev["conditioning_r2_prior"]) == len(ev["active_dims"])
    assert ev["kid_vae_features"]["subset_size"] == 16
    # the VAE retrained in place with another latent size: resuming is refused in one line
    assert main(["vae", "train", "--objective", "vae", "--n", "16", "--image-size", "32",
                 "--latent-dim", "6", "--batch-size", "8", "--max-steps", "1", "--no-progress",
                 "--out", str(tmp_path / "vae6")]) == 0  # fmt: skip
    assert main(["vae", "select", str(tmp_path / "vae6"), "--n1", "16", "--n2", "8",
                 "--n-phantom", "8", "--no-progress"]) == 0  # fmt: skip
    import shutil

    shutil.rmtree(vae_run)
    shutil.copytree(tmp_path / "vae6", vae_run)
    capsys.readouterr()
    assert main([*TRAIN, "--vae", str(vae_run), "--max-steps", "4", "--out", str(out),
                 "--resume"]) == 2  # fmt: skip
    assert "now gives 6-d" in capsys.readouterr().err
    # the paper's Figure 5 for the diffusion generator: rows are the VAE's eta dims
    figure = tmp_path / "traversal.png"
    assert main(["traversal", "--generator", "diffusion", "--generator-arg",
                 f"path_or_repo_id={out / 'pipeline'}", "--image-size", "32", "--values", "-2",
                 "2", "2", "--out", str(figure)]) == 0  # fmt: skip
    assert str(selection["eta_dims"]) in capsys.readouterr().out and figure.is_file()
    # a run folder written before --vae-z existed conditioned on the encoder's means
    from synthoct_bench.generators.diffusion.run import load_diffusion_run_spec

    record = json.loads((out / "run.json").read_text())
    del record["spec"]["vae_z"]
    (out / "run.json").write_text(json.dumps(record))
    assert load_diffusion_run_spec(out).vae_z == "mean"
