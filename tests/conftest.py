"""Shared test fixtures (generic: any test module may use them)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Settings of ``tiny_dataset``: small enough for a few seconds on a 2-core CPU, yet with
#: more than one shard in the train split (train 52 → 2 shards, validation 3, test 5).
TINY_BUILD = {
    "n": 60,
    "image_size": 32,
    "shard_size": 30,
    "seed": 0,
    "generator": "phantom",
    "progress": False,
    # a short FOCE (EM phase only): the tests check plumbing, not the fit's optimum
    "fit_options": {"compute_se": False, "em_iter": 5, "max_iter": 0},
}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built, merged dataset folder (60 subjects, 32 px phantom images, all five noise
    levels). Treat it as read-only: it is shared by the whole session."""
    from synthoct_bench.dataset import build

    out = tmp_path_factory.mktemp("tiny") / "dataset"
    build(out, **TINY_BUILD)
    return out
