"""Latent-conditioned Stable Diffusion 1.5: the paper's image generator (GPU path).

The conditioning of the paper (section 2.2): the 128-d β-VAE latent z replaces
the text encoder's output; it is copied into all 77 rows of the 77×768
``encoder_hidden_states`` and zero-padded to 768 columns. No text encoder, no
tokenizer, and classifier-free guidance off (guidance scale 1): the fine-tuned
UNet never saw an unconditional input.

:class:`LatentDiffusionGenerator` runs the sampling loop of diffusers'
``StableDiffusionPipeline.__call__`` with ``prompt_embeds`` and
``guidance_scale=1.0`` (prepare latents from per-image generators, scale by
``init_noise_sigma``, ``scale_model_input`` -> UNet -> ``scheduler.step``,
VAE decode, ``(x/2 + 0.5).clamp(0, 1)``) directly on the UNet, VAE and
scheduler, because importing the pipeline class needs ``transformers`` for the
text encoder that is not used. Folders it writes keep the pipeline's layout
(``model_index.json``, ``unet/``, ``vae/``, ``scheduler/``), so
``StableDiffusionPipeline.from_pretrained(folder, text_encoder=None,
tokenizer=None, safety_checker=None, feature_extractor=None)`` loads them too;
``tests/test_diffusion.py::test_matches_stable_diffusion_pipeline`` checks that
both give the same images (it runs where ``transformers`` is installed).

One CPU ``torch.Generator`` per image, seeded from the subject's seed, draws
that image's noise, so an image depends on its own z and seed only, not on the
batch or device count (up to float rounding inside batched GPU kernels).
Nothing loads at import time; torch and diffusers are imported here, so
``synthoct_bench.generators`` exposes this module lazily.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthoct_bench.atomic import atomic_write_dir, to_jsonable
from synthoct_bench.devices import resolve_device
from synthoct_bench.generators.base import GENERATOR_CONFIG_NAME
from synthoct_bench.latent import LATENT_DIM, PAPER_ETA_DIMS

__all__ = [
    "PROMPT_EMBED_SHAPE",
    "SCHEDULERS",
    "sd15_scheduler_config",
    "sd15_unet_config",
    "sd15_vae_config",
    "make_scheduler",
    "latent_to_prompt_embeds",
    "LatentDiffusionGenerator",
    "load_latent_diffusion",
]

#: (sequence length, width) of SD 1.5's text-encoder output, which z replaces.
PROMPT_EMBED_SHAPE = (77, 768)

#: Scheduler short names -> diffusers class names.
SCHEDULERS: dict[str, str] = {
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "ddpm": "DDPMScheduler",
}


def sd15_scheduler_config() -> dict[str, Any]:
    """The noise schedule SD 1.5 ships with (PNDM, scaled-linear betas 0.00085-0.012)."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
        "skip_prk_steps": True,
        "set_alpha_to_one": False,
        "prediction_type": "epsilon",
        "clip_sample": False,
    }


def sd15_unet_config() -> dict[str, Any]:
    """SD 1.5's UNet (859.5M parameters, 64×64 latents, 768-wide cross-attention) as
    ``UNet2DConditionModel`` arguments: the architecture, without downloading weights."""
    return {
        "sample_size": 64,
        "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280, 1280),
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    }


def sd15_vae_config() -> dict[str, Any]:
    """SD 1.5's VAE (83.7M parameters, 8× down-sampling, 4 latent channels) as
    ``AutoencoderKL`` arguments."""
    return {
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 4,
        "sample_size": 512,
        "scaling_factor": 0.18215,
    }


def make_scheduler(name: str, base: Any = None) -> Any:
    """A diffusers scheduler by short name (see :data:`SCHEDULERS`) or class name, built
    from ``base``'s config (a scheduler or a dict; default SD 1.5's schedule)."""
    import diffusers

    cls_name = SCHEDULERS.get(name, name)
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"unknown scheduler {name!r}; choose from {sorted(SCHEDULERS)}")
    config = base.config if hasattr(base, "config") else (base or sd15_scheduler_config())
    return cls.from_config(config)


def sampler_name(scheduler: Any) -> str:
    """A scheduler's short name in :data:`SCHEDULERS` (else its class name)."""
    cls = type(scheduler).__name__
    return next((k for k, v in SCHEDULERS.items() if v == cls), cls)


def latent_to_prompt_embeds(
    z: np.ndarray | torch.Tensor, seq_len: int = 77, width: int = 768
) -> torch.Tensor:
    """The paper's conditioning: z (N, d) -> (N, seq_len, width), z in every row, zeros after."""
    z = torch.as_tensor(np.asarray(z) if not torch.is_tensor(z) else z, dtype=torch.float32)
    if z.ndim != 2 or z.shape[1] > width:
        raise ValueError(f"z must have shape (N, d) with d <= {width}, got {tuple(z.shape)}")
    out = torch.zeros(z.shape[0], seq_len, width, dtype=z.dtype, device=z.device)
    out[:, :, : z.shape[1]] = z[:, None, :]
    return out


class LatentDiffusionGenerator:
    """SD 1.5 (or any UNet2DConditionModel + AutoencoderKL) conditioned on z; an ImageGenerator.

    Args:
        unet, vae, scheduler: diffusers components (tests pass tiny ones); ``vae=None``
            denoises in pixel space (the UNet's channels are the image's), as the small
            CPU recipe does (:mod:`.small`).
        image_size: side of the returned images (resized from the model's resolution).
        num_inference_steps: denoising steps (the paper: 50, PNDM).
        eta_dims: latent dims used as random effects (default the paper's).
        batch_size: images per UNet batch.
        device, dtype: default CUDA + float16 when a GPU is present, else CPU + float32.
    """

    def __init__(
        self,
        unet: Any,
        vae: Any,
        scheduler: Any,
        *,
        image_size: int = 224,
        num_inference_steps: int = 50,
        eta_dims: Sequence[int] = PAPER_ETA_DIMS,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        latent_dim: int = LATENT_DIM,
        source: str | None = None,
        prompt_length: int = PROMPT_EMBED_SHAPE[0],
    ) -> None:
        if image_size < 1 or num_inference_steps < 1 or batch_size < 1:
            raise ValueError(
                "image_size, num_inference_steps and batch_size must be >= 1, got "
                f"{image_size}, {num_inference_steps}, {batch_size}"
            )
        width = int(unet.config.cross_attention_dim)
        if latent_dim > width:
            raise ValueError(
                f"latent_dim {latent_dim} exceeds the UNet's cross_attention_dim {width}"
            )
        self.device = resolve_device(device or "auto")
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.unet = _to(unet, self.device, self.dtype).eval().requires_grad_(False)
        self.vae = None if vae is None else _to(vae, self.device, self.dtype).eval()
        if self.vae is not None:
            self.vae.requires_grad_(False)
        self.scheduler = scheduler
        self.image_size = int(image_size)
        self.num_inference_steps = int(num_inference_steps)
        self.eta_dims = tuple(int(d) for d in eta_dims)
        if any(not 0 <= d < latent_dim for d in self.eta_dims):
            raise ValueError(f"eta_dims {list(self.eta_dims)} must lie in 0..{latent_dim - 1}")
        self.batch_size = int(batch_size)
        self.latent_dim = int(latent_dim)
        self.source = source
        if prompt_length < 1:
            raise ValueError(f"prompt_length must be >= 1, got {prompt_length}")
        self.prompt_length = int(prompt_length)
        self.vae_scale_factor = 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)

    @property
    def pixel_space(self) -> bool:
        """Whether the UNet denoises pixels (no AutoencoderKL)."""
        return self.vae is None

    # ---- loading / saving -----------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        revision: str | None = None,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        scheduler: str | None = None,
        num_inference_steps: int | None = None,
        image_size: int = 224,
        eta_dims: Sequence[int] | None = None,
        batch_size: int = 8,
        unet_subfolder: str = "unet",
    ) -> LatentDiffusionGenerator:
        """Load a saved pipeline folder or Hub repo (``unet/``, ``vae/``, ``scheduler/``).

        ``scheduler`` swaps the sampler (same noise schedule); ``unet_subfolder`` picks
        e.g. an EMA copy. Settings saved by :meth:`save_pretrained` fill in what is unset
        (``eta_dims``, the sampler and its steps); a plain SD folder gets the paper's
        PNDM with 50 steps.
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        device = resolve_device(device or "auto")
        dtype = torch_dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        root = str(path_or_repo_id)
        kw = {"revision": revision, "torch_dtype": dtype}
        saved = _read_generator_config(root, revision)
        unet = UNet2DConditionModel.from_pretrained(root, subfolder=unet_subfolder, **kw)
        vae = None
        if not saved.get("pixel_space", False):
            vae = AutoencoderKL.from_pretrained(root, subfolder="vae", **kw)
        base = make_scheduler("pndm").from_pretrained(
            root, subfolder="scheduler", revision=revision
        )
        return cls(
            unet,
            vae,
            make_scheduler(scheduler or saved.get("sampler", "pndm"), base),
            image_size=image_size,
            num_inference_steps=num_inference_steps or int(saved.get("num_inference_steps", 50)),
            eta_dims=eta_dims if eta_dims is not None else saved.get("eta_dims", PAPER_ETA_DIMS),
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            latent_dim=int(saved.get("latent_dim", LATENT_DIM)),
            source=root if revision is None else f"{root}@{revision}",
            prompt_length=int(saved.get("prompt_length", PROMPT_EMBED_SHAPE[0])),
        )

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the pipeline layout (fp32-free: weights in their current dtype), atomically."""
        import diffusers

        def write(tmp: Path) -> None:
            self.unet.save_pretrained(tmp / "unet")
            if self.vae is not None:
                self.vae.save_pretrained(tmp / "vae")
            self.scheduler.save_pretrained(tmp / "scheduler")
            index = {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": diffusers.__version__,
                "unet": ["diffusers", type(self.unet).__name__],
                "vae": [None, None] if self.vae is None else ["diffusers", type(self.vae).__name__],
                "scheduler": ["diffusers", type(self.scheduler).__name__],
                "text_encoder": [None, None],
                "tokenizer": [None, None],
                "safety_checker": [None, None],
                "feature_extractor": [None, None],
                "image_encoder": [None, None],
                "requires_safety_checker": False,
            }
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
            settings = {
                "eta_dims": list(self.eta_dims),
                "latent_dim": self.latent_dim,
                "pixel_space": self.pixel_space,
                "prompt_length": self.prompt_length,
                "sampler": sampler_name(self.scheduler),
                "num_inference_steps": self.num_inference_steps,
            }
            (tmp / GENERATOR_CONFIG_NAME).write_text(json.dumps(settings, indent=2) + "\n")

        return atomic_write_dir(folder, write)

    # ---- generation -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable settings for the dataset card and the shard manifest."""
        import diffusers

        return {
            "name": "latent-diffusion",
            "source": self.source,
            "scheduler": type(self.scheduler).__name__,
            "scheduler_config": to_jsonable(dict(self.scheduler.config)),
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": 1.0,
            "image_size": self.image_size,
            "model_resolution": self.model_resolution,
            "eta_dims": list(self.eta_dims),
            "latent_dim": self.latent_dim,
            "pixel_space": self.pixel_space,
            "prompt_length": self.prompt_length,
            "dtype": str(self.dtype).removeprefix("torch."),
            "diffusers_version": diffusers.__version__,
        }

    @property
    def model_resolution(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    def generate(self, z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """uint8 grayscale images (N, image_size, image_size) for z (N, >= latent_dim) and
        seeds (N,). A model conditioned on a VAE smaller than the dataset's 128-d z takes
        its first ``latent_dim`` columns, as the VAE decoder generator does."""
        z = np.asarray(z)
        seeds = np.asarray(seeds)
        if z.ndim != 2 or z.shape[1] < self.latent_dim:
            raise ValueError(f"z must have shape (N, >= {self.latent_dim}), got {z.shape}")
        z = z[:, : self.latent_dim]
        if seeds.shape != (z.shape[0],) or not np.issubdtype(seeds.dtype, np.integer):
            raise ValueError(
                f"seeds must be an integer array of shape ({z.shape[0]},), got "
                f"{seeds.dtype} {seeds.shape}"
            )
        if not np.all(np.isfinite(z)):
            raise ValueError("z contains NaN or inf")
        out = np.empty((len(z), self.image_size, self.image_size), dtype=np.uint8)
        for start in range(0, len(z), self.batch_size):
            sl = slice(start, start + self.batch_size)
            out[sl] = self._generate_batch(z[sl], seeds[sl])
        return out

    @torch.no_grad()
    def _generate_batch(self, z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        from diffusers.utils.torch_utils import randn_tensor

        n = len(z)
        width = int(self.unet.config.cross_attention_dim)
        embeds = latent_to_prompt_embeds(z, self.prompt_length, width).to(self.device, self.dtype)
        generators = [torch.Generator("cpu").manual_seed(int(s) & (2**63 - 1)) for s in seeds]
        side = int(self.unet.config.sample_size)
        shape = (n, int(self.unet.config.in_channels), side, side)
        latents = randn_tensor(shape, generator=generators, device=self.device, dtype=self.dtype)
        scheduler = self.scheduler
        scheduler.set_timesteps(self.num_inference_steps, device=self.device)
        latents = latents * scheduler.init_noise_sigma
        step_kwargs = {}
        if "generator" in inspect.signature(scheduler.step).parameters:
            step_kwargs["generator"] = generators
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(latents, t)
            noise_pred = self.unet(model_input, t, encoder_hidden_states=embeds).sample
            latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
        if self.vae is None:
            decoded = latents
        else:
            decoded = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        gray = (decoded.float() / 2 + 0.5).clamp(0, 1).mean(dim=1, keepdim=True)
        if gray.shape[-1] != self.image_size:
            gray = F.interpolate(
                gray, size=(self.image_size,) * 2, mode="bilinear", antialias=True
            ).clamp(0, 1)
        return (gray[:, 0] * 255).round().to(torch.uint8).cpu().numpy()


def _to(module: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move a module; cast only when the dtype differs (diffusers warns on every cast)."""
    module = module.to(device)
    return module if module.dtype == dtype else module.to(dtype=dtype)


def _read_generator_config(root: str, revision: str | None) -> dict[str, Any]:
    """The optional synthoct settings saved beside the weights; {} only when the file is
    absent (a plain diffusers folder or repo). An unreadable file is an error, never
    silently replaced by the paper's defaults."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    path = Path(root) / GENERATOR_CONFIG_NAME
    if not Path(root).is_dir():
        try:
            path = Path(hf_hub_download(root, GENERATOR_CONFIG_NAME, revision=revision))
        except EntryNotFoundError:
            return {}
    elif not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); fix or remove it") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(settings).__name__}")
    return settings


def load_latent_diffusion(path_or_repo_id: str, **kwargs: Any) -> LatentDiffusionGenerator:
    """``get_generator("diffusion", path_or_repo_id=...)`` entry point."""
    return LatentDiffusionGenerator.from_pretrained(path_or_repo_id, **kwargs)
