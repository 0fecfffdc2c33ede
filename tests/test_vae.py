"""β-VAE (paper Table 3), its perceptual loss and its training recipe, on CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthoct_bench.generators.vae import BetaVAE, BetaVAEConfig, kl_divergence
from synthoct_bench.generators.vae.perceptual import VGG16_RELU_LAYERS, VGGPerceptualLoss
from synthoct_bench.generators.vae.training import (
    VAETrainingConfig,
    augment_batch,
    beta_at,
    load_optimizer_state,
    plot_loss_curves,
    save_optimizer_state,
    train_vae,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


NARROW = BetaVAEConfig(image_size=32, encoder_width=8, decoder_widths=(32, 16, 16, 8, 8, 8))


def layered_images(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """Small OCT-like stand-ins: bright horizontal bands whose depth varies per image."""
    rs = np.random.default_rng(seed)
    rows = np.arange(size)[None, :, None]
    top = rs.uniform(0.3, 0.6, (n, 1, 1)) * size
    img = 0.15 + 0.7 * np.exp(-(((rows - top) / 2.5) ** 2)) + 0.4 * (rows > top + 8)
    img = img + 0.05 * rs.standard_normal((n, size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_paper_architecture_shapes():
    model = BetaVAE().eval()
    conv_channels = [
        (m.in_channels, m.out_channels) for m in model.decoder if isinstance(m, torch.nn.Conv2d)
    ]
    assert conv_channels == [
        (1024, 512), (512, 512), (512, 256), (256, 256), (256, 128), (128, 128),
        (128, 64), (64, 64), (64, 32), (32, 32), (32, 1),
    ]  # fmt: skip
    assert model.fc_decode.out_features == 50176
    assert model.encoder.conv1.in_channels == 1
    from torchvision.models import resnet18

    reference = {k: v.shape for k, v in resnet18().state_dict().items() if not k.startswith("fc.")}
    ours = {k: v.shape for k, v in model.encoder.state_dict().items()}
    assert ours == {**reference, "conv1.weight": torch.Size([64, 1, 7, 7])}
    with torch.no_grad():
        mu, logvar = model.encode(torch.rand(1, 1, 224, 224))
        out = model.decode(mu)
    assert mu.shape == logvar.shape == (1, 128)
    assert out.shape == (1, 1, 224, 224)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_config_validation_and_bad_input():
    with pytest.raises(ValueError, match="multiple of 32"):
        BetaVAEConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown BetaVAE config keys"):
        BetaVAEConfig.from_dict({"latent_dim": 128, "widths": 3})
    model = BetaVAE(NARROW)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        model.encode(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 128\)"):
        model.decode(torch.rand(2, 64))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = BetaVAE(NARROW).eval()
    model.save_pretrained(tmp_path / "vae")
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert cfg["decoder_widths"] == [32, 16, 16, 8, 8, 8]
    loaded = BetaVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config == model.config
    images = layered_images(3, size=40)
    np.testing.assert_array_equal(model.encode_images(images), loaded.encode_images(images))
    z = np.random.default_rng(0).standard_normal((2, 128))
    np.testing.assert_array_equal(model.decode_latents(z), loaded.decode_latents(z))
    with pytest.raises(ValueError, match="save_pretrained"):
        BetaVAE.from_pretrained(tmp_path)
    # the decoder as an ImageGenerator (registry name "vae"), e.g. for Figure 5 traversals
    from synthoct_bench.generators import ImageGenerator, get_generator, traversal_grid

    gen = get_generator("vae", vae=tmp_path / "vae", eta_dims=(1, 2, 3))
    assert isinstance(gen, ImageGenerator) and gen.image_size == 32
    images = gen.generate(z, np.arange(2))
    assert images.dtype == np.uint8 and images.shape == (2, 32, 32)
    np.testing.assert_array_equal(images, np.round(model.decode_latents(z) * 255))
    assert traversal_grid(gen, dims=[1, 2], values=[-1, 0, 1]).ndim == 2
    json.dumps(gen.get_config())


def test_kl_is_zero_at_prior():
    assert float(kl_divergence(torch.zeros(4, 8), torch.zeros(4, 8))) == 0.0
    assert float(kl_divergence(torch.ones(4, 8), torch.zeros(4, 8))) == pytest.approx(4.0)


def test_perceptual_layers_match_torchvision_indices():
    from torchvision.models.vgg import cfgs, make_layers

    reference = make_layers(cfgs["D"])
    loss = VGGPerceptualLoss(("relu1_2", "relu3_3"), weights="random")
    assert loss.indices == (3, 15)
    for name, idx in VGG16_RELU_LAYERS.items():
        assert isinstance(reference[idx], torch.nn.ReLU), name
    for i, layer in enumerate(loss.features):
        assert type(layer) is type(reference[i])
    x = torch.rand(2, 1, 32, 32)
    values = loss(x, x.clone())
    assert values.shape == (2,) and torch.all(values == 0)
    assert torch.all(loss(x, torch.rand(2, 1, 32, 32)) > 0)


def test_perceptual_weights_from_file_and_warning(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    src = VGGPerceptualLoss(("relu2_2",), weights="random", seed=5)
    state = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    save_file(state, str(tmp_path / "vgg.safetensors"))
    loaded = VGGPerceptualLoss(("relu2_2",), weights=tmp_path / "vgg.safetensors", seed=9)
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert torch.equal(src(x, y), loaded(x, y))
    with pytest.raises(ValueError, match="does not exist"):
        VGGPerceptualLoss(weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown VGG16 layers"):
        VGGPerceptualLoss(("relu9_9",))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.warns(UserWarning, match="randomly initialised"):
        VGGPerceptualLoss()


def test_augmentation_flip_and_crop():
    x = torch.rand(6, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x, crop_rows=0, generator=g)  # flips only
    for a, b in zip(x, y, strict=True):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a.flip(-1), b, atol=1e-5)
    # a vertical ramp: the central crop of 4 rows rescales it about the centre
    ramp = torch.linspace(0, 1, 16).view(1, 1, 16, 1).expand(1, 1, 16, 16).contiguous()
    centre = augment_batch(ramp, crop_rows=4, generator=None, train=False)
    assert centre[0, 0, 0, 0] > ramp[0, 0, 0, 0] and centre[0, 0, -1, 0] < ramp[0, 0, -1, 0]
    assert torch.allclose(centre[0, 0, :, 0], centre[0, 0, :, 0].flip(0).neg() + 1, atol=1e-5)
    assert beta_at(0, 10, 0.0376) == 0 and beta_at(5, 10, 0.0376) == pytest.approx(0.0188)
    assert beta_at(50, 10, 0.0376) == pytest.approx(0.0376)


def test_optimizer_state_round_trip(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(4, 3)).sum().backward()
    opt.step()
    save_optimizer_state(opt, tmp_path / "opt.safetensors")
    opt2 = torch.optim.Adam(net.parameters(), lr=5.0)
    load_optimizer_state(opt2, tmp_path / "opt.safetensors")
    assert opt2.param_groups[0]["lr"] == 1e-3
    for p in net.parameters():
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][k], opt2.state[p][k])


def phantom_images(n: int) -> np.ndarray:
    from synthoct_bench.generators import PhantomGenerator
    from synthoct_bench.latent import sample_z

    return PhantomGenerator(image_size=32).generate(sample_z(np.arange(n), seed=0), np.arange(n))


def test_training_lowers_loss_and_resumes_bit_for_bit(tmp_path):
    images = phantom_images(10)
    # from PyTorch's default start (outputs near 0.5), so that 8 steps have a loss to lower
    cfg = dict(log_every=1, checkpoint_every=2, vgg_weights="random", warmup_epochs=1,
               output_bias_init=False)  # fmt: skip
    full = train_vae(
        images,
        tmp_path / "full",
        VAETrainingConfig(max_steps=8, **{**cfg, "checkpoint_every": 100}),
        NARROW,
        val_source=images[:5],
        progress=False,
    )
    for key in ("loss", "mse"):
        curve = [row[key] for row in full["history"]]
        assert np.mean(curve[-3:]) < 0.9 * np.mean(curve[:3]), (key, curve)
    assert [row["step"] for row in full["val_history"]] == [0, 2, 4, 6, 8]
    assert (tmp_path / "full" / "loss_curves.png").stat().st_size > 1000
    assert (tmp_path / "full" / "model" / "model.safetensors").is_file()
    # killed after 6 steps (a checkpoint), then resumed to 8
    train_vae(
        images, tmp_path / "cut", VAETrainingConfig(max_steps=6, **cfg), NARROW, progress=False
    )
    resumed = train_vae(
        images, tmp_path / "cut", VAETrainingConfig(max_steps=8, **cfg), NARROW, progress=False
    )
    assert [r["step"] for r in resumed["history"]] == list(range(1, 9))
    a = BetaVAE.from_pretrained(tmp_path / "full" / "model").state_dict()
    b = BetaVAE.from_pretrained(tmp_path / "cut" / "model").state_dict()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_vae(images[:3], tmp_path / "x", VAETrainingConfig(max_steps=1, **cfg), NARROW)


def test_image_sources_folder_and_dataset(tmp_path):
    import datasets
    from PIL import Image

    from synthoct_bench.generators.vae.training import load_image_source

    images = layered_images(4, size=40)
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / "imgs" / ("sub" if i % 2 else "") / f"{i}.png")
    folder = load_image_source(tmp_path / "imgs", image_size=32)
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in images]})
    ds = ds.cast_column("image", datasets.Image())
    from_ds = load_image_source(ds, image_size=32)
    from_array = load_image_source(images, image_size=32)
    assert len(folder) == len(from_ds) == 4
    x = from_array.get([0, 1, 2, 3])
    assert x.shape == (4, 1, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(from_ds.get([0, 1, 2, 3]), x)
    assert torch.equal(torch.sort(folder.get([0, 1, 2, 3]).flatten(1).sum(1))[0],
                       torch.sort(x.flatten(1).sum(1))[0])  # fmt: skip
    with pytest.raises(ValueError, match="no column"):
        load_image_source(ds, 32, image_column="pixels")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_image_source(tmp_path / "empty", 32)
    with pytest.raises(ValueError, match="uint8"):
        load_image_source(images.astype(np.float32), 32)


def test_loss_curves_draw_a_schedule_panel_only_when_one_is_logged(tmp_path):
    from PIL import Image

    steps = range(1, 6)
    constant = plot_loss_curves([{"step": s, "loss": 1.0 / s} for s in steps], tmp_path / "a.png")
    with_lr = plot_loss_curves(
        [{"step": s, "loss": 1.0 / s, "lr": 1e-3} for s in steps], tmp_path / "b.png"
    )
    # A diffusion run logs no learning rate (its schedule is constant): no empty panel.
    assert Image.open(constant).width < Image.open(with_lr).width
