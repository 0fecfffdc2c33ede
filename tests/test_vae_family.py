"""The VAE family: seed 003's small conv VAE, the architecture registry, and the trainer
with other objectives, optimizers, learning-rate decay, clipping and phantom images."""

from __future__ import annotations

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
from synthoct_bench.generators.vae_small import SmallConvVAE, SmallConvVAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NARROW = BetaVAEConfig(image_size=32, encoder_width=8, decoder_widths=(32, 16, 16, 8, 8, 8))
SMALL = SmallConvVAEConfig(image_size=32, latent_dim=8)


def test_small_vae_is_seed_003s_network():
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
