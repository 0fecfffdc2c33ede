"""FLOPs per diffusion image, counted on the meta device, and the GPU peak table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_diffusion import tiny_generator

from synthoct_bench.generators.diffusion.cost import (
    count_diffusion_cost,
    peak_tflops,
    unet_calls,
)
from synthoct_bench.generators.diffusion.pipeline import (
    make_scheduler,
    sd15_unet_config,
    sd15_vae_config,
)

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
    assert cost.image_tflop(unet_calls(make_scheduler("pndm"), 50)) == pytest.approx(
        43.48, abs=0.01
    )
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
    ("scheduler", "steps", "calls"),
    [("pndm", 50, 51), ("pndm", 20, 21), ("dpm", 20, 20), ("ddim", 50, 50), ("unipc", 25, 25)],
)
def test_unet_calls_are_the_samplers_timesteps(scheduler, steps, calls):
    sched = make_scheduler(scheduler)
    assert unet_calls(sched, steps) == calls
    gen = tiny_generator(num_inference_steps=steps, batch_size=1)
    gen.scheduler = sched
    seen = []
    gen.unet.register_forward_hook(lambda *_: seen.append(1))
    gen.generate(np.zeros((1, 128)), np.arange(1))
    assert len(seen) == calls


def test_a_compiled_unet_is_counted_as_itself():
    gen = tiny_generator()
    plain = count_diffusion_cost(gen.unet, gen.vae)
    assert count_diffusion_cost(torch.compile(gen.unet), gen.vae) == plain


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H200", 989.4),
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A10G", 70.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.1),
        ("Some Future GPU", None),
    ],
)
def test_peak_is_looked_up_by_the_most_specific_name(name, peak):
    assert peak_tflops(name) == peak


def test_the_diffusion_benchmark_runs_on_the_cpu_and_counts_each_samplers_calls(tmp_path):
    """The benchmark's plumbing, with the tiny models: one row per (dtype, sampler), fp16
    folded into fp32 on the CPU, TFLOP from the sampler's own UNet calls."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_diffusion.py"
    spec = importlib.util.spec_from_file_location("bench_diffusion", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    argv = ["--tiny", "--device", "cpu", "--dtype", "fp16", "fp32", "--scheduler", "pndm", "dpm"]
    argv += ["--steps", "3", "--batch-size", "1", "--batches", "1", "--image-size", "16"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["scheduler"]: r for r in result["rows"]}
    assert [r["dtype"] for r in result["rows"]] == ["fp32", "fp32"]
    assert rows["pndm"]["unet_calls"] == 4 and rows["dpm"]["unet_calls"] == 3
    cost = result["cost"]
    for r in rows.values():
        want = r["unet_calls"] * cost["unet_call_tflop"] + cost["vae_decode_tflop"]
        assert r["image_tflop"] == pytest.approx(want)
        assert r["tflops"] == pytest.approx(r["images_per_s"] * want)
        assert r["fraction_of_peak"] is None  # a CPU has no entry in the peak table
    assert rows["dpm"]["speedup_vs_pndm50"] is None  # no PNDM-50 row in this run
