"""Which target lets the small diffusion recipe learn from scratch: ε or v, Min-SNR or not.

Trains the small pixel-space generator (``generators.diffusion.small``: the UNet and
cosine schedule of ``synthoct diffusion train``, only the prediction target swapped)
on phantom images conditioned on the phantom's own z (the oracle condition, so no
VAE is needed), with the small recipe's optimiser, batch and EMA, for ``--steps``
optimizer steps each. Then samples the subjects after the training ones (25 DDIM
steps) and reports, per target:

- ``paired_mse_ratio``: MSE of each generated image to the real image of its z,
  over the MSE of the mean of the first 2,000 training images to the same real
  images (< 1: the model learned something the mean image does not know);
- ``gen_bg_mean`` / ``real_bg_mean``: mean brightness of the pixels that are
  background (< 0.02) in the real image, in [0, 1] (a model that cannot find the
  images' brightness leaves them grey).

    .venv/bin/python benchmarks/bench_diffusion_targets.py --image-size 32 --steps 800 \\
        --out runs/diffusion_targets --json benchmarks/results/diffusion_targets_32px.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

#: target name -> (diffusers prediction_type, Min-SNR γ or None)
TARGETS = {
    "eps-5": ("epsilon", 5.0),
    "eps-none": ("epsilon", None),
    "v-5": ("v_prediction", 5.0),
    "v-none": ("v_prediction", None),
}


def run_one(name: str, args: argparse.Namespace) -> dict:
    from diffusers import UNet2DConditionModel

    from synthoct_bench.generators.diffusion.pipeline import (
        LatentDiffusionGenerator,
        make_scheduler,
    )
    from synthoct_bench.generators.diffusion.small import (
        small_scheduler_config,
        small_unet_config,
    )
    from synthoct_bench.generators.diffusion.training import (
        DiffusionTrainingConfig,
        train_diffusion,
    )
    from synthoct_bench.generators.vae.data import PhantomImageSource

    size, n, held = args.image_size, args.n, args.held_out
    everyone = PhantomImageSource(n + held, size, seed=args.seed)
    train = PhantomImageSource(n, size, seed=args.seed)
    z = everyone.latents(np.arange(n + held)).astype(np.float32)
    real = everyone.get(range(n, n + held))[:, 0].numpy()
    mean_image = np.mean([train.get(range(i, i + 500))[:, 0].numpy().mean(0)
                          for i in range(0, 2000, 500)], 0)  # fmt: skip
    target, gamma = TARGETS[name]
    schedule = {**small_scheduler_config(), "prediction_type": target}
    torch.manual_seed(args.seed)
    unet = UNet2DConditionModel(**small_unet_config(size, z.shape[1]))
    generator = LatentDiffusionGenerator(
        unet, None, make_scheduler("ddim", schedule), image_size=size, num_inference_steps=25,
        eta_dims=(0, 1, 2), device="cpu", latent_dim=z.shape[1], prompt_length=1,
    )  # fmt: skip
    training = DiffusionTrainingConfig.small_recipe(
        max_steps=args.steps, snr_gamma=gamma, checkpoint_every=args.steps,
        validation_every=max(args.steps // 4, 1), seed=args.seed,
    )  # fmt: skip
    out = Path(args.out) / f"{size}px-{name}-{args.steps}"
    start = time.perf_counter()
    result = train_diffusion(generator, train, z[:n], out, training, device="cpu",
                             progress=False, eta_dims=(0, 1, 2))  # fmt: skip
    wall = time.perf_counter() - start
    trained = LatentDiffusionGenerator.from_pretrained(
        out / "pipeline", device="cpu", image_size=size, batch_size=held
    )
    images = trained.generate(z[n:], np.arange(held)) / 255.0
    background = real < 0.02
    ratio = ((images - real) ** 2).mean() / ((real - mean_image) ** 2).mean()
    return {
        "target": name, "image_size": size, "steps": args.steps, "wall_s": round(wall),
        "paired_mse_ratio": float(ratio),
        "gen_bg_mean": float(images[background].mean()),
        "real_bg_mean": float(real[background].mean()),
        "final_loss": result["history"][-1]["loss"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--n", type=int, default=10_000, help="training images")
    parser.add_argument("--held-out", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/diffusion_targets")
    parser.add_argument("--json", default="diffusion_targets.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.json)
    rows = json.loads(path.read_text()) if path.is_file() else []
    done = {(r["target"], r["image_size"], r["steps"]) for r in rows}
    for name in args.targets.split(","):
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
        if (name, args.image_size, args.steps) in done:
            continue
        row = run_one(name, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
        path.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
