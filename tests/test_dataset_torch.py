"""The torch Dataset / DataLoader helper over a built split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthoct_bench.dataset import read_columns
from synthoct_bench.dataset.torch_data import TorchImageDataset, make_dataloader
from synthoct_bench.dataset.writer import decode_png


def test_items_are_unit_range_images_and_ebe_targets(tiny_dataset: Path):
    ds = TorchImageDataset(tiny_dataset, noise=9, split="test")
    assert len(ds) == 5
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0
    cols = read_columns(tiny_dataset, "test", ["subject_id", "eta_ebe_s9", "image"])
    np.testing.assert_array_equal(y.numpy(), cols["eta_ebe_s9"][0])
    np.testing.assert_array_equal(ds.subject_ids, cols["subject_id"])
    raw = decode_png(cols["image"][:1])[0]
    np.testing.assert_allclose(x[0].numpy(), raw / 255.0, atol=1e-7)


def test_resize_transform_and_other_targets(tiny_dataset: Path):
    flips = TorchImageDataset(
        tiny_dataset,
        noise=0,
        split="validation",
        input_size=48,
        transform=lambda t: torch.flip(t, dims=[-1]),
        target="eta",
    )
    x, y = flips[1]
    assert x.shape == (1, 48, 48)
    eta = read_columns(tiny_dataset, "validation", ["eta"])["eta"]
    np.testing.assert_array_equal(y.numpy(), eta[1])
    lazy = TorchImageDataset(tiny_dataset, split="validation", target=None, cache_limit_bytes=0)
    eager = TorchImageDataset(tiny_dataset, split="validation", target=None)
    assert torch.equal(lazy[2], eager[2])
    with pytest.raises(ValueError, match="unknown target"):
        TorchImageDataset(tiny_dataset, target="eta_pred")
    with pytest.raises(ValueError, match="it has 0, 1, 9, 18, 49"):
        TorchImageDataset(tiny_dataset, noise=3)


def test_dataloader_batches_and_is_reproducible(tiny_dataset: Path):
    a = make_dataloader(tiny_dataset, noise=9, split="train", batch_size=16, seed=3)
    b = make_dataloader(tiny_dataset, noise=9, split="train", batch_size=16, seed=3)
    xa, ya = next(iter(a))
    xb, yb = next(iter(b))
    assert xa.shape == (16, 1, 32, 32) and ya.shape == (16, 3)
    assert torch.equal(ya, yb)
    assert sum(len(batch[1]) for batch in a) == 52
