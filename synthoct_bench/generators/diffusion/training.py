"""Train the paper's generator: a UNet on images conditioned on their β-VAE latent (section 2.2).

:func:`train_diffusion` fine-tunes SD 1.5 (the paper's recipe, a GPU's work) or trains
the small pixel-space generator of :mod:`.small` from scratch (the CPU recipe,
:meth:`DiffusionTrainingConfig.small_recipe`). The fine-tune is the recipe of
diffusers' ``train_text_to_image.py`` with the text encoder
replaced by the paper's z -> 77×768 embedding: AdamW lr 1e-5, batch 4, EMA
decay 0.9999 (``EMAModel``, warm-up (1+s)/(10+s)), Min-SNR weighting with
γ = 5 (``compute_snr``), noise offset 0.1, fp16 mixed precision through
accelerate, gradient clipping at 1. The paper ran 116,000 steps.

Every random draw of a step (batch order, the posterior sample of the conditioning z,
the AutoencoderKL posterior sample, noise, noise offset, timesteps) is keyed by
(seed, step) through :mod:`synthoct_bench.rng`, and checkpoints hold the UNet, its
EMA copy, the optimiser state and the step as safetensors + JSON (no pickle), so a
killed run resumes where it stopped.
Validation images (EMA weights) are saved as a PNG grid, the real images of the
same z in the top row.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthoct_bench import rng
from synthoct_bench.atomic import atomic_write_dir
from synthoct_bench.generators.diffusion.pipeline import (
    LatentDiffusionGenerator,
    latent_to_prompt_embeds,
    make_scheduler,
)
from synthoct_bench.generators.vae.training import (
    load_image_source,
    load_optimizer_state,
    plot_loss_curves,
    save_optimizer_state,
)

__all__ = [
    "DiffusionTrainingConfig",
    "vae_conditioning",
    "diffusion_loss",
    "save_image_grid",
    "train_diffusion",
]

#: the CPU recipe's budget: about 50 minutes of 2 cores at 64 px
SMALL_RECIPE_STEPS = 3000


@dataclass
class DiffusionTrainingConfig:
    """Settings of the fine-tuning; defaults are the paper's (and train_text_to_image's)."""

    learning_rate: float = 1e-5
    adam_weight_decay: float = 1e-2
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_steps: int = 116_000
    ema_decay: float = 0.9999
    use_ema: bool = True
    #: Min-SNR weighting γ; None = plain MSE.
    snr_gamma: float | None = 5.0
    noise_offset: float = 0.1
    #: "no", "fp16" or "bf16" (accelerate); the paper trained in fp16.
    mixed_precision: str = "no"
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    #: training resolution; None = the UNet's (sample_size × VAE factor, 512 for SD 1.5).
    resolution: int | None = None
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2
    validation_every: int = 5000
    num_validation_images: int = 8
    validation_inference_steps: int = 50
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "gradient_accumulation_steps",
            "max_steps",
            "checkpoint_every",
            "keep_checkpoints",
            "validation_every",
            "log_every",
            "validation_inference_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(
                f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}"
            )
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @classmethod
    def small_recipe(cls, **overrides: Any) -> DiffusionTrainingConfig:
        """The small generator from scratch on a CPU: AdamW 5e-4 on batches of 32 for
        3,000 steps (a larger rate than the fine-tune's 1e-5, since nothing pretrained
        is there to keep), EMA 0.999, Min-SNR 5 (on the small generator's v target), no
        noise offset (the cosine schedule already reaches pure noise), a checkpoint and
        a sample grid every 500 steps."""
        settings = dict(
            learning_rate=5e-4, batch_size=32, max_steps=SMALL_RECIPE_STEPS, ema_decay=0.999,
            noise_offset=0.0, checkpoint_every=500, validation_every=500,
            num_validation_images=8, validation_inference_steps=25, log_every=25,
        )  # fmt: skip
        return cls(**{**settings, **overrides})


def vae_conditioning(
    vae: Any, source: Any, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ), each (N, latent_dim): the β-VAE posterior q(z | x) of each training image."""
    data = load_image_source(source, vae.config.image_size)
    mus, stds = [], []
    for start in range(0, len(data), batch_size):
        x = data.get(range(start, min(start + batch_size, len(data))))
        mu, std = vae.encode_posterior(x[:, 0].numpy(), batch_size=batch_size)
        mus.append(mu)
        stds.append(std)
    return np.concatenate(mus), np.concatenate(stds)


def _step_generator(seed: int, name: str, step: int) -> torch.Generator:
    s = int(rng.subject_seeds(seed, rng.stream_id(name), np.array([step]))[0])
    return torch.Generator().manual_seed(s)


def diffusion_loss(
    unet: Any,
    vae: Any,
    noise_scheduler: Any,
    pixels: torch.Tensor,
    z: torch.Tensor,
    generator: torch.Generator,
    snr_gamma: float | None = 5.0,
    noise_offset: float = 0.0,
    prompt_length: int = 77,
) -> torch.Tensor:
    """One train_text_to_image loss on pixels (B, C, H, W) in [-1, 1] conditioned on z (B, d);
    ``vae=None`` noises the pixels themselves (the small pixel-space recipe).

    All noise comes from ``generator`` (a CPU generator), so the loss on a fixed
    batch is reproducible, which is what the tests compare before and after training.
    """
    device = pixels.device
    if vae is None:
        latents = pixels
    else:
        with torch.no_grad():
            posterior = vae.encode(pixels.to(vae.dtype)).latent_dist
            eps = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
            latents = (posterior.mean + posterior.std * eps) * vae.config.scaling_factor
    latents = latents.float()
    b, c = latents.shape[:2]
    noise = torch.randn(latents.shape, generator=generator).to(device)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((b, c, 1, 1), generator=generator).to(device)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (b,), generator=generator)
    t = t.to(device)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        raise ValueError(f"unsupported prediction_type {prediction_type!r}")
    width = int(unet.config.cross_attention_dim)
    embeds = latent_to_prompt_embeds(z, prompt_length, width).to(device)
    pred = unet(noisy, t, encoder_hidden_states=embeds).sample.float()
    if snr_gamma is None:
        return F.mse_loss(pred, target.float())
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, t)
    weights = torch.clamp(snr, max=snr_gamma)
    weights = weights / snr if prediction_type == "epsilon" else weights / (snr + 1)
    per_example = F.mse_loss(pred, target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_example * weights).mean()


def save_image_grid(images: np.ndarray, path: str | os.PathLike, columns: int = 4) -> Path:
    """Tile uint8 images (N, H, W) into one grayscale PNG (atomic write)."""
    from PIL import Image

    n, h, w = images.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * h, columns * w), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)
    return path


def _load_components(
    base: Any, device: torch.device, vae_dtype: torch.dtype
) -> tuple[Any, Any, Any]:
    """(unet fp32, frozen vae or None, DDPM noise scheduler) from a generator or a folder /
    repo id."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    if isinstance(base, LatentDiffusionGenerator):
        unet = UNet2DConditionModel.from_config(base.unet.config)
        unet.load_state_dict(base.unet.state_dict())
        vae, sched_config = base.vae, base.scheduler.config
    else:
        root = str(base)
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae")
        sched_config = DDPMScheduler.load_config(root, subfolder="scheduler")
    noise_scheduler = DDPMScheduler.from_config(sched_config)
    if vae is not None:
        vae = vae.to(device, vae_dtype).eval().requires_grad_(False)
    return unet.to(device, torch.float32), vae, noise_scheduler


def train_diffusion(
    base: Any,
    train_source: Any,
    z: np.ndarray,
    output_dir: str | os.PathLike,
    config: DiffusionTrainingConfig | None = None,
    device: str | None = None,
    resume: bool = True,
    progress: bool = True,
    image_column: str = "image",
    eta_dims: Sequence[int] | None = None,
    z_std: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train ``base``'s UNet on ``train_source`` images conditioned on ``z`` (N, d).

    With ``z_std`` (N, d) each step conditions on a fresh posterior sample
    z + z_std·ε instead of z itself (ε keyed by (seed, step)), so that what the UNet
    sees in training has the spread of the prior z ~ N(0, I) it is sampled from when a
    dataset is built: a VAE's inactive dims have μ ≈ 0 but σ ≈ 1.

    ``base`` is a pipeline folder / Hub repo id (SD 1.5 layout: ``unet/``, ``vae/``,
    ``scheduler/``; any text encoder is ignored) or a :class:`LatentDiffusionGenerator`
    (e.g. a fresh :func:`~.small.small_generator`, whose sampler, prompt length and
    η dims the saved pipeline keeps).
    Writes ``output_dir/checkpoints/step-*/``, ``output_dir/validation/step-*.png``,
    ``output_dir/loss_curves.png`` and the final pipeline (EMA weights) in
    ``output_dir/pipeline`` (load it with ``LatentDiffusionGenerator.from_pretrained``).
    """
    from accelerate import Accelerator
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    cfg = config or DiffusionTrainingConfig()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        cpu=device == "cpu",
    )
    dev = accelerator.device
    # the frozen VAE runs in the mixed-precision dtype, as in train_text_to_image
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision)
    vae_dtype = half if half is not None and dev.type == "cuda" else torch.float32
    unet, vae, noise_scheduler = _load_components(base, dev, vae_dtype)
    scale = 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)
    resolution = cfg.resolution or int(unet.config.sample_size) * scale
    channels = int((unet if vae is None else vae).config.in_channels)
    if isinstance(base, LatentDiffusionGenerator):
        sampler = base.scheduler
        prompt_length = base.prompt_length
        eta_dims = base.eta_dims if eta_dims is None else tuple(eta_dims)
    else:
        sampler, prompt_length = make_scheduler("pndm", noise_scheduler), 77
        eta_dims = tuple(eta_dims or ())
    data = load_image_source(train_source, resolution, image_column=image_column)
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) != len(data):
        raise ValueError(
            f"z must have shape ({len(data)}, latent_dim), one row per training image; "
            f"got {z.shape}"
        )
    if z_std is not None:
        z_std = np.asarray(z_std, dtype=np.float32)
        if z_std.shape != z.shape or not np.all(z_std >= 0):
            raise ValueError(
                f"z_std must be non-negative with the shape of z {z.shape}, got {z_std.shape}"
            )
    width = int(unet.config.cross_attention_dim)
    if z.shape[1] > width:
        raise ValueError(
            f"z has {z.shape[1]} dims but the UNet's cross-attention takes at most {width}; "
            "condition on a smaller latent or use a UNet with a wider cross_attention_dim"
        )
    n = len(data)
    if n < cfg.batch_size:
        raise ValueError(f"{n} training images is fewer than one batch of {cfg.batch_size}")
    steps_per_epoch = n // cfg.batch_size
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(
        unet.parameters(), lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay
    )
    ema = None
    if cfg.use_ema:
        ema = EMAModel(
            unet.parameters(),
            decay=cfg.ema_decay,
            model_cls=UNet2DConditionModel,
            model_config=unet.config,
        )
    step, history = 0, []
    ckpts = sorted((output_dir / "checkpoints").glob("step-*")) if resume else []
    ckpts = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    if ckpts:
        ckpt = ckpts[-1]
        unet.load_state_dict(UNet2DConditionModel.from_pretrained(ckpt / "unet").state_dict())
        load_optimizer_state(optimizer, ckpt / "optimizer.safetensors")
        if ema is not None:  # EMAModel.save_pretrained's layout, read without from_config(path)
            ema_unet = UNet2DConditionModel.from_pretrained(ckpt / "unet_ema")
            saved = json.loads((ckpt / "unet_ema" / "config.json").read_text())
            keys = ("decay", "min_decay", "optimization_step", "update_after_step")
            keys += ("use_ema_warmup", "inv_gamma", "power")
            state = {k: saved[k] for k in keys if k in saved}
            state["shadow_params"] = [p.detach().clone() for p in ema_unet.parameters()]
            ema.load_state_dict(state)
            ema.to(dev)
        payload = json.loads((ckpt / "trainer_state.json").read_text())
        step, history = payload["step"], payload["history"]
    unet, optimizer = accelerator.prepare(unet, optimizer)
    unet.train()

    def checkpoint() -> None:
        def write(tmp: Path) -> None:
            accelerator.unwrap_model(unet).save_pretrained(tmp / "unet")
            if ema is not None:
                ema.save_pretrained(tmp / "unet_ema")
            save_optimizer_state(optimizer, tmp / "optimizer.safetensors")
            state = {"step": step, "history": history, "training_config": asdict(cfg)}
            (tmp / "trainer_state.json").write_text(json.dumps(state) + "\n")

        atomic_write_dir(output_dir / "checkpoints" / f"step-{step:09d}", write)
        for old in sorted((output_dir / "checkpoints").glob("step-*"))[: -cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def generator_with_ema(dtype: torch.dtype) -> LatentDiffusionGenerator:
        model = UNet2DConditionModel.from_config(accelerator.unwrap_model(unet).config)
        model.load_state_dict(accelerator.unwrap_model(unet).state_dict())
        if ema is not None:
            ema.copy_to(model.parameters())
        return LatentDiffusionGenerator(
            model,
            vae,
            make_scheduler(type(sampler).__name__, sampler),
            image_size=resolution,
            num_inference_steps=cfg.validation_inference_steps,
            eta_dims=eta_dims,
            batch_size=cfg.num_validation_images,
            device=dev,
            dtype=dtype,
            latent_dim=z.shape[1],
            prompt_length=prompt_length,
        )

    def validate() -> None:
        """Real images (top row) and the EMA model's from the same z (bottom row)."""
        k = min(cfg.num_validation_images, n)
        images = generator_with_ema(vae_dtype).generate(z[:k], np.arange(k))
        real = (data.get(range(k))[:, 0].numpy() * 255).round().astype(np.uint8)
        grid = np.concatenate([real, images])
        save_image_grid(grid, output_dir / "validation" / f"step-{step:09d}.png", columns=k)

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not progress, desc="diffusion train")
    acc, acc_n = 0.0, 0
    micro = 0
    perm, perm_epoch = None, -1
    while step < cfg.max_steps:
        batch_index = step * cfg.gradient_accumulation_steps + micro
        epoch, pos = divmod(batch_index, steps_per_epoch)
        if epoch != perm_epoch:
            keys = rng.uniform(cfg.seed, rng.stream_id("sd_train/order", epoch), np.arange(n), 1)
            perm, perm_epoch = np.argsort(keys[:, 0], kind="stable"), epoch
        idx = perm[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        pixels = (data.get(idx).expand(-1, channels, -1, -1) * 2 - 1).to(dev)
        cond = torch.from_numpy(z[idx])
        if z_std is not None:
            draw = _step_generator(cfg.seed, "sd_train/condition", batch_index)
            cond = cond + torch.from_numpy(z_std[idx]) * torch.randn(cond.shape, generator=draw)
        cond = cond.to(dev)
        with accelerator.accumulate(unet):
            with accelerator.autocast():
                loss = diffusion_loss(
                    unet,
                    vae,
                    noise_scheduler,
                    pixels,
                    cond,
                    _step_generator(cfg.seed, "sd_train/noise", batch_index),
                    cfg.snr_gamma,
                    cfg.noise_offset,
                    prompt_length,
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(unet.parameters(), cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        acc += float(loss.detach())
        acc_n += 1
        micro = (micro + 1) % cfg.gradient_accumulation_steps
        if not accelerator.sync_gradients:
            continue
        if ema is not None:
            ema.step(unet.parameters())
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            history.append({"step": step, "loss": acc / acc_n})
            bar.set_postfix(loss=f"{acc / acc_n:.4g}")
            acc, acc_n = 0.0, 0
        if step % cfg.validation_every == 0 or step == cfg.max_steps:
            validate()
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            checkpoint()
            if history:
                plot_loss_curves(history, output_dir / "loss_curves.png")
    bar.close()
    generator_with_ema(torch.float32).save_pretrained(output_dir / "pipeline")  # fp32 EMA
    return {"step": step, "history": history}
