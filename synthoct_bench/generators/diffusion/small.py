"""The paper's generator at CPU size: SD 1.5's classes, smaller, denoising pixels.

The same pieces as SD 1.5 (a diffusers ``UNet2DConditionModel``, a diffusers
scheduler, z copied into ``encoder_hidden_states``), sized to train on two CPU
cores: a 4-level UNet (16, 32, 64, 128 channels, one ResNet block a level,
cross-attention on z at the 8×8 level and the middle block) on one-channel 64 px
images, 3.8M parameters, 0.9 s an optimizer step of 32 images.

Why pixel space and not a small AutoencoderKL: no pretrained autoencoder can be
downloaded here, so one would have to be trained first, a second stage whose
reconstructions would bound the images' fidelity and whose latents the UNet would
have to chase; at 64 px the UNet alone fits the CPU budget. Why one prompt row:
the paper copies z into all 77 rows of the text embedding, and attention over 77
equal keys returns exactly what it returns over one, so ``prompt_length=1`` is the
same network with 77× cheaper cross-attention (a loaded SD 1.5 keeps 77).

The noise schedule is the cosine one (``squaredcos_cap_v2``, Nichol & Dhariwal
2021), which suits small pixel images better than SD's scaled-linear betas, with
samples clipped to the image range. The UNet predicts v (Salimans & Ho 2022), not
SD 1.5's ε: near pure noise an ε-predictor's image estimate (x_t − σε̂)/α divides
its error by α ≈ 0.06, and from scratch on 2 cores it never gets the image's
brightness right. Measured on 32 px phantom images (800 steps of 32, phantom z,
25 DDIM steps, 48 held-out subjects): ε with Min-SNR 5 gave images 7.4× farther
from their own real image than the mean image is, with grey backgrounds (mean
0.30 where the real ones are 0.00); v with the same weighting 0.73×, backgrounds
0.04.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from synthoct_bench.generators.diffusion.pipeline import LatentDiffusionGenerator, make_scheduler
from synthoct_bench.latent import PAPER_ETA_DIMS

__all__ = ["SMALL_SAMPLER", "small_scheduler_config", "small_unet_config", "small_generator"]

#: the sampler of the small recipe and its steps (DDIM, deterministic given the noise)
SMALL_SAMPLER = ("ddim", 25)


def small_scheduler_config() -> dict[str, Any]:
    """The training noise schedule of the small recipe (1,000 cosine steps, v target)."""
    return {
        "num_train_timesteps": 1000,
        "beta_schedule": "squaredcos_cap_v2",
        "prediction_type": "v_prediction",
        "clip_sample": True,
        "clip_sample_range": 1.0,
        "set_alpha_to_one": False,
        "steps_offset": 0,
    }


def small_unet_config(image_size: int = 64, latent_dim: int = 32) -> dict[str, Any]:
    """``UNet2DConditionModel`` arguments of the small recipe: pixels in and out, z as
    ``latent_dim``-wide cross-attention context."""
    if image_size < 8 or image_size % 8:
        raise ValueError(
            f"image_size must be a multiple of 8 (three halvings), e.g. 32 or 64; got {image_size}"
        )
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    return {
        "sample_size": int(image_size),
        "in_channels": 1,
        "out_channels": 1,
        "layers_per_block": 1,
        "block_out_channels": (16, 32, 64, 128),
        "down_block_types": ("DownBlock2D",) * 3 + ("CrossAttnDownBlock2D",),
        "up_block_types": ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * 3,
        "cross_attention_dim": int(latent_dim),
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    }


def small_generator(
    image_size: int = 64,
    latent_dim: int = 32,
    *,
    seed: int = 0,
    eta_dims: Sequence[int] = PAPER_ETA_DIMS,
    unet_config: dict[str, Any] | None = None,
    device: str | None = "cpu",
) -> LatentDiffusionGenerator:
    """A fresh (randomly initialised from ``seed``) small pixel-space generator, the
    starting point of ``synthoct diffusion train`` from scratch."""
    from diffusers import UNet2DConditionModel

    config = unet_config or small_unet_config(image_size, latent_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        unet = UNet2DConditionModel(**config)
    name, steps = SMALL_SAMPLER
    return LatentDiffusionGenerator(
        unet,
        None,
        make_scheduler(name, small_scheduler_config()),
        image_size=int(config["sample_size"]),
        num_inference_steps=steps,
        eta_dims=tuple(eta_dims),
        device=device,
        latent_dim=int(latent_dim),
        prompt_length=1,
    )
