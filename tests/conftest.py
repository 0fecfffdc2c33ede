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


@pytest.fixture(scope="session")
def zero_submission(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid submission to ``tiny_dataset``: zeros for every test subject at σ² = 9."""
    import numpy as np

    from synthoct_bench.dataset import read_columns
    from synthoct_bench.scoring import write_submission

    ids = read_columns(tiny_dataset, "test", ["subject_id"])["subject_id"]
    path = tmp_path_factory.mktemp("zero_submission") / "sub.parquet"
    write_submission(path, ids, np.zeros((ids.size, 3)), noise=9, split="test",
                     dataset=tiny_dataset)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small torch ops on a shared 2-core box run far faster on one thread.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: Noise levels of ``seeds_folder``.
SEED_LEVELS = (0, 1, 9, 18, 49)


def seed_submission(
    folder: Path,
    data: Path,
    noise: int,
    seed: int,
    model: str = "mine",
    tied: bool = True,
    sd: float = 0.3,
) -> Path:
    """Oracle predictions plus noise drawn with ``seed``: one training seed of ``model``
    (``tied``: the file records the dataset's fingerprint)."""
    import numpy as np

    from synthoct_bench.dataset import read_columns
    from synthoct_bench.scoring import write_submission

    cols = read_columns(data, "test", ["subject_id", "eta"])
    oracle = cols["eta"].astype(np.float64) / np.sqrt(1 + noise)
    pred = oracle + np.random.default_rng(seed).normal(0.0, sd, oracle.shape)
    path = folder / f"{model}_seed{seed}_s{noise}.parquet"
    return write_submission(
        path,
        cols["subject_id"],
        pred,
        noise=noise,
        split="test",
        model=model,
        dataset=data if tied else None,
    )


@pytest.fixture(scope="session")
def seeds_folder(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three training seeds of model "mine" at every level, written in glob order s0, s1,
    s18, s49, s9 (file names sort by level as text)."""
    folder = tmp_path_factory.mktemp("seeds")
    for k in SEED_LEVELS:
        for seed in (1, 2, 3):
            seed_submission(folder, tiny_dataset, k, seed)
    return folder


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
