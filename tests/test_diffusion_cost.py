"""FLOPs per diffusion image, counted on the meta device, and the GPU peak table."""

from __future__ import annotations

import pytest
import torch
from test_diffusion import tiny_generator

from synthoct_bench.generators.diffusion import sd15_unet_config, sd15_vae_config
from synthoct_bench.generators.diffusion_cost import count_diffusion_cost, peak_tflops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sd15_costs_what_the_published_figures_say():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**sd15_unet_config())
        vae = AutoencoderKL(**sd15_vae_config())
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    cost = count_diffusion_cost(unet, vae)
    # ≈0.80 TFLOP per UNet call and ≈2.5 per VAE decode at 512 px: ≈43 at 50 steps
    assert cost.unet_call_tflop == pytest.approx(0.803, abs=0.001)
    assert cost.vae_decode_tflop == pytest.approx(2.515, abs=0.001)
    assert cost.image_tflop(50) == pytest.approx(42.68, abs=0.01)
    assert cost.image_tflop(20, guidance=True) == pytest.approx(
        40 * cost.unet_call_tflop + cost.vae_decode_tflop
    )


def test_the_meta_count_equals_a_real_forward_pass():
    """Attention through the math backend, whose two matrix products the counter sees (the
    CPU's fused attention kernel has no FLOP formula; the GPU's flash and
    memory-efficient ones have, and count the same 4·s_q·s_kv·d per head)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    gen = tiny_generator()
    cost = count_diffusion_cost(gen.unet, gen.vae)
    side = gen.unet.config.sample_size
    latent = torch.randn(1, 4, side, side)
    cond = torch.randn(1, 77, 768)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        gen.unet(latent, torch.tensor([500]), encoder_hidden_states=cond)
    assert cost.unet_call_tflop * 1e12 == pytest.approx(counter.get_total_flops())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        gen.vae.decode(latent)
    assert cost.vae_decode_tflop * 1e12 == pytest.approx(counter.get_total_flops())
    assert cost.unet_call_tflop > 0 and cost.vae_decode_tflop > 0


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H200", 989.4),
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A10G", 70.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.1),
        ("Some Future GPU", None),
    ],
)
def test_peak_is_looked_up_by_the_most_specific_name(name, peak):
    assert peak_tflops(name) == peak
