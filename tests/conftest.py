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


@pytest.fixture(scope="session", autouse=True)
def _private_checksum_cache(tmp_path_factory: pytest.TempPathFactory):
    """Verified-shard checksums go to a per-session folder, not the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SYNTHOCT_CACHE_DIR", str(tmp_path_factory.mktemp("checksum_cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built, merged dataset folder (60 subjects, 32 px phantom images, all five noise
    levels). Treat it as read-only: it is shared by the whole session."""
    from synthoct_bench.dataset import build

    out = tmp_path_factory.mktemp("tiny") / "dataset"
    build(out, **TINY_BUILD)
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small torch ops on a shared 2-core box run far faster on one thread.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToyBandGenerator:
    """An ImageGenerator whose band depth follows z[:, 7] and brightness z[:, 2]; nothing
    else shows, so tests know which latent dims an image carries."""

    image_size = 16
    eta_dims = (7, 2)

    def generate(self, z, seeds):
        import numpy as np

        rows = np.arange(16)[None, :, None]
        depth = 8 + 2.5 * np.tanh(z[:, 7] / 2)[:, None, None]
        level = 0.5 + 0.2 * np.tanh(z[:, 2] / 2)[:, None, None]
        speckle = np.stack([np.random.default_rng(int(s)).normal(0, 0.02, (16, 16)) for s in seeds])
        img = level * np.exp(-((rows - depth) ** 2) / 4) + 0.1 + speckle
        return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)

    def get_config(self):
        return {"name": "toy"}


@pytest.fixture
def toy_generator() -> ToyBandGenerator:
    return ToyBandGenerator()
