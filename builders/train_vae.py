"""Train the paper's β-VAE (Table 3) on a folder or dataset of images; resumable.

    python builders/train_vae.py --train data/oct/train --val data/oct/test --out runs/vae
    python builders/train_vae.py --train some-user/oct-dataset --out runs/vae --device cuda

Kill it at any time and run the same command again: it resumes from the last
checkpoint in --out. The final weights land in --out/model (load them with
``BetaVAE.from_pretrained``); the loss curves in --out/loss_curves.png.

This is the paper's recipe on the paper's architecture; ``synthoct vae train`` runs
the whole family (objectives, the small architecture, phantom images) and
``synthoct vae evaluate|select`` take its run folder further.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from synthoct_bench.generators.vae.paper import BetaVAEConfig
    from synthoct_bench.generators.vae.training import VAETrainingConfig

    d = VAETrainingConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="image folder, saved dataset or Hub dataset id")
    p.add_argument("--val", default=None, help="validation images (central crop), optional")
    p.add_argument("--image-column", default="image")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--beta-max", type=float, default=d.beta_max)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs after the warm-up")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--alpha", type=float, default=d.alpha)
    p.add_argument("--perceptual-layers", nargs="+", default=list(d.perceptual_layers))
    p.add_argument(
        "--perceptual-weights", nargs="+", type=float, default=list(d.perceptual_weights)
    )
    p.add_argument("--vgg-weights", default=None, help="VGG16 weights file, or 'random'")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    args = p.parse_args(argv)

    from synthoct_bench.generators.vae.training import train_vae

    config = VAETrainingConfig(
        batch_size=args.batch_size,
        learning_rate=args.lr,
        alpha=args.alpha,
        perceptual_weights=tuple(args.perceptual_weights),
        perceptual_layers=tuple(args.perceptual_layers),
        vgg_weights=args.vgg_weights,
        beta_max=args.beta_max,
        warmup_epochs=args.warmup_epochs,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
    )
    result = train_vae(
        args.train,
        args.out,
        config,
        BetaVAEConfig(image_size=args.image_size),
        val_source=args.val,
        device=args.device,
        resume=not args.no_resume,
        image_column=args.image_column,
    )
    last = result["history"][-1] if result["history"] else {}
    print(json.dumps({"step": result["step"], "last": last}, indent=2))
    print(f"model: {args.out / 'model'}  curves: {args.out / 'loss_curves.png'}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
