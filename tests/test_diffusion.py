"""Latent-conditioned Stable Diffusion on CPU with tiny models built from configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthoct_bench.generators.diffusion.pipeline import (
    LatentDiffusionGenerator,
    latent_to_prompt_embeds,
    make_scheduler,
)
from synthoct_bench.generators.diffusion.training import (
    DiffusionTrainingConfig,
    diffusion_loss,
    train_diffusion,
    vae_conditioning,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_generator(**kwargs) -> LatentDiffusionGenerator:
    """UNet (32, 64) with cross_attention_dim 768 (the real padding path), VAE (8, 16): 16 px."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    settings = dict(image_size=24, num_inference_steps=4, batch_size=8, device="cpu")
    return LatentDiffusionGenerator(unet, vae, make_scheduler("pndm"), **{**settings, **kwargs})


def latents(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 128))


def test_prompt_embeds_copy_z_into_every_row():
    z = latents(3)
    e = latent_to_prompt_embeds(z)
    assert e.shape == (3, 77, 768)
    assert torch.equal(e[:, 5, :128], torch.as_tensor(z, dtype=torch.float32))
    assert torch.equal(e[:, 0], e[:, 76]) and torch.count_nonzero(e[:, :, 128:]) == 0
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        latent_to_prompt_embeds(np.zeros((2, 900)))


def test_generation_is_per_subject_deterministic():
    gen = tiny_generator()
    z, seeds = latents(6), np.arange(100, 106)
    a = gen.generate(z, seeds)
    assert a.shape == (6, 24, 24) and a.dtype == np.uint8 and a.std() > 0
    np.testing.assert_array_equal(a, gen.generate(z, seeds))
    gen.batch_size = 4  # batches [0:4], [4:6]
    b = gen.generate(z, seeds)
    assert np.abs(a.astype(int) - b).max() <= 1  # float rounding at most
    c = gen.generate(z[3:5], seeds[3:5])  # a subject alone, in another position
    assert np.abs(a[3:5].astype(int) - c).max() <= 1
    other_seed = gen.generate(z[:1], seeds[:1] + 1)
    other_z = gen.generate(latents(1, seed=9), seeds[:1])
    assert np.abs(other_seed.astype(int) - a[:1]).max() > 1
    assert np.abs(other_z.astype(int) - a[:1]).max() > 1
    with pytest.raises(ValueError, match=r"\(N, >= 128\)"):
        gen.generate(np.zeros((2, 64)), np.arange(2))
    with pytest.raises(ValueError, match="seeds"):
        gen.generate(z, np.arange(5))
    json.dumps(gen.get_config())


def test_save_load_round_trip_and_scheduler_swap(tmp_path):
    from synthoct_bench.generators import get_generator

    gen = tiny_generator(eta_dims=(1, 2, 3))
    z, seeds = latents(3), np.arange(3)
    gen.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["text_encoder"] == [None, None] and index["unet"][1] == "UNet2DConditionModel"
    loaded = get_generator(
        "diffusion", path_or_repo_id=str(tmp_path / "pipe"), image_size=24, num_inference_steps=4
    )
    assert loaded.eta_dims == (1, 2, 3)
    np.testing.assert_array_equal(gen.generate(z, seeds), loaded.generate(z, seeds))
    dpm = LatentDiffusionGenerator.from_pretrained(
        tmp_path / "pipe", scheduler="dpm", num_inference_steps=3, image_size=16, device="cpu"
    )
    assert dpm.get_config()["scheduler"] == "DPMSolverMultistepScheduler"
    assert dpm.generate(z, seeds).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("nope")
    # a settings file that cannot be read is an error, not a silent fall back to defaults
    (tmp_path / "pipe" / "synthoct_generator.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        LatentDiffusionGenerator.from_pretrained(tmp_path / "pipe", device="cpu")


def test_finetuning_lowers_loss_checkpoints_and_resumes(tmp_path):
    from synthoct_bench.generators.vae import BetaVAE, BetaVAEConfig

    gen = tiny_generator()
    rs = np.random.default_rng(0)
    rows = np.arange(16)[None, :, None]
    depth = rs.uniform(5, 11, (8, 1, 1))
    images = (255 * np.exp(-((rows - depth) ** 2) / 3) * np.ones((1, 1, 16))).astype(np.uint8)
    torch.manual_seed(0)
    tiny_vae = BetaVAE(
        BetaVAEConfig(image_size=32, encoder_width=8, decoder_widths=(8, 8, 8, 8, 8, 8))
    ).eval()
    z, z_std = vae_conditioning(tiny_vae, images)  # the encoder's posterior (μ, σ)
    assert z.shape == z_std.shape == (8, 128) and np.all(z_std > 0)

    pixels = torch.from_numpy(images[:, None].astype(np.float32) / 127.5 - 1).expand(-1, 3, -1, -1)

    def fixed_loss(unet) -> float:
        with torch.no_grad():
            return np.mean(
                [
                    float(
                        diffusion_loss(
                            unet,
                            gen.vae,
                            make_scheduler("ddpm", gen.scheduler),
                            pixels,
                            torch.from_numpy(z).float(),
                            torch.Generator().manual_seed(s),
                        )
                    )
                    for s in range(4)
                ]
            )

    before = fixed_loss(gen.unet)
    cfg = dict(
        learning_rate=1e-3,
        batch_size=4,
        checkpoint_every=3,
        validation_every=3,
        validation_inference_steps=2,
        num_validation_images=4,
        log_every=1,
    )
    out = train_diffusion(
        gen, images, z, tmp_path / "ft", DiffusionTrainingConfig(max_steps=6, **cfg), device="cpu",
        progress=False,
    )  # fmt: skip
    assert [h["step"] for h in out["history"]] == list(range(1, 7))
    from diffusers import UNet2DConditionModel

    trained = UNet2DConditionModel.from_pretrained(
        tmp_path / "ft" / "checkpoints" / "step-000000006" / "unet"
    )
    after = fixed_loss(trained)
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "ft" / "validation" / "step-000000006.png").is_file()
    assert (tmp_path / "ft" / "loss_curves.png").is_file()
    final = LatentDiffusionGenerator.from_pretrained(
        tmp_path / "ft" / "pipeline", image_size=16, num_inference_steps=2, device="cpu"
    )
    assert final.generate(z[:2], np.arange(2)).shape == (2, 16, 16)

    # killed at step 3 (a checkpoint) and resumed to 6: same weights as the straight run
    train_diffusion(
        gen, images, z, tmp_path / "cut", DiffusionTrainingConfig(max_steps=3, **cfg),
        device="cpu", progress=False,
    )  # fmt: skip
    train_diffusion(
        gen, images, z, tmp_path / "cut", DiffusionTrainingConfig(max_steps=6, **cfg),
        device="cpu", progress=False,
    )  # fmt: skip
    resumed = UNet2DConditionModel.from_pretrained(
        tmp_path / "cut" / "checkpoints" / "step-000000006" / "unet"
    )
    for (name, a), b in zip(
        trained.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name
    ema_full, ema_cut = (
        UNet2DConditionModel.from_pretrained(
            tmp_path / run / "checkpoints" / "step-000000006" / "unet_ema"
        )
        for run in ("ft", "cut")
    )
    for a, b in zip(ema_full.parameters(), ema_cut.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    for name in ("unet_ema", "optimizer.safetensors", "trainer_state.json"):
        assert (tmp_path / "cut" / "checkpoints" / "step-000000006" / name).exists()
    with pytest.raises(ValueError, match="one row per training image"):
        train_diffusion(gen, images, z[:5], tmp_path / "bad", device="cpu", progress=False)


def test_posterior_conditioning_draws_a_fresh_z_each_step_from_seed_and_step(tmp_path):
    """z_std = 0 trains exactly as the means alone; z_std > 0 changes the run, the same
    way each time, and a shape mismatch is refused."""
    from diffusers import UNet2DConditionModel

    gen = tiny_generator()
    images = np.random.default_rng(1).integers(0, 256, (8, 16, 16), dtype=np.uint8)
    z = latents(8).astype(np.float32)
    cfg = DiffusionTrainingConfig(
        max_steps=2, batch_size=4, learning_rate=1e-3, checkpoint_every=2, validation_every=2,
        validation_inference_steps=1, num_validation_images=2, log_every=1,
    )  # fmt: skip

    def weights(name: str, z_std=None) -> dict[str, torch.Tensor]:
        train_diffusion(gen, images, z, tmp_path / name, cfg, device="cpu", progress=False,
                        z_std=z_std)  # fmt: skip
        folder = tmp_path / name / "checkpoints" / "step-000000002" / "unet"
        return UNet2DConditionModel.from_pretrained(folder).state_dict()

    means, zero = weights("means"), weights("zero", np.zeros_like(z))
    spread, again = weights("spread", np.ones_like(z)), weights("again", np.ones_like(z))
    assert all(torch.equal(means[k], zero[k]) for k in means)
    assert all(torch.equal(spread[k], again[k]) for k in spread)
    assert not all(torch.equal(means[k], spread[k]) for k in means)
    with pytest.raises(ValueError, match="z_std must be non-negative"):
        weights("bad", np.ones((8, 3), np.float32))


def test_matches_stable_diffusion_pipeline(tmp_path):
    """Same images as diffusers' StableDiffusionPipeline (needs transformers to import it)."""
    pytest.importorskip("transformers")
    from diffusers import StableDiffusionPipeline

    gen = tiny_generator(image_size=16, num_inference_steps=3)
    gen.save_pretrained(tmp_path / "pipe")
    pipe = StableDiffusionPipeline.from_pretrained(
        tmp_path / "pipe",
        text_encoder=None,
        tokenizer=None,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    z, seeds = latents(3), np.array([5, 6, 7])
    out = pipe(
        prompt_embeds=latent_to_prompt_embeds(z),
        guidance_scale=1.0,
        num_inference_steps=3,
        generator=[torch.Generator().manual_seed(int(s)) for s in seeds],
        output_type="np",
        height=16,
        width=16,
    ).images
    reference = np.round(out.mean(axis=-1) * 255).astype(int)
    assert np.abs(gen.generate(z, seeds).astype(int) - reference).max() <= 1


class _OracleUNet(torch.nn.Module):
    """The exact denoiser of a one-image data set: predicts ε or v for ``x0`` from x_t."""

    def __init__(self, x0: torch.Tensor, scheduler) -> None:
        from types import SimpleNamespace

        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.x0, self.alphas = x0, scheduler.alphas_cumprod
        self.target = scheduler.config.prediction_type
        self.config = SimpleNamespace(
            cross_attention_dim=4, sample_size=x0.shape[-1], in_channels=1
        )

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, x, t, encoder_hidden_states=None):
        from types import SimpleNamespace

        a, s = self.alphas[int(t)].sqrt(), (1 - self.alphas[int(t)]).sqrt()
        eps = (x - a * self.x0) / s
        return SimpleNamespace(sample=eps if self.target == "epsilon" else a * eps - s * self.x0)


@pytest.mark.parametrize("target", ["v_prediction", "epsilon"])
def test_the_small_recipes_sampler_returns_the_image_of_an_exact_denoiser(target):
    """The saved noise schedule, the sampler and the pixel mapping agree: fed the exact
    denoiser of one image, 25 DDIM steps give that image back to within 1/255 or so."""
    from synthoct_bench.generators.diffusion.small import small_scheduler_config

    side = 16
    ramp = torch.linspace(-1, 1, side * side).reshape(1, 1, side, side)
    x0 = torch.where(ramp < 0, torch.tensor(-1.0), ramp)  # black half, a ramp in the other
    scheduler = make_scheduler("ddim", {**small_scheduler_config(), "prediction_type": target})
    generator = LatentDiffusionGenerator(
        _OracleUNet(x0, scheduler), None, scheduler, image_size=side, num_inference_steps=25,
        eta_dims=(0, 1, 2), device="cpu", latent_dim=4, prompt_length=1,
    )  # fmt: skip
    images = generator.generate(np.zeros((2, 4)), np.array([0, 1])).astype(float)
    expected = ((x0[0, 0] / 2 + 0.5) * 255).round().numpy()
    assert np.abs(images - expected).max() <= 3
