"""Throughput of latent-conditioned SD generation: images/s, the fraction of the GPU's
peak FLOP rate it reaches, and the wall time for 1.1M images on N GPUs.

    # on a GPU box, SD-1.5-sized random weights (same FLOPs as the real model):
    python benchmarks/bench_diffusion.py --device cuda --dtype bf16 fp16 \
        --scheduler pndm dpm --steps 50 20 --batch-size 8 16 32 --out bench_sd.json
    # the UNet through torch.compile as well as eager:
    python benchmarks/bench_diffusion.py --device cuda --dtype bf16 --compile off on \
        --scheduler pndm --steps 50 --batch-size 16
    # with trained weights:
    python benchmarks/bench_diffusion.py --device cuda --weights runs/sd/pipeline
    # plumbing only, on CPU with the tiny test models:
    python benchmarks/bench_diffusion.py --tiny --device cpu --steps 50 20 --batch-size 1 8

Times ``LatentDiffusionGenerator.generate`` end to end (prompt embedding, noise from
per-image generators, UNet loop, VAE decode, resize to --image-size, uint8), after
one warm-up call (which also compiles). The FLOPs per image are counted, not
estimated (:func:`synthoct_bench.generators.diffusion.cost.count_diffusion_cost`:
SD 1.5 at 512 px is 0.803 TFLOP per UNet call and 2.515 per VAE decode; PNDM's 50
steps make 51 UNet calls, 43.5 TFLOP), so images/s converts to TFLOP/s and to a
fraction of the GPU's dense fp16/bf16 peak, fp32 rows included (``--peak-tflops``
where the GPU is not in the table). The baseline
row is the paper's setting (PNDM, 50 steps); ratios are against it at the same
batch size, dtype and compile setting, measured in the same run. Writes JSON with --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

N_IMAGES_FULL_SCALE = 1_100_000
#: GPU counts the projection for 1.1M images is printed for.
PROJECTION_GPUS = (1, 8, 64)


def build_generator(args, dtype_name: str, scheduler: str, steps: int, batch: int):
    import torch

    from synthoct_bench.generators.diffusion.pipeline import (
        LatentDiffusionGenerator,
        make_scheduler,
    )

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    settings = dict(
        image_size=args.image_size, num_inference_steps=steps, batch_size=batch,
        device=args.device, eta_dims=(),
    )  # fmt: skip
    if args.weights:
        return LatentDiffusionGenerator.from_pretrained(
            args.weights, scheduler=scheduler, torch_dtype=dtype, **settings
        )
    unet, vae = _components(args.tiny, args.device)
    return LatentDiffusionGenerator(unet, vae, make_scheduler(scheduler), dtype=dtype, **settings)


_CACHE: dict[tuple[bool, str], tuple] = {}


def _components(tiny: bool, device: str):
    """SD 1.5's UNet (859.5M params) and VAE from config with random weights, or tiny ones,
    initialised on ``device`` (a GPU draws SD 1.5's random weights in a second)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from synthoct_bench.generators.diffusion.pipeline import sd15_unet_config, sd15_vae_config

    key = (tiny, device)
    if key not in _CACHE:
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
            with torch.device(device):
                unet = UNet2DConditionModel(**sd15_unet_config())
                vae = AutoencoderKL(**sd15_vae_config())
        _CACHE[key] = (unet, vae)
    return _CACHE[key]


def _time_generate(gen, batch: int, batches: int, cuda: bool) -> float:
    """images/s of ``gen.generate`` over ``batches`` full batches, after one warm-up batch."""
    import torch

    from synthoct_bench.latent import sample_z

    z = sample_z(np.arange(batch * batches), seed=0)
    seeds = np.arange(len(z))
    gen.generate(z[:batch], seeds[:batch])
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    gen.generate(z, seeds)
    if cuda:
        torch.cuda.synchronize()
    return len(z) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", nargs="+", choices=["fp16", "bf16", "fp32"], default=["fp16"])
    p.add_argument(
        "--compile",
        nargs="+",
        choices=["off", "on"],
        default=["off"],
        help="run the UNet eager (off), through torch.compile (on), or both",
    )
    p.add_argument("--scheduler", nargs="+", default=["pndm", "dpm"])
    p.add_argument("--steps", type=int, nargs="+", default=[50, 20])
    p.add_argument("--batch-size", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--weights", default=None, help="pipeline folder/repo; default random SD 1.5")
    p.add_argument("--tiny", action="store_true", help="tiny test models (CPU plumbing figure)")
    p.add_argument("--image-size", type=int, default=224, help="output side after the resize")
    p.add_argument("--batches", type=int, default=2, help="timed batches per setting")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the GPU's dense fp16/bf16 peak (default: looked up by its name)",
    )
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    if args.tiny and args.device == "cpu":
        args.dtype = list(dict.fromkeys("fp32" if d == "fp16" else d for d in args.dtype))

    import torch

    from synthoct_bench.generators.diffusion.cost import (
        count_diffusion_cost,
        peak_tflops,
        unet_calls,
    )

    cuda = args.device.startswith("cuda")
    device_name = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    peak = args.peak_tflops or (peak_tflops(device_name) if cuda else None)
    rows, cost = [], None
    grid = itertools.product(args.dtype, args.compile, args.batch_size, args.scheduler, args.steps)
    for dtype, compiled, batch, scheduler, steps in grid:
        gen = build_generator(args, dtype, scheduler, steps, batch)
        if cost is None:
            cost = count_diffusion_cost(gen.unet, gen.vae)
        if compiled == "on":
            gen.unet = torch.compile(gen.unet)
        ips = _time_generate(gen, batch, args.batches, cuda)
        calls = unet_calls(gen.scheduler, steps)
        tflop = cost.image_tflop(calls)
        rows.append(
            {
                "dtype": dtype, "compile": compiled, "scheduler": scheduler, "steps": steps,
                "batch_size": batch, "unet_calls": calls, "images_per_s": ips,
                "image_tflop": tflop,
                "tflops": ips * tflop, "fraction_of_peak": ips * tflop / peak if peak else None,
                "model_resolution": gen.model_resolution,
                "gpu_hours_1.1M": N_IMAGES_FULL_SCALE / ips / 3600,
            }
        )  # fmt: skip
    for row in rows:
        base = [
            r for r in rows
            if (r["batch_size"], r["dtype"], r["compile"])
            == (row["batch_size"], row["dtype"], row["compile"])
            and (r["scheduler"], r["steps"]) == ("pndm", 50)
        ]  # fmt: skip
        row["speedup_vs_pndm50"] = row["images_per_s"] / base[0]["images_per_s"] if base else None
    print(
        f"device {args.device} ({device_name}), peak {peak or '?'} TFLOP/s, "
        f"{'tiny models' if args.tiny else args.weights or 'SD 1.5 config, random weights'}; "
        f"counted {cost.unet_call_tflop:.4g} TFLOP per UNet call, "
        f"{cost.vae_decode_tflop:.4g} per VAE decode"
    )
    print(
        f"{'dtype':>5} {'compile':>7} {'scheduler':>9} {'steps':>5} {'batch':>5} {'img/s':>9} "
        f"{'TFLOP/s':>8} {'of peak':>7} {'GPU-h/1.1M':>10} {'vs PNDM-50':>10}"
    )
    for r in rows:
        ratio = f"{r['speedup_vs_pndm50']:.2f}x" if r["speedup_vs_pndm50"] else "-"
        frac = f"{r['fraction_of_peak']:.1%}" if r["fraction_of_peak"] is not None else "-"
        print(
            f"{r['dtype']:>5} {r['compile']:>7} {r['scheduler']:>9} {r['steps']:5d} "
            f"{r['batch_size']:5d} {r['images_per_s']:9.3f} {r['tflops']:8.1f} {frac:>7} "
            f"{r['gpu_hours_1.1M']:10.1f} {ratio:>10}"
        )
    projection = []
    for steps in sorted({r["steps"] for r in rows}, reverse=True):
        best = max((r for r in rows if r["steps"] == steps), key=lambda r: r["images_per_s"])
        hours = {n: best["gpu_hours_1.1M"] / n for n in PROJECTION_GPUS}
        unit = "GPU" if cuda else "device"
        projection.append({"steps": steps, "best": best, "wall_hours_1.1M": hours})
        setting = f"{best['dtype']}, compile {best['compile']}, {best['scheduler']}, batch "
        print(
            f"1.1M images at {steps} steps ({setting}{best['batch_size']}): "
            + ", ".join(f"{h:.1f} h on {n} {unit}{'s' if n > 1 else ''}" for n, h in hours.items())
        )
    if args.out:
        payload = {
            "device": device_name,
            "peak_tflops": peak,
            "cost": cost.to_dict(),
            "settings": vars(args) | {"out": str(args.out)},
            "rows": rows,
            "projection": projection,
        }
        args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
