"""How much of z (on the η dims) can be read back from generated images?

    python builders/check_conditioning.py --generator phantom --probe 2000 --out runs/check
    python builders/check_conditioning.py --generator vae --weights runs/vae --image-size 64 \
        --probe 2000 --out runs/check_vae
    python builders/check_conditioning.py --pipeline runs/sd/pipeline --vae runs/vae/model \
        --n 512 --out runs/check_sd

Generates --n images, encodes them with the β-VAE (--vae, its μ) or a ridge
probe fitted on --probe other subjects' images, and prints per-dim MSE and
correlation against shuffled pairs. Writes conditioning.json and conditioning.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", help="registered generator name, e.g. phantom or vae")
    p.add_argument("--weights", default=None,
                   help="--generator vae: a `synthoct vae` run or model folder (its eta dims "
                   "from `synthoct vae select`)")  # fmt: skip
    src.add_argument("--pipeline", help="LatentDiffusionGenerator folder or Hub repo id")
    enc = p.add_mutually_exclusive_group(required=True)
    enc.add_argument("--vae", help="BetaVAE folder or repo id used as the encoder")
    enc.add_argument("--probe", type=int, help="fit a ridge probe on this many other subjects")
    p.add_argument("--n", type=int, default=512, help="subjects to check")
    p.add_argument("--dims", type=int, nargs="+", default=None, help="default: eta dims")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=None,
                   help="diffusion steps (--pipeline; default: the saved ones, else 50)")
    p.add_argument("--scheduler", default=None,
                   help="diffusion scheduler (--pipeline; default: the saved one, else pndm)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import numpy as np

    from synthoct_bench import latent, rng
    from synthoct_bench.generators.metrics.conditioning import (
        conditioning_check,
        fit_linear_probe,
        plot_conditioning,
    )

    if args.generator is not None:
        from synthoct_bench.generators import get_generator

        kwargs = {}
        if args.weights:
            from synthoct_bench.generators.vae.run import run_model_dir

            kwargs["path_or_repo_id"] = str(run_model_dir(args.weights))
        gen = get_generator(args.generator, image_size=args.image_size, **kwargs)
    else:
        from synthoct_bench.generators.diffusion.pipeline import LatentDiffusionGenerator

        gen = LatentDiffusionGenerator.from_pretrained(
            args.pipeline,
            scheduler=args.scheduler,
            num_inference_steps=args.steps,
            image_size=args.image_size,
            device=args.device,
        )
    n_fit = args.probe or 0
    ids = np.arange(n_fit + args.n)
    z = latent.sample_z(ids, args.seed)
    seeds = rng.subject_seeds(args.seed, rng.stream_id("image"), ids)
    if args.vae is not None:
        from synthoct_bench.generators.vae.paper import BetaVAE

        encoder = BetaVAE.from_pretrained(args.vae, device=args.device or "cpu")
    else:
        side = max(s for s in (8, 16, 28, 32) if args.image_size % s == 0)
        encoder = fit_linear_probe(gen.generate(z[:n_fit], seeds[:n_fit]), z[:n_fit], size=side)
    result, mu = conditioning_check(
        gen, encoder, z[n_fit:], seeds[n_fit:], dims=args.dims, seed=args.seed, return_encoded=True
    )
    print(f"{'dim':>5} {'corr':>7} {'shuffled |r| q95':>17} {'mse':>7} {'shuffled mse':>13}")
    for i, d in enumerate(result["dims"]):
        print(
            f"{d:5d} {result['corr'][i]:7.3f} {result['shuffled_abs_corr_q95'][i]:17.3f} "
            f"{result['mse'][i]:7.3f} {result['shuffled_mse'][i]:13.3f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    result["encoder"] = args.vae or f"ridge probe on {n_fit} subjects"
    tmp = args.out / ".conditioning.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out / "conditioning.json")
    plot_conditioning(z[n_fit:], mu, result, args.out / "conditioning.png")
    print(f"wrote {args.out / 'conditioning.json'} and {args.out / 'conditioning.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
