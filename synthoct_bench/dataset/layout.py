"""Where every subject goes: presets, splits, shard plan and column names.

Subject ids are global indices 0..N-1. Splits are contiguous (train first,
then validation, then test) and each split is cut into fixed-size shards
``data/{split}-{i:05d}-of-{n:05d}.parquet`` (the Hub layout of DESIGN.md), so
a shard is fully described by (split, index, first id, rows) and can be rebuilt
alone by any worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "PRESETS",
    "FULL_SPLITS",
    "SPLIT_NAMES",
    "ShardSpec",
    "split_sizes",
    "resolve_splits",
    "default_shard_size",
    "plan_shards",
    "shard_path",
    "level_column",
    "check_level",
    "parse_level_column",
    "noise_columns",
    "shared_columns",
    "all_columns",
    "LATENT_COLUMNS",
    "config_name",
    "config_columns",
    "parse_noise_levels",
    "explicit_split_sizes",
    "parse_splits",
    "BLIND_SPLIT",
    "BLIND_CONFIG",
    "BLIND_COLUMNS",
    "REFERENCES_DIR",
    "references_path",
    "reference_columns",
]

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
#: The paper's full-scale splits (section 3): 950k / 50k / 100k.
FULL_SPLITS: dict[str, int] = {"train": 950_000, "validation": 50_000, "test": 100_000}

#: Columns every noise level shares.
SHARED_COLUMNS: tuple[str, ...] = ("subject_id", "image", "time", "eta")
#: Columns of the "latents" config (z is stored in the same shards; Parquet reads only
#: the selected columns, so other configs never pay for it).
LATENT_COLUMNS: tuple[str, ...] = ("subject_id", "z", "eta")
#: Per-level column stems: the stored name is ``level_column(stem, k)``, e.g. eta_ebe_s9.
LEVEL_STEMS: tuple[str, ...] = ("eta_noisy", "eta_ebe", "obs")
_LEVEL_SUFFIX = "_s"

#: The split a blind build (``build(..., blind_test=True)``) publishes without references.
BLIND_SPLIT = "test"
#: Its public columns: what a model needs to predict, nothing to score against.
BLIND_COLUMNS: tuple[str, ...] = ("subject_id", "image")
#: The card config that reads the blind split (the other configs list the other splits).
BLIND_CONFIG = "blind_test"
#: Where a blind build writes the references: beside ``data/``, never uploaded.
REFERENCES_DIR = "references"


@dataclass(frozen=True)
class ShardSpec:
    """One Parquet shard: ``rows`` subjects with ids ``first_id .. first_id + rows - 1``."""

    split: str
    index: int
    count: int
    first_id: int
    rows: int

    @property
    def last_id(self) -> int:
        return self.first_id + self.rows - 1

    @property
    def path(self) -> str:
        return shard_path(self.split, self.index, self.count)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}"


def split_sizes(n: int) -> dict[str, int]:
    """Train / validation / test sizes for n subjects in the paper's 950:50:100 ratio."""
    if n < 3:
        raise ValueError(f"need at least 3 subjects (one per split), got n={n}")
    total = sum(FULL_SPLITS.values())
    validation = max(1, round(n * FULL_SPLITS["validation"] / total))
    test = max(1, round(n * FULL_SPLITS["test"] / total))
    train = n - validation - test
    return {"train": train, "validation": validation, "test": test}


def explicit_split_sizes(splits: Mapping[str, int]) -> dict[str, int]:
    """Validate user-given split sizes, e.g. a larger test split to resolve small R² values."""
    unknown = sorted(set(splits) - set(SPLIT_NAMES))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; splits are {', '.join(SPLIT_NAMES)}")
    sizes = {name: int(splits.get(name, 0)) for name in SPLIT_NAMES}
    small = [name for name, size in sizes.items() if size < 1]
    if small:
        raise ValueError(
            f"every split needs at least one subject; give a size for {', '.join(small)} "
            "(--splits train=N,validation=N,test=N)"
        )
    return sizes


def parse_splits(text: str) -> dict[str, int]:
    """Parse ``"train=2000,validation=1000,test=4000"`` into split sizes."""
    sizes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(
                f"bad split size {part!r}; write e.g. train=2000,validation=1000,test=4000"
            )
        sizes[name.strip()] = int(value)
    return explicit_split_sizes(sizes)


#: Named dataset sizes, as split sizes. ``small`` and ``full`` keep the paper's
#: 950:50:100. ``mini``'s test split is 2,000 subjects, not the proportional 200, so that
#: it can be scored: at noise 49 the oracle's R² interval excluded the average baseline's
#: in 40 of 40 seeds with 2,000 test subjects, 37/40 with 1,000 and 15/40 with 200
#: (synthetic oracle and average predictions scored with 300 resamples per seed).
PRESETS: dict[str, dict[str, int]] = {
    "mini": {"train": 1_900, "validation": 100, "test": 2_000},
    "small": split_sizes(55_000),
    "full": dict(FULL_SPLITS),
}


def resolve_splits(preset: str | None, n: int | None) -> dict[str, int]:
    """Split sizes from ``n`` (wins; 950:50:100) or a named preset."""
    if n is not None:
        if int(n) < 3:
            raise ValueError(f"n must be >= 3 (one subject per split), got {n}")
        return split_sizes(int(n))
    if preset is None:
        raise ValueError(f"give a preset ({', '.join(PRESETS)}) or n")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[preset])


def default_shard_size(image_size: int, n: int | None = None) -> int:
    """Rows per shard: at most ≈500 MB (224×224 PNG B-scans take ≈45 KB, REFERENCE.md),
    and for small datasets about n/16 (at least 500 rows) so that workers share the load."""
    by_bytes = int(max(100, min(50_000, 10_000 * (224 / float(image_size)) ** 2 // 100 * 100)))
    if n is None:
        return by_bytes
    by_count = max(500, math.ceil(n / 16 / 100) * 100)
    return min(by_bytes, by_count)


#: a subject's bytes on disk, at least: its series (~800 B) plus 0.33 B per pixel, fitted
#: to phantom builds (the most compressible images) of 2.1 KB a subject at 64 px and
#: 17 KB at 224 px; real OCT B-scans take more (≈45 KB at 224 px)
LEAST_SUBJECT_BYTES = 800
LEAST_PIXEL_BYTES = 0.33


def least_dataset_bytes(n: int, image_size: int) -> int:
    """The smallest disk a dataset of ``n`` subjects at ``image_size`` px takes, so a
    build that cannot fit is refused before it starts and one that might fit is not."""
    return int(n * (LEAST_SUBJECT_BYTES + LEAST_PIXEL_BYTES * image_size**2))


def plan_shards(sizes: dict[str, int], shard_size: int) -> list[ShardSpec]:
    """All shards in global order (train, validation, test; by index), ids contiguous."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    shards: list[ShardSpec] = []
    first = 0
    for split in SPLIT_NAMES:
        n = sizes.get(split, 0)
        count = max(1, math.ceil(n / shard_size)) if n else 0
        for i in range(count):
            rows = min(shard_size, n - i * shard_size)
            shards.append(ShardSpec(split, i, count, first + i * shard_size, rows))
        first += n
    return shards


def shard_path(split: str, index: int, count: int) -> str:
    """Path of a shard relative to the dataset root (POSIX separators, as on the Hub)."""
    return f"data/{split}-{index:05d}-of-{count:05d}.parquet"


def level_column(stem: str, noise: int) -> str:
    """The stored name of a per-level column: ``level_column("eta_ebe", 9)`` is eta_ebe_s9.
    Every per-level name in the package comes from here."""
    if stem not in LEVEL_STEMS:
        raise ValueError(f"unknown per-level column {stem!r}; they are {', '.join(LEVEL_STEMS)}")
    return f"{stem}{_LEVEL_SUFFIX}{check_level(noise)}"


def check_level(noise: int | float) -> int:
    """A noise level as the int that names columns; bools, fractions and negatives refused."""
    if isinstance(noise, bool) or not isinstance(noise, int | float):
        raise ValueError(f"a noise level is a non-negative integer such as 9, got {noise!r}")
    if not math.isfinite(noise) or noise < 0 or noise != int(noise):
        raise ValueError(f"a noise level is a non-negative integer such as 9, got {noise!r}")
    return int(noise)


def parse_level_column(name: str) -> tuple[str, int] | None:
    """``(stem, noise)`` of a per-level column name (eta_ebe_s9 -> ("eta_ebe", 9)), else None."""
    stem, sep, level = name.rpartition(_LEVEL_SUFFIX)
    if sep and stem in LEVEL_STEMS and level.isdigit():
        return stem, int(level)
    return None


def noise_columns(noise: int) -> tuple[str, ...]:
    """The stored columns of one noise level, e.g. ("eta_noisy_s9", "eta_ebe_s9", "obs_s9")."""
    return tuple(level_column(stem, noise) for stem in LEVEL_STEMS)


def shared_columns() -> tuple[str, ...]:
    return SHARED_COLUMNS


def all_columns(levels: Sequence[int]) -> tuple[str, ...]:
    """Every stored column, in file order."""
    cols = list(SHARED_COLUMNS) + ["z"]
    for k in levels:
        cols.extend(noise_columns(k))
    return tuple(cols)


def reference_columns(levels: Sequence[int]) -> tuple[str, ...]:
    """The columns of a blind split's references file: ``subject_id`` to join on, then
    every stored column the public shards leave out (file order)."""
    return ("subject_id",) + tuple(c for c in all_columns(levels) if c not in BLIND_COLUMNS)


def references_path(split: str = BLIND_SPLIT) -> str:
    """Path of a blind split's references relative to the dataset root."""
    return f"{REFERENCES_DIR}/{split}.parquet"


def config_name(level: int) -> str:
    return f"sigma2_{level}"


def config_columns(config: str, levels: Sequence[int]) -> tuple[str, ...]:
    """Columns a named config selects ("all", "latents" or "sigma2_{k}")."""
    if config == "all":
        return all_columns(levels)
    if config == "latents":
        return LATENT_COLUMNS
    if config == BLIND_CONFIG:
        return BLIND_COLUMNS
    for k in levels:
        if config == config_name(k):
            return SHARED_COLUMNS + noise_columns(k)
    names = [config_name(k) for k in levels] + ["all", "latents"]
    raise ValueError(f"unknown config {config!r}; this dataset has {', '.join(names)}")


def parse_noise_levels(levels: Sequence[int | float] | str) -> tuple[int, ...]:
    """Validate noise levels σ² (distinct non-negative integers, since they name columns)."""
    if isinstance(levels, str):
        levels = [p for p in levels.replace(",", " ").split() if p]
    out: list[int] = []
    for v in levels:
        f = float(v)
        if not math.isfinite(f) or f < 0 or f != int(f):
            raise ValueError(
                f"noise levels must be non-negative integers (they name columns like "
                f"eta_ebe_s9), got {v!r}"
            )
        out.append(int(f))
    if not out:
        raise ValueError("give at least one noise level, e.g. 0,1,9,18,49")
    if len(set(out)) != len(out):
        raise ValueError(f"noise levels must be distinct, got {out}")
    return tuple(out)
