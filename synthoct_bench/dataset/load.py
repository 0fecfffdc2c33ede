"""Reading a built dataset, from a local folder or a Hub repo, through one code path.

- :func:`load`: a ``datasets`` Dataset for one noise level with the same column
  names at every level (``image, time, eta, eta_noisy, eta_ebe, obs, subject_id``).
- :func:`read_columns`: raw stored columns as numpy arrays, straight from Parquet
  (no image decoding): what scorers and baselines need.
- :func:`read_metadata`: the :class:`~synthoct_bench.dataset.records.Manifest` (seed,
  generator, NLME parameters and fits, splits, shards with checksums, versions).
- :func:`dataset_fingerprint`: a string naming exactly this data, for score reports.

A ``path_or_repo_id`` that exists on disk is a folder; otherwise it must look like
``org/name`` and is read from the Hub at ``revision``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthoct_bench.dataset.layout import all_columns, config_name, noise_columns
from synthoct_bench.dataset.manifest import MANIFEST_NAME, manifest_fingerprint, read_manifest
from synthoct_bench.dataset.records import Manifest

__all__ = ["load", "read_columns", "read_metadata", "dataset_fingerprint", "UNIFORM_COLUMNS"]

#: Column names ``load`` returns, whatever the noise level.
UNIFORM_COLUMNS: tuple[str, ...] = (
    "image",
    "time",
    "eta",
    "eta_noisy",
    "eta_ebe",
    "obs",
    "subject_id",
)


def _local_root(path_or_repo_id: str | Path) -> Path | None:
    path = Path(path_or_repo_id)
    if path.exists():
        return path
    text = str(path_or_repo_id)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ValueError(
            f"{text!r} is neither an existing folder nor a Hub repo id like 'org/name'"
        )
    return None


def _hub_file(repo_id: str, filename: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision))


def read_metadata(path_or_repo_id: str | Path, revision: str | None = None) -> Manifest:
    """The dataset's ``manifest.json`` as a :class:`Manifest`."""
    root = _local_root(path_or_repo_id)
    if root is not None:
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise ValueError(
                f"{root} has no {MANIFEST_NAME}: not a built synthoct dataset, or the build "
                "did not finish (run `synthoct build --resume` or `--merge`)"
            )
    else:
        path = _hub_file(str(path_or_repo_id), MANIFEST_NAME, revision)
    return read_manifest(path)


def load(
    path_or_repo_id: str | Path,
    noise: int = 9,
    split: str = "train",
    revision: str | None = None,
    streaming: bool = False,
) -> Any:
    """One split at one noise level as a ``datasets.Dataset`` (or ``IterableDataset``).

    Columns: ``image`` (PIL, mode L), ``time`` (21), ``eta`` (3, noise-free),
    ``eta_noisy`` (3, η̂ that generated the data), ``eta_ebe`` (3, the target),
    ``obs`` (21), ``subject_id``.
    """
    import datasets

    meta = read_metadata(path_or_repo_id, revision)
    level = meta.check_noise(noise)
    meta.check_split(split)
    root = _local_root(path_or_repo_id)
    ds = datasets.load_dataset(
        str(root) if root is not None else str(path_or_repo_id),
        config_name(level),
        split=split,
        revision=None if root is not None else revision,
        streaming=streaming,
    )
    noisy, ebe, obs = noise_columns(level)
    ds = ds.rename_columns({noisy: "eta_noisy", ebe: "eta_ebe", obs: "obs"})
    return ds.select_columns(list(UNIFORM_COLUMNS))


def _split_files(
    path_or_repo_id: str | Path, meta: Manifest, split: str, revision: str | None
) -> list[Path]:
    shards = meta.split_shards(split)
    root = _local_root(path_or_repo_id)
    if root is not None:
        files = [root / e.path for e in shards]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} shard(s) of split {split!r} are missing, e.g. {missing[0]}; "
                "run `synthoct verify` on the folder"
            )
        return files
    return [_hub_file(str(path_or_repo_id), e.path, revision) for e in shards]


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    if pa.types.is_struct(arr.type):  # the image: PNG bytes, not decoded
        return np.asarray(arr.field("bytes").to_pylist(), dtype=object)
    return arr.to_numpy(zero_copy_only=False)


def read_columns(
    path_or_repo_id: str | Path,
    split: str,
    columns: Sequence[str],
    revision: str | None = None,
) -> dict[str, np.ndarray]:
    """Stored columns of one split as numpy arrays, rows sorted by ``subject_id``.

    Fixed-length lists come back 2-D (``eta_ebe_s9`` → (N, 3) float32, ``obs_s9`` →
    (N, 21)); ``subject_id`` → (N,) int64; ``image`` → (N,) object array of PNG bytes.
    """
    if isinstance(columns, str):
        raise ValueError(f"columns must be a list of names, e.g. [{columns!r}]")
    meta = read_metadata(path_or_repo_id, revision)
    meta.check_split(split)
    known = all_columns(meta.noise_levels)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(
            f"unknown column(s) {', '.join(unknown)}; this dataset has {', '.join(known)}"
        )
    if not columns:
        raise ValueError("give at least one column to read")
    files = _split_files(path_or_repo_id, meta, split, revision)
    table = pa.concat_tables(pq.read_table(f, columns=list(columns)) for f in files)
    out = {name: _to_numpy(table.column(name)) for name in columns}
    if "subject_id" in out and np.any(np.diff(out["subject_id"]) < 0):
        order = np.argsort(out["subject_id"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
    return out


def dataset_fingerprint(path_or_repo_id: str | Path, revision: str | None = None) -> str:
    """A string naming the data: sha256 over the shard checksums (a folder), or
    ``hub:{repo_id}@{commit sha}`` (a Hub repo at ``revision``)."""
    root = _local_root(path_or_repo_id)
    if root is not None:
        return manifest_fingerprint(read_metadata(root))
    from huggingface_hub import HfApi

    info = HfApi().dataset_info(str(path_or_repo_id), revision=revision)
    return f"hub:{path_or_repo_id}@{info.sha}"
