"""Feeding a torch training loop from a built dataset: the ways a user would try.

    python benchmarks/bench_torch_input.py DATASET_DIR [--noise 9] [--epochs 2]

Iterates the train split in batches of ``--batch-size`` (a torch DataLoader, no
workers, images as float tensors (B, 1, H, W) in [0, 1] with their (B, 3) targets)
``--epochs`` times, each of these ways, and prints images/s per epoch:

- ``datasets`` ``with_format("torch")``: what the ``datasets`` docs show first;
- ``datasets`` ``with_format("numpy")``: PNGs decoded per row to numpy, stacked;
- ``TorchImageDataset``: every PNG decoded once into one uint8 array (its set-up,
  included in the first epoch, is printed separately).

All are measured in the same process on the same machine, so their ratios hold even
when the machine is busy; the absolute figures do not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def _numpy_collate(rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([r["image"] for r in rows]).astype(np.float32) / 255.0
    targets = np.stack([r["target"] for r in rows])
    return torch.from_numpy(images)[:, None], torch.from_numpy(targets)


def _torch_collate(rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([r["image"] for r in rows]).float() / 255.0  # (B, 1, H, W) already
    targets = torch.stack([r["target"] for r in rows])
    return images.reshape(len(rows), 1, *images.shape[-2:]), targets


def _epochs(loader, epochs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        t, n = time.perf_counter(), 0
        for images, targets in loader:
            assert images.ndim == 4 and targets.shape[1] == 3
            n += len(images)
        rates.append(n / (time.perf_counter() - t))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--noise", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import synthoct_bench
    from synthoct_bench.dataset import TorchImageDataset

    # load() names the level's columns alike at every level: eta_ebe is the target
    ds = synthoct_bench.load(args.data, noise=args.noise, split="train")
    ds = ds.select_columns(["image", "eta_ebe"]).rename_column("eta_ebe", "target")
    dl = torch.utils.data.DataLoader
    rows: dict[str, dict] = {}

    for fmt, collate in (("torch", _torch_collate), ("numpy", _numpy_collate)):
        loader = dl(ds.with_format(fmt), batch_size=args.batch_size, collate_fn=collate)
        rows[f"datasets with_format({fmt!r})"] = {"images_per_s": _epochs(loader, args.epochs)}

    t = time.perf_counter()
    tds = TorchImageDataset(args.data, noise=args.noise, split="train")
    setup = time.perf_counter() - t
    rates = _epochs(dl(tds, batch_size=args.batch_size), args.epochs)
    first = len(tds) / (len(tds) / rates[0] + setup)
    rows["TorchImageDataset"] = {"images_per_s": [first, *rates[1:]], "setup_s": setup}

    base = rows["datasets with_format('torch')"]["images_per_s"][-1]
    print(f"{len(ds):,} train images of {args.data}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    print("way  images/s per epoch (first includes set-up)  last epoch vs with_format('torch')")
    for name, row in rows.items():
        rates = ", ".join(f"{r:,.0f}" for r in row["images_per_s"])
        print(f"{name}  {rates}  {row['images_per_s'][-1] / base:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": len(ds), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
