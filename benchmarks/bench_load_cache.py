"""Bytes of the ``datasets`` Arrow cache after loading every noise level of a dataset.

    python benchmarks/bench_load_cache.py DATASET_DIR [--split train]

Sets ``HF_DATASETS_CACHE`` to a fresh temporary folder before ``datasets`` is
imported, loads ``synthoct_bench.load(DATASET_DIR, noise=k, split=...)`` for
every level the manifest lists, and prints the bytes of the ``*.arrow`` files
written there (the images are the bulk of them). Bytes, not seconds: the figure
does not depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HF_DATASETS_CACHE"] = cache
        import synthoct_bench

        levels = synthoct_bench.read_metadata(args.data).noise_levels
        for k in levels:
            ds = synthoct_bench.load(args.data, noise=k, split=args.split)
            assert len(ds) > 0
        arrows = [p for p in Path(cache).rglob("*.arrow")]
        total = sum(p.stat().st_size for p in arrows)
        shards = sum(p.stat().st_size for p in Path(args.data).glob(f"data/{args.split}-*"))
        print(
            f"levels {list(levels)}, split {args.split}: {len(arrows)} Arrow cache file(s), "
            f"{total:,} bytes (the split's Parquet shards: {shards:,} bytes)"
        )


if __name__ == "__main__":
    main()
