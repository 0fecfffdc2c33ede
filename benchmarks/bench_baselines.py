"""Throughput of the ResNet18 baseline's training loop: in-memory batches vs per-item PNG decoding.

What a user would otherwise write is the torchvision habit: a Dataset that decodes
one PNG per item every epoch, resized per item, fed through a DataLoader. The
baseline's loop decodes every image once, keeps uint8 arrays at the training
resolution, and slices batches. Both run the same ResNet18 steps (Adam, MSE),
so the ratio is what the data path costs.

    .venv/bin/python benchmarks/bench_baselines.py            # CPU, 64 and 224 px
    .venv/bin/python benchmarks/bench_baselines.py --device cuda --sizes 224 --steps 50

Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from synthoct_bench.baselines.resnet import ResNet18Regressor, ResNetConfig
from synthoct_bench.baselines.training import ArrayImageDataset, resize_images
from synthoct_bench.generators import PhantomGenerator
from synthoct_bench.latent import sample_z


def phantom_pngs(n: int, seed: int = 0) -> list[bytes]:
    ids = np.arange(n)
    images = PhantomGenerator(image_size=224).generate(sample_z(ids, seed), ids)
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


class PngDataset(torch.utils.data.Dataset):
    """The usual per-item path: decode + resize one PNG in __getitem__."""

    def __init__(self, pngs: list[bytes], targets: np.ndarray, size: int) -> None:
        self.pngs, self.targets, self.size = pngs, torch.from_numpy(targets), size

    def __len__(self) -> int:
        return len(self.pngs)

    def __getitem__(self, i: int):
        im = np.asarray(Image.open(io.BytesIO(self.pngs[i])).convert("L"), dtype=np.float32)
        x = torch.from_numpy(im / 255.0)[None, None]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return x[0], self.targets[i]


def train_steps(batches, device, size: int, steps: int) -> float:
    torch.manual_seed(0)
    model = ResNet18Regressor(ResNetConfig(input_size=size)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == 2:  # warm-up steps excluded
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, done = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        loss = F.mse_loss(model.forward_standardised(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += x.shape[0]
        if i + 1 >= steps + 2:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,224")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive path")
    args = p.parse_args()
    device = torch.device(args.device)
    n = args.batch_size * (args.steps + 2)
    pngs = phantom_pngs(n)
    targets = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    for size in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("L")) for b in pngs])
        arrays = ArrayImageDataset(resize_images(decoded, size), targets)
        prep_s = time.perf_counter() - t0
        order = torch.arange(n)
        ours = train_steps(
            (arrays.batch(order[i : i + args.batch_size]) for i in range(0, n, args.batch_size)),
            device,
            size,
            args.steps,
        )
        loader = torch.utils.data.DataLoader(
            PngDataset(pngs, targets, size), batch_size=args.batch_size, num_workers=args.workers
        )
        naive = train_steps(iter(loader), device, size, args.steps)
        print(
            json.dumps(
                {
                    "input_size": size,
                    "batch_size": args.batch_size,
                    "device": str(device),
                    "threads": torch.get_num_threads(),
                    "ours_images_per_s": round(ours, 1),
                    "per_item_png_images_per_s": round(naive, 1),
                    "ratio": round(ours / naive, 2),
                    "one_time_decode_s_per_1k_images": round(prep_s / n * 1000, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
