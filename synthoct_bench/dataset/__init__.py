"""The benchmark dataset: build it, check it, load it, push it.

Layout (DESIGN.md, "Dataset layout on the Hub"): script-free Parquet shards
``data/{split}-{i:05d}-of-{n:05d}.parquet``, one row per subject, a README.md
whose YAML names the configs (``sigma2_{k}``, ``all``, ``latents``) and a
``manifest.json`` with a sha256 per shard.

    from synthoct_bench.dataset import build, verify, load, read_columns
    build("oct-mini", preset="mini", workers=2)
    assert verify("oct-mini").ok
    ds = load("oct-mini", noise=9, split="train")
"""

from synthoct_bench.dataset.build import BuildSummary, build, merge
from synthoct_bench.dataset.layout import PRESETS
from synthoct_bench.dataset.load import (
    dataset_fingerprint,
    load,
    read_columns,
    read_metadata,
)
from synthoct_bench.dataset.records import BuildConfig, Manifest
from synthoct_bench.dataset.verify import VerifyReport, verify
from synthoct_bench.lazy import lazy_exports

#: torch is imported only when the torch Dataset is first used.
_LAZY = {"TorchImageDataset": "synthoct_bench.dataset.torch_data:TorchImageDataset"}

__all__ = [
    "PRESETS",
    "BuildSummary",
    "VerifyReport",
    "build",
    "merge",
    "verify",
    "load",
    "read_columns",
    "read_metadata",
    "dataset_fingerprint",
    "Manifest",
    "BuildConfig",
    "TorchImageDataset",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, eager=__all__)
