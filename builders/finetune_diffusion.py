"""Fine-tune the SD 1.5 UNet on OCT images conditioned on their β-VAE latent (paper 2.2).

    python builders/finetune_diffusion.py --base path/to/stable-diffusion-v1-5 \
        --train data/oct/train --vae runs/vae/model --out runs/sd --mixed-precision fp16

--base is a diffusers folder or Hub repo id with unet/, vae/ and scheduler/
(text encoder and tokenizer are ignored). Conditioning: the β-VAE encoder's μ of
each training image (--vae), or a .npy file of z (N, 128) in the order of the
images (--z). Run the same command again to resume from the last checkpoint.
The result (EMA weights) lands in --out/pipeline; load it with
``LatentDiffusionGenerator.from_pretrained``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from synthoct_bench.generators.diffusion.training import DiffusionTrainingConfig

    d = DiffusionTrainingConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="SD 1.5 folder or Hub repo id")
    p.add_argument("--train", required=True, help="image folder, saved dataset or Hub dataset")
    p.add_argument("--image-column", default="image")
    cond = p.add_mutually_exclusive_group(required=True)
    cond.add_argument("--vae", help="BetaVAE folder or repo id: condition on its μ")
    cond.add_argument("--z", type=Path, help=".npy file of z (N, 128), one row per image")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=None, help="'cpu' to force CPU; default: accelerate's")
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.gradient_accumulation_steps)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--snr-gamma", type=float, default=d.snr_gamma, help="<= 0 turns it off")
    p.add_argument("--noise-offset", type=float, default=d.noise_offset)
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=d.mixed_precision)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--resolution", type=int, default=None, help="default: the UNet's (512)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--validation-every", type=int, default=d.validation_every)
    p.add_argument("--validation-steps", type=int, default=d.validation_inference_steps)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-resume", action="store_true")
    args = p.parse_args(argv)

    import numpy as np

    from synthoct_bench.generators.diffusion.training import train_diffusion, vae_conditioning

    if args.z is not None:
        z = np.load(args.z, allow_pickle=False)
    else:
        from synthoct_bench.generators.vae.paper import BetaVAE

        device = args.device or ("cuda" if _cuda() else "cpu")
        vae = BetaVAE.from_pretrained(args.vae, device=device)
        z = vae_conditioning(vae, args.train)
        del vae
    config = DiffusionTrainingConfig(
        learning_rate=args.lr,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        max_steps=args.max_steps,
        ema_decay=args.ema_decay,
        use_ema=not args.no_ema,
        snr_gamma=args.snr_gamma if args.snr_gamma > 0 else None,
        noise_offset=args.noise_offset,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        resolution=args.resolution,
        checkpoint_every=args.checkpoint_every,
        validation_every=args.validation_every,
        validation_inference_steps=args.validation_steps,
        log_every=args.log_every,
        seed=args.seed,
    )
    result = train_diffusion(
        args.base,
        args.train,
        z,
        args.out,
        config,
        device=args.device,
        resume=not args.no_resume,
        image_column=args.image_column,
    )
    print(f"step {result['step']}; pipeline: {args.out / 'pipeline'}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
