"""Rank a generator's latent dims by the paper's Method 1 and Method 2 (section 2.4).

    python builders/select_latent_dims.py --vae runs/vae/model --out runs/selection
    python builders/select_latent_dims.py --generator phantom --vae runs/vae/model \
        --n1 100000 --n2 2000 --out runs/selection_phantom

With only --vae, the VAE's decoder and encoder are used (the paper's setting).
With --generator, that generator is the decoder and the VAE (if given) the
encoder for Method 1; without --vae only Method 2 runs. Prints both rankings and
whether their top-k dims agree; writes selection.json and selection.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vae", help="saved VAE folder or Hub repo id (decoder and/or encoder)")
    p.add_argument("--revision", default=None, help="Hub revision of --vae")
    p.add_argument("--generator", help="registered generator name used as decoder (e.g. phantom)")
    p.add_argument("--n1", type=int, default=1_000_000, help="Method 1 draws (paper: 1,000,000)")
    p.add_argument("--n2", type=int, default=10_000, help="Method 2 draws (paper: 10,000)")
    p.add_argument("--k", type=int, default=3, help="how many top dims to compare")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True, help="folder for selection.json/.png")
    args = p.parse_args(argv)
    if args.vae is None and args.generator is None:
        p.error("give --vae, --generator, or both")

    from synthoct_bench.generators.metrics import latent_selection as ls

    vae = None
    if args.vae is not None:
        from synthoct_bench.generators.vae.base import load_vae

        vae = load_vae(args.vae, revision=args.revision, device=args.device)
    if args.generator is not None:
        from synthoct_bench.generators import get_generator

        decode = ls.generator_decode_fn(get_generator(args.generator), seed=args.seed)
    else:
        decode = ls.vae_decode_fn(vae, batch_size=args.batch_size)
    encode = ls.vae_encode_fn(vae, batch_size=args.batch_size) if vae is not None else None
    result = ls.select_latent_dims(
        decode,
        encode,
        k=args.k,
        n_method1=args.n1,
        n_method2=args.n2,
        seed=args.seed,
        latent_dim=vae.config.latent_dim if vae is not None else 128,
        batch_size=args.batch_size,
        progress=True,
    )
    print(result.summary())
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"settings": {k: str(v) for k, v in vars(args).items()}, **result.to_dict()}
    tmp = args.out / ".selection.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, args.out / "selection.json")
    ls.plot_selection(result, args.out / "selection.png")
    print(f"wrote {args.out / 'selection.json'} and {args.out / 'selection.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
