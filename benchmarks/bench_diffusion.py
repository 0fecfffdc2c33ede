"""Throughput of latent-conditioned SD generation (images/s) and GPU-hours for 1.1M images.

    # on a GPU box, SD-1.5-sized random weights (same FLOPs as the real model):
    python benchmarks/bench_diffusion.py --device cuda --dtype fp16 \
        --scheduler pndm dpm --steps 50 20 --batch-size 8 16 32
    # with trained weights:
    python benchmarks/bench_diffusion.py --device cuda --weights runs/sd/pipeline
    # plumbing only, on CPU with the tiny test models:
    python benchmarks/bench_diffusion.py --tiny --device cpu --steps 50 20 --batch-size 1 8

Times ``LatentDiffusionGenerator.generate`` end to end (prompt embedding, noise from
per-image generators, UNet loop, VAE decode, resize to --image-size, uint8), after
one warm-up call. The baseline row is the paper's setting (PNDM, 50 steps); ratios
are against it at the same batch size, measured in the same run. Writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

N_IMAGES_FULL_SCALE = 1_100_000


def build_generator(args, scheduler: str, steps: int, batch: int):
    import torch

    from synthoct_bench.generators.diffusion import LatentDiffusionGenerator, make_scheduler

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    settings = dict(
        image_size=args.image_size, num_inference_steps=steps, batch_size=batch,
        device=args.device, eta_dims=(),
    )  # fmt: skip
    if args.weights:
        return LatentDiffusionGenerator.from_pretrained(
            args.weights, scheduler=scheduler, torch_dtype=dtype, **settings
        )
    unet, vae = _components(args.tiny)
    return LatentDiffusionGenerator(unet, vae, make_scheduler(scheduler), dtype=dtype, **settings)


_CACHE: dict[bool, tuple] = {}


def _components(tiny: bool):
    """SD 1.5's UNet (859.5M params) and VAE from config with random weights, or tiny ones."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if tiny not in _CACHE:
        torch.manual_seed(0)
        if tiny:
            unet = UNet2DConditionModel(
                sample_size=8, layers_per_block=1, block_out_channels=(32, 64),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=768, attention_head_dim=8, norm_num_groups=8,
            )  # fmt: skip
            vae = AutoencoderKL(
                down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2,
                block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, sample_size=16,
            )  # fmt: skip
        else:
            unet = UNet2DConditionModel(
                sample_size=64, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                cross_attention_dim=768, attention_head_dim=8,
            )  # fmt: skip
            vae = AutoencoderKL(
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                sample_size=512, scaling_factor=0.18215,
            )  # fmt: skip
        _CACHE[tiny] = (unet, vae)
    return _CACHE[tiny]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    p.add_argument("--scheduler", nargs="+", default=["pndm", "dpm"])
    p.add_argument("--steps", type=int, nargs="+", default=[50, 20])
    p.add_argument("--batch-size", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--weights", default=None, help="pipeline folder/repo; default random SD 1.5")
    p.add_argument("--tiny", action="store_true", help="tiny test models (CPU plumbing figure)")
    p.add_argument("--image-size", type=int, default=224, help="output side after the resize")
    p.add_argument("--batches", type=int, default=2, help="timed batches per setting")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    if args.tiny and args.dtype == "fp16" and args.device == "cpu":
        args.dtype = "fp32"

    import torch

    from synthoct_bench.latent import sample_z

    rows = []
    for batch in args.batch_size:
        for scheduler in args.scheduler:
            for steps in args.steps:
                gen = build_generator(args, scheduler, steps, batch)
                z = sample_z(np.arange(batch * args.batches), seed=0)
                seeds = np.arange(len(z))
                gen.generate(z[:batch], seeds[:batch])  # warm-up
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                gen.generate(z, seeds)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                ips = len(z) / dt
                rows.append(
                    {
                        "scheduler": scheduler, "steps": steps, "batch_size": batch,
                        "images_per_s": ips, "model_resolution": gen.model_resolution,
                        "gpu_hours_1.1M": N_IMAGES_FULL_SCALE / ips / 3600,
                    }
                )  # fmt: skip
    for row in rows:
        same_batch = [r for r in rows if r["batch_size"] == row["batch_size"]]
        base = [r for r in same_batch if r["scheduler"] == "pndm" and r["steps"] == 50]
        row["speedup_vs_pndm50"] = row["images_per_s"] / base[0]["images_per_s"] if base else None
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    )
    print(
        f"device {args.device} ({device_name}), dtype {args.dtype}, "
        f"{'tiny models' if args.tiny else args.weights or 'SD 1.5 config, random weights'}"
    )
    print(
        f"{'scheduler':>9} {'steps':>5} {'batch':>5} {'img/s':>9} {'h/1.1M':>9} {'vs PNDM-50':>10}"
    )
    for r in rows:
        ratio = f"{r['speedup_vs_pndm50']:.2f}x" if r["speedup_vs_pndm50"] else "-"
        print(
            f"{r['scheduler']:>9} {r['steps']:5d} {r['batch_size']:5d} {r['images_per_s']:9.3f} "
            f"{r['gpu_hours_1.1M']:9.1f} {ratio:>10}"
        )
    if args.out:
        payload = {
            "device": device_name,
            "settings": vars(args) | {"out": str(args.out)},
            "rows": rows,
        }
        args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
