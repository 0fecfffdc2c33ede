"""What one latent-diffusion image costs in FLOPs, counted rather than estimated, and the
peak rates of common GPUs: together the denominator of images/s as a fraction of peak.

The count runs the UNet and the VAE decoder once each on the ``meta`` device under
``torch.utils.flop_counter.FlopCounterMode``: shapes only, no weights and no memory, so
SD 1.5's 860M-parameter UNet is counted in a second on a CPU. It counts what the GPU's
tensor cores do (convolutions, matrix products, and attention as its two matrix
products), two FLOPs per multiply-add, the convention behind published peak rates;
normalisation, activations and the scheduler's arithmetic are left out. SD 1.5 at
512 px: 0.803 TFLOP per UNet call, 2.515 per VAE decode: 42.7 per image at 50 UNet
calls, 43.5 at PNDM's 50 steps, which make 51 calls (:func:`unet_calls`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = ["DiffusionCost", "count_diffusion_cost", "unet_calls", "peak_tflops", "PEAK_TFLOPS"]

#: Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s, from the vendors' data
#: sheets, keyed by a substring of ``torch.cuda.get_device_name()``. Longer keys are
#: tried first, so "H100 PCIe" wins over "H100".
PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,  # SXM
    "GH200": 989.4,
    "A100": 312.0,
    "A10G": 70.0,
    "A10": 125.0,
    "L40S": 362.1,
    "L40": 181.0,
    "L4": 121.0,
    "RTX 4090": 165.2,  # fp32 accumulation, as torch uses
    "V100": 125.0,
    "T4": 65.0,
}


@dataclass(frozen=True)
class DiffusionCost:
    """Counted FLOPs for one image: a UNet call (no guidance) and a VAE decode."""

    unet_call_tflop: float
    vae_decode_tflop: float
    latent_side: int
    text_tokens: int

    def image_tflop(self, unet_calls: int, guidance: bool = False) -> float:
        """TFLOP per image after ``unet_calls`` denoising calls (see :func:`unet_calls`;
        twice as many with classifier-free guidance, which runs the UNet on a
        conditional and an unconditional copy) and one VAE decode."""
        calls = unet_calls * (2 if guidance else 1)
        return calls * self.unet_call_tflop + self.vae_decode_tflop

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unet_calls(scheduler: Any, steps: int) -> int:
    """UNet calls a sampler makes for ``steps`` inference steps: its timesteps (PNDM's
    PLMS start makes 51 of 50 steps and 21 of 20; DPM-Solver++, DDIM and UniPC one a
    step). Asked of a copy, so ``scheduler`` keeps its state."""
    copy = type(scheduler).from_config(scheduler.config)
    copy.set_timesteps(steps)
    return len(copy.timesteps)


def _meta_copy(module: Any) -> Any:
    """The same diffusers model built from its config on the meta device (a
    ``torch.compile`` wrapper is looked through)."""
    module = getattr(module, "_orig_mod", module)
    with torch.device("meta"):
        return type(module).from_config(module.config)


def _count(fn: Any) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return float(counter.get_total_flops())


def count_diffusion_cost(unet: Any, vae: Any, text_tokens: int = 77) -> DiffusionCost:
    """Count one UNet call and one VAE decode at batch 1 for these diffusers models.

    ``unet`` and ``vae`` may hold real weights on any device: only their configs are
    read; ``vae=None`` (a pixel-space model) decodes nothing. ``text_tokens`` is the
    conditioning sequence length (77 for SD 1.5, the length
    :func:`latent_to_prompt_embeds` pads to; 1 for the small recipe).
    """
    unet_m = _meta_copy(unet)
    side = int(unet.config.sample_size)
    latent = torch.empty(1, int(unet.config.in_channels), side, side, device="meta")
    cond = torch.empty(1, text_tokens, int(unet.config.cross_attention_dim), device="meta")
    t = torch.tensor([500], device="meta")
    unet_flops = _count(lambda: unet_m(latent, t, encoder_hidden_states=cond))
    vae_flops = 0.0
    if vae is not None:
        vae_m = _meta_copy(vae)
        z = torch.empty(1, int(vae.config.latent_channels), side, side, device="meta")
        vae_flops = _count(lambda: vae_m.decode(z))
    return DiffusionCost(unet_flops / 1e12, vae_flops / 1e12, side, text_tokens)


def peak_tflops(device_name: str) -> float | None:
    """The dense fp16/bf16 peak of a GPU named like ``torch.cuda.get_device_name()``, or
    None when it is not in :data:`PEAK_TFLOPS` (pass the figure yourself then)."""
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return PEAK_TFLOPS[key]
    return None
