"""The VAE family: the small conv VAE of Soelistyo & Lowe 2024, the architecture registry,
and the trainer with other objectives, optimizers, learning-rate decay, clipping and phantom
images."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from synthoct_bench.generators.vae import (
    ARCHITECTURES,
    BetaVAE,
    BetaVAEConfig,
    VAEBase,
    build_vae,
    get_architecture,
    load_vae,
)
from synthoct_bench.generators.vae.small import SmallConvVAE, SmallConvVAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NARROW = BetaVAEConfig(image_size=32, encoder_width=8, decoder_widths=(32, 16, 16, 8, 8, 8))
SMALL = SmallConvVAEConfig(image_size=32, latent_dim=8)


def test_small_vae_is_the_soelistyo_lowe_network():
    model = SmallConvVAE()
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in convs] == [
        (1, 8, (2, 2)), (8, 16, (2, 2)), (16, 32, (2, 2)), (32, 64, (2, 2)),
    ]  # fmt: skip
    assert model.fc_hidden.out_features == 256
    assert model.fc_mu.out_features == model.fc_logvar.out_features == 32
    dec = [(m.in_channels, m.out_channels) for m in model.decoder if isinstance(m, torch.nn.Conv2d)]
    assert dec == [(64, 32), (32, 16), (16, 8), (8, 1)]
    assert sum(isinstance(m, torch.nn.Upsample) for m in model.decoder) == 4
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        recon, mu, logvar = model(x, generator=torch.Generator().manual_seed(0))
    assert recon.shape == x.shape and mu.shape == logvar.shape == (3, 32)
    assert 0 <= float(recon.min()) and float(recon.max()) <= 1
    # any image and latent size, and colour images
    rgb = SmallConvVAE(SmallConvVAEConfig(image_size=48, latent_dim=5, channels=3))
    assert rgb.decode(torch.zeros(2, 5)).shape == (2, 3, 48, 48)
    assert rgb.encode_images(np.zeros((2, 3, 48, 48), np.uint8)).shape == (2, 5)
    assert rgb.decode_latents(np.zeros((2, 5))).shape == (2, 3, 48, 48)
    with pytest.raises(ValueError, match="multiple of 16"):
        SmallConvVAEConfig(image_size=40)
    with pytest.raises(ValueError, match=r"\(N, 1, 64, 64\)"):
        model.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="unknown SmallConvVAE config keys"):
        SmallConvVAEConfig.from_dict({"latent": 3})


def test_architecture_registry_and_save_load(tmp_path):
    assert set(ARCHITECTURES) == {"paper", "small"}
    assert get_architecture("paper") is BetaVAE and get_architecture("small") is SmallConvVAE
    with pytest.raises(ValueError, match="unknown VAE architecture"):
        get_architecture("big")
    with pytest.raises(ValueError, match="SmallConvVAEConfig"):
        build_vae("small", NARROW)
    torch.manual_seed(0)
    small = build_vae("small", SMALL.to_dict())
    paper = build_vae("paper", NARROW)
    assert isinstance(small, VAEBase) and isinstance(paper, VAEBase)
    small.save_pretrained(tmp_path / "small")
    paper.save_pretrained(tmp_path / "paper")
    cfg = json.loads((tmp_path / "small" / "config.json").read_text())
    assert cfg["_class_name"] == "SmallConvVAE" and cfg["widths"] == [8, 16, 32, 64]
    assert SmallConvVAEConfig.from_dict(cfg) == SMALL
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40), dtype=np.uint8)
    for folder, model in (("small", small), ("paper", paper)):
        loaded = load_vae(tmp_path / folder)
        assert type(loaded) is type(model) and loaded.config == model.config
        np.testing.assert_array_equal(
            loaded.encode_images(images), model.eval().encode_images(images)
        )
    assert isinstance(SmallConvVAE.from_pretrained(tmp_path / "small"), SmallConvVAE)
    with pytest.raises(ValueError, match="holds a SmallConvVAE"):
        BetaVAE.from_pretrained(tmp_path / "small")


# ---- the trainer ------------------------------------------------------------------------------


def test_training_config_round_trip_and_checks():
    from synthoct_bench.generators.vae.objectives import BetaConfig, TCVAEConfig
    from synthoct_bench.generators.vae.training import VAETrainingConfig

    cfg = VAETrainingConfig(objective="tcvae", objective_config={"beta": 4.0}, arch="small",
                            optimizer="rmsprop", lr_decay=0.95, grad_clip=1.0)  # fmt: skip
    assert cfg.objective_config == TCVAEConfig(beta=4.0)
    assert VAETrainingConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    default = VAETrainingConfig()
    assert VAETrainingConfig.from_dict(default.to_dict()) == default
    assert (default.objective, default.arch, default.optimizer) == ("beta", "paper", "adam")
    assert default.lr_decay is None and default.grad_clip is None and default.perceptual
    assert default.objective_settings() == BetaConfig()  # the paper's constants
    assert VAETrainingConfig(perceptual=False).objective_settings().perceptual is False
    assert cfg.learning_rate_at(0, 10) == 1e-3 and cfg.learning_rate_at(25, 10) == 1e-3 * 0.95**2
    # a linear warm-up over the first steps, then the decayed rate
    assert cfg.learning_rate_at(0, 10, warmup_steps=4) == pytest.approx(1e-3 / 4)
    assert cfg.learning_rate_at(3, 10, warmup_steps=4) == pytest.approx(1e-3)
    assert cfg.learning_rate_at(25, 10, warmup_steps=4) == 1e-3 * 0.95**2
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optimizer = "sgd"  # type: ignore[misc]
    for bad, match in (
        ({"objective_config": {"beta": 1.0}}, "leave objective_config None"),
        ({"objective": "wae"}, "unknown objective"),
        ({"max_steps": 0}, "max_steps must be an int >= 1"),
        ({"lr_warmup_steps": -1}, "lr_warmup_steps must be an int >= 0"),
        ({"arch": "huge"}, "unknown VAE architecture"),
        ({"optimizer": "lbfgs"}, "optimizer must be"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"grad_clip": 0.0}, "grad_clip"),
    ):
        with pytest.raises(ValueError, match=match):
            VAETrainingConfig(**bad)


def test_phantom_image_source_is_keyed_by_seed_and_index():
    from synthoct_bench.generators import PhantomGenerator
    from synthoct_bench.generators.vae.training import PhantomImageSource, load_image_source
    from synthoct_bench.latent import image_seeds, sample_z

    src = PhantomImageSource(10, image_size=32, seed=3, offset=100)
    x = src.get([4, 1])
    assert x.shape == (2, 1, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, src.get([1, 4]).flip(0))  # an item does not depend on its batch
    ids = np.array([104, 101])
    expected = PhantomGenerator(image_size=32).generate(sample_z(ids, 3), image_seeds(ids, 3))
    np.testing.assert_array_equal(src.images([4, 1]), expected)  # what a build with seed 3 stores
    assert not np.array_equal(PhantomImageSource(10, 32, seed=4).images([0]), src.images([0]))
    factors, names = src.factors([4, 1])
    assert factors.shape == (2, 21) and names[:3] == ("vertical_position", "tilt", "luminance")
    params = PhantomGenerator(image_size=32).parameters(sample_z(ids, 3))
    np.testing.assert_array_equal(factors[:, 1], params["tilt"])
    assert src.factors([0], names=["tilt"])[0].shape == (1, 1)
    bigger = load_image_source(src, image_size=64)
    assert len(bigger) == 10 and bigger.get([0]).shape == (1, 1, 64, 64)
    assert load_image_source(src, image_size=32) is src
    with pytest.raises(IndexError):
        src.get([10])
    with pytest.raises(ValueError, match="unknown phantom factors"):
        src.factors([0], names=["colour"])


def test_small_vae_trains_a_few_steps(tmp_path):
    from synthoct_bench.generators.vae.training import (
        PhantomImageSource,
        VAETrainingConfig,
        train_vae,
    )

    # from PyTorch's default start, so that 12 steps have a loss to lower
    cfg = VAETrainingConfig(arch="small", perceptual=False, batch_size=8, learning_rate=3e-3,
                            warmup_epochs=0, max_steps=12, log_every=1,
                            output_bias_init=False)  # fmt: skip
    out = train_vae(PhantomImageSource(16, 32), tmp_path / "run", cfg, SMALL, progress=False)
    curve = [row["mse"] for row in out["history"]]
    assert np.mean(curve[-3:]) < 0.8 * np.mean(curve[:3]), curve
    assert set(out["history"][0]) == {"step", "epoch", "mse", "kl", "loss", "beta", "lr"}
    model = load_vae(tmp_path / "run" / "model")
    assert isinstance(model, SmallConvVAE) and model.config == SMALL
    with pytest.raises(ValueError, match="takes a SmallConvVAEConfig"):
        train_vae(PhantomImageSource(16, 32), tmp_path / "x", cfg, NARROW, progress=False)


@pytest.mark.parametrize(
    "settings",
    [
        {"objective": "iwae", "objective_config": {"k": 3}, "optimizer": "rmsprop",
         "lr_decay": 0.5, "grad_clip": 5.0},
        {"objective": "tcvae", "optimizer": "sgd", "momentum": 0.9},
        {"objective": "infovae"},  # Adam, its own clipping at 0.8
        {"objective": "tcvae", "latent_augment": "mixup"},
        {"objective": "vae", "latent_augment": "adaptive"},
        {"objective": "logcosh"},  # its own learning-rate warm-up over 500 steps
    ],
    ids=["iwae-rmsprop-decay-clip", "tcvae-sgd", "infovae", "tcvae-mixup", "vae-adaptive",
         "logcosh-warmup"],
)  # fmt: skip
def test_resume_is_bit_identical_with_other_objectives(tmp_path, settings):
    from synthoct_bench.generators.vae.training import (
        PhantomImageSource,
        VAETrainingConfig,
        train_vae,
    )

    data, val = PhantomImageSource(12, 32), PhantomImageSource(5, 32, offset=12)
    common = dict(arch="small", batch_size=4, log_every=1, checkpoint_every=2, **settings)

    def run(folder, steps, every=2):
        cfg = VAETrainingConfig(max_steps=steps, **{**common, "checkpoint_every": every})
        return train_vae(data, tmp_path / folder, cfg, SMALL, val_source=val, progress=False)

    full = run("full", 6, every=100)
    run("cut", 4)  # killed after a checkpoint at step 4
    resumed = run("cut", 6)
    assert resumed["history"] == full["history"]
    # (the cut run also validated at its last step, 4, which the full run did not)
    steps = {r["step"] for r in full["val_history"]}
    assert [r for r in resumed["val_history"] if r["step"] in steps] == full["val_history"]
    a = load_vae(tmp_path / "full" / "model").state_dict()
    b = load_vae(tmp_path / "cut" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    row = full["history"][-1]
    assert np.isfinite(row["loss"]) and "beta" not in row
    if "lr_decay" in settings:  # 3 steps per epoch, halved each epoch
        assert [r["lr"] for r in full["history"]] == [1e-3] * 3 + [5e-4] * 3
    if settings["objective"] == "logcosh":
        assert [r["lr"] for r in full["history"]] == pytest.approx(
            [1e-3 * (i + 1) / 500 for i in range(6)]
        )
    # a checkpoint of another objective is refused
    other = "vae" if settings["objective"] == "logcosh" else "logcosh"
    with pytest.raises(ValueError, match="other settings"):
        train_vae(data, tmp_path / "cut", VAETrainingConfig(max_steps=8, arch="small",
                  batch_size=4, objective=other), SMALL, progress=False)  # fmt: skip


def test_gradient_clipping_bounds_the_step(tmp_path, monkeypatch):
    from synthoct_bench.generators.vae import training as vae_training
    from synthoct_bench.generators.vae.training import (
        PhantomImageSource,
        VAETrainingConfig,
        train_vae,
    )

    def no_augmentation(*args, **kwargs):
        raise AssertionError("augment=False must not flip or crop")

    monkeypatch.setattr(vae_training, "augment_batch", no_augmentation)
    torch.manual_seed(0)
    before = SmallConvVAE(SMALL).state_dict()
    # from PyTorch's default start, so that the weights move by the one step only
    cfg = VAETrainingConfig(arch="small", objective="vae", optimizer="sgd", learning_rate=0.1,
                            grad_clip=1e-3, batch_size=4, max_steps=1, seed=0,
                            augment=False, output_bias_init=False)  # fmt: skip
    train_vae(PhantomImageSource(4, 32), tmp_path / "clip", cfg, SMALL, progress=False)
    after = load_vae(tmp_path / "clip" / "model").state_dict()
    step = torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before))
    assert float(step) == pytest.approx(0.1 * 1e-3, rel=0.01)  # lr · clip: the norm was cut


def test_converged_is_korkic_2021_relative_change_rule():
    from synthoct_bench.generators.vae.training import converged

    rows = [{"val_mse": 0.1}, {"val_mse": 0.0995}]
    assert converged(rows, 0.01) and not converged(rows, 0.004)
    assert not converged(rows[:1], 0.01)  # nothing to compare with yet
    assert converged([{"val_mse": 0.1}, {"val_mse": 0.1008}], 0.01)  # a rise counts as a move
    assert not converged([{"val_mse": 0.1}, {"val_mse": 0.05}], 0.01)
    plateau = [{"val_mse": m} for m in (0.2, 0.1, 0.0999, 0.09)]
    assert not converged(plateau, 0.01)  # the last epoch moved 10%
    assert converged(plateau[:3], 0.01) and not converged(plateau[:3], 0.01, patience=2)
    assert converged([*plateau, {"val_mse": 0.0899}, {"val_mse": 0.0898}], 0.01, patience=2)


def test_stop_rel_change_ends_the_run_and_resume_keeps_it_ended(tmp_path):
    from synthoct_bench.generators.vae.training import (
        PhantomImageSource,
        VAETrainingConfig,
        train_vae,
    )

    data, val = PhantomImageSource(16, 32), PhantomImageSource(8, 32, offset=16)
    # a tiny learning rate barely moves the validation MSE: the first epoch meets the rule
    cfg = VAETrainingConfig(arch="small", objective="vae", batch_size=8, learning_rate=1e-7,
                            epochs=20, stop_rel_change=0.5, checkpoint_every=100)  # fmt: skip
    out = train_vae(data, tmp_path / "run", cfg, SMALL, val_source=val, progress=False)
    assert out["converged_step"] == 2 and out["step"] == 2 and out["epochs"] == 1
    assert len(out["val_history"]) == 2  # before training and after the first epoch
    again = train_vae(data, tmp_path / "run", cfg, SMALL, val_source=val, progress=False)
    assert again["step"] == 2 and again["converged_step"] == 2  # resumed: already converged
    # resumed under a stricter rule it trains on, to where that rule stops it
    stricter = dataclasses.replace(cfg, stop_patience=3)
    longer = train_vae(data, tmp_path / "run", stricter, SMALL, val_source=val, progress=False)
    assert longer["converged_step"] == longer["step"] == 6
    fresh = train_vae(data, tmp_path / "fresh", stricter, SMALL, val_source=val, progress=False)
    assert fresh["step"] == 6 and fresh["val_history"] == longer["val_history"]
    # a strict rule does not stop: all 20 epochs run
    strict = VAETrainingConfig(arch="small", objective="vae", batch_size=8, learning_rate=3e-3,
                               epochs=3, stop_rel_change=1e-9)  # fmt: skip
    out = train_vae(data, tmp_path / "strict", strict, SMALL, val_source=val, progress=False)
    assert out["converged_step"] is None and out["step"] == 6
    with pytest.raises(ValueError, match="pass val_source"):
        train_vae(data, tmp_path / "x", cfg, SMALL, progress=False)
    # judged only from epoch 2 on: the first epoch's small move does not stop it
    late = dataclasses.replace(cfg, stop_start_epoch=2)
    out = train_vae(data, tmp_path / "late", late, SMALL, val_source=val, progress=False)
    assert out["converged_step"] == out["step"] == 4
    with pytest.raises(ValueError, match="stop_rel_change must be in"):
        VAETrainingConfig(stop_rel_change=1.5)
    with pytest.raises(ValueError, match="stop_start_epoch must be >= 0"):
        VAETrainingConfig(stop_start_epoch=-1)


@pytest.mark.parametrize("arch", ["small", "paper"])
def test_init_output_bias_starts_the_decoder_at_the_mean_intensity(arch):
    torch.manual_seed(0)
    model = build_vae(arch, SMALL if arch == "small" else NARROW).eval()
    z = torch.randn(16, model.config.latent_dim)
    with torch.no_grad():
        before = model.decode(z).mean().item()
        model.init_output_bias(0.09)
        after = model.decode(z).mean().item()
    assert model.decoder[-2].bias.detach().allclose(torch.tensor(np.log(0.09 / 0.91)).float())
    assert abs(before - 0.5) < 0.1 and abs(after - 0.09) < 0.05, (before, after)

    class NoSigmoid(VAEBase):
        decoder = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3))

    with pytest.raises(TypeError, match="must end in a Conv2d with a bias and a Sigmoid"):
        NoSigmoid().init_output_bias(0.1)


def test_a_decoder_started_at_the_mean_intensity_does_not_saturate_black(tmp_path):
    """At 32 px the phantom's mean intensity is about 0.09: from PyTorch's default
    initialisation (outputs near 0.5) the Gaussian likelihood's first Adam steps
    overshoot into a black image whose Sigmoid has saturated; started at the mean
    intensity, the same run reconstructs below the black image's MSE."""
    from synthoct_bench.generators.vae.training import (
        PhantomImageSource,
        VAETrainingConfig,
        train_vae,
    )

    config = SmallConvVAEConfig(image_size=32, latent_dim=8)
    images = PhantomImageSource(256, 32)
    black_mse = float((images.get(np.arange(256)) ** 2).mean())
    mses = {}
    for init in (False, True):
        cfg = VAETrainingConfig(arch="small", objective="vae", batch_size=64, max_steps=60,
                                log_every=20, augment=False, output_bias_init=init)  # fmt: skip
        out = train_vae(images, tmp_path / str(init), cfg, config, progress=False)
        mses[init] = out["history"][-1]["mse"]
    assert mses[False] > 0.9 * black_mse, (mses, black_mse)  # the failure it guards against
    assert mses[True] < 0.8 * black_mse, (mses, black_mse)
