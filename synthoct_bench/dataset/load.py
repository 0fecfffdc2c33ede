"""Reading a built dataset, from a local folder or a Hub repo, through one code path.

- :func:`load`: a ``datasets`` Dataset for one noise level with the same column
  names at every level (``image, time, eta, eta_noisy, eta_ebe, obs, subject_id``).
- :func:`read_columns`: raw stored columns as numpy arrays, straight from Parquet
  (no image decoding): what scorers and baselines need.
- :func:`read_metadata`: the :class:`~synthoct_bench.dataset.records.Manifest` (seed,
  generator, NLME parameters and fits, splits, shards with checksums, versions).
- :func:`dataset_fingerprint`: a string naming exactly this data, for score reports.

Every shard ``load`` and ``read_columns`` read is first checked against the
manifest's sha256 (:mod:`synthoct_bench.dataset.integrity`; ``verify=False``
skips that, with a warning). A ``path_or_repo_id`` that exists on disk, or
looks like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``, or ``a/b`` where ``a``
is a local folder), is a folder; otherwise it must look like ``org/name`` and
is read from the Hub at ``revision``.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthoct_bench.dataset.integrity import check_shard_files
from synthoct_bench.dataset.layout import (
    BLIND_COLUMNS,
    BLIND_CONFIG,
    all_columns,
    config_columns,
    config_name,
    noise_columns,
    reference_columns,
)
from synthoct_bench.dataset.manifest import (
    MANIFEST_NAME,
    manifest_fingerprint,
    read_manifest,
    read_references_manifest,
)
from synthoct_bench.dataset.records import Manifest

__all__ = [
    "load",
    "read_columns",
    "read_references",
    "read_metadata",
    "dataset_fingerprint",
    "local_root",
    "UNIFORM_COLUMNS",
]

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
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def local_root(path_or_repo_id: str | Path) -> Path | None:
    """The dataset folder, or None for a Hub repo id; a path that looks local never goes
    to the Hub, so a typo gets "no such folder" at once instead of network retries."""
    path = Path(os.path.expanduser(str(path_or_repo_id)))
    if path.is_dir():
        return path
    text = str(path_or_repo_id)
    if path.exists():
        raise ValueError(f"{text} is a file; give the dataset folder (the one with manifest.json)")
    first = text.split("/", 1)[0]
    looks_local = (
        isinstance(path_or_repo_id, Path)
        or text.startswith((".", "/", "~"))
        or "\\" in text
        or text.count("/") != 1
        or Path(first).is_dir()
    )
    if looks_local or not _HUB_ID.match(text):
        raise ValueError(
            f"no dataset folder at {text!r}: it is neither an existing folder nor a Hub repo "
            "id like 'org/name'; check the path"
        )
    return None


@functools.cache
def _hub_reachable() -> bool:
    """Whether a connection to the Hub's endpoint opens within 3 s (once a process):
    without one, hub downloads read the local cache only instead of retrying for
    half a minute."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=3).close()
    except OSError:
        return False
    return True


def _hub_file(repo_id: str, filename: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id, filename, repo_type="dataset", revision=revision,
                local_files_only=not _hub_reachable(),
            )
        )  # fmt: skip
    except LocalEntryNotFoundError:
        raise ValueError(
            f"{repo_id!r}: the Hub cannot be reached from this machine and {filename} is not "
            "in the local cache; download the dataset where there is a network (hf download "
            f"--repo-type dataset {repo_id} --local-dir DIR) and give DIR instead"
        ) from None


def read_metadata(path_or_repo_id: str | Path, revision: str | None = None) -> Manifest:
    """The dataset's ``manifest.json`` as a :class:`Manifest`."""
    root = local_root(path_or_repo_id)
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
    verify: bool = True,
) -> Any:
    """One split at one noise level as a ``datasets.Dataset`` (or ``IterableDataset``).

    Columns: ``image`` (PIL, mode L), ``time`` (21), ``eta`` (3, noise-free),
    ``eta_noisy`` (3, η̂ that generated the data), ``eta_ebe`` (3, the target),
    ``obs`` (21), ``subject_id``. The split's shards are checked against the manifest
    first (``verify=False`` skips it; streaming from the Hub cannot check, and says so).
    The blind split of a blind build has no references to return: it comes back as
    ``image`` and ``subject_id`` only, what a model needs to predict it.
    """
    import datasets

    meta = read_metadata(path_or_repo_id, revision)
    level = meta.check_noise(noise)
    meta.check_split(split)
    root = local_root(path_or_repo_id)
    blind = meta.is_blind(split)
    config = BLIND_CONFIG if blind else config_name(level)
    if root is None and streaming:
        warnings.warn(
            f"streaming {path_or_repo_id} from the Hub: its shards are not checked against "
            "the manifest (download it, or score with synthoct_bench.score, to check them)",
            stacklevel=2,
        )
        ds = datasets.load_dataset(
            str(path_or_repo_id), config, split=split, revision=revision, streaming=True
        )
    else:
        files = _split_files(path_or_repo_id, meta, split, revision, verify)
        # One Arrow cache per split for every level: the shared columns (images included)
        # and every level's columns are read once; each level below is a view of it.
        ds = datasets.load_dataset(
            "parquet",
            data_files={split: [str(f) for f in files]},
            columns=list(BLIND_COLUMNS if blind else _cached_columns(meta.noise_levels)),
            split=split,
            streaming=streaming,
        )
    if blind:
        return ds.select_columns(["image", "subject_id"])
    ds = ds.select_columns(list(config_columns(config, meta.noise_levels)))
    noisy, ebe, obs = noise_columns(level)
    ds = ds.rename_columns({noisy: "eta_noisy", ebe: "eta_ebe", obs: "obs"})
    return ds.select_columns(list(UNIFORM_COLUMNS))


def _cached_columns(levels: Sequence[int]) -> tuple[str, ...]:
    """The columns ``load`` reads into its one cache: every config ``sigma2_{k}`` column.
    ``select_columns`` and ``rename_columns`` then give each level's view without copying
    (they only relabel the memory-mapped Arrow table), so five levels cost one copy of the
    images instead of five."""
    return tuple(c for c in all_columns(levels) if c != "z")


def _split_files(
    path_or_repo_id: str | Path,
    meta: Manifest,
    split: str,
    revision: str | None,
    verify: bool = True,
) -> list[Path]:
    """Local paths of the split's shards (downloaded from the Hub if needed), in id order,
    each checked against the manifest's size and sha256 unless ``verify`` is False."""
    shards = meta.split_shards(split)
    root = local_root(path_or_repo_id)
    if root is not None:
        files = [root / e.path for e in shards]
    else:
        files = [_hub_file(str(path_or_repo_id), e.path, revision) for e in shards]
    if verify:
        check_shard_files(zip(files, shards, strict=True), str(path_or_repo_id))
    else:
        warnings.warn(
            f"the shards of {path_or_repo_id} were not checked against the manifest (verify=False)",
            stacklevel=3,
        )
    return files


def _read_table(file: Path, columns: list[str], rows: int, shard: str) -> pa.Table:
    """Read ``columns`` of one shard after checking its footer declares ``rows`` rows, so a
    file that claims millions of rows is refused before anything is allocated."""
    try:
        footer = pq.read_metadata(file)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(
            f"{shard}: not readable as Parquet ({exc}); run `synthoct verify`"
        ) from None
    if footer.num_rows != rows:
        raise ValueError(
            f"{shard}: its footer declares {footer.num_rows:,} rows, the manifest {rows:,}; "
            "run `synthoct verify`"
        )
    return pq.read_table(file, columns=columns)


def column_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A stored column as numpy: lists 2-D, images as an object array of PNG bytes."""
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
    verify: bool = True,
    references: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Stored columns of one split as numpy arrays, rows sorted by ``subject_id``.

    Fixed-length lists come back 2-D (``eta_ebe_s9`` → (N, 3) float32, ``obs_s9`` →
    (N, 21)); ``subject_id`` → (N,) int64; ``image`` → (N,) object array of PNG bytes.
    The shards are checked against the manifest first (``verify=False`` skips it).
    The blind split of a blind build holds only ``subject_id`` and ``image``; its other
    columns come from its private ``references`` file (:func:`read_references`).
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
    hidden = [c for c in columns if c not in BLIND_COLUMNS] if meta.is_blind(split) else []
    if references is not None and not meta.is_blind(split):
        raise ValueError(
            f"references are for a blind split, and split {split!r} of {path_or_repo_id} "
            "is not blind: its shards hold every column; drop references"
        )
    if hidden:
        if references is None:
            raise ValueError(
                f"the {split} split of {path_or_repo_id} is blind: it holds only "
                f"{' and '.join(BLIND_COLUMNS)}; {', '.join(hidden)} are in its private "
                "references file (pass references=FILE, or synthoct score --references FILE)"
            )
        refs = read_references(path_or_repo_id, references, ["subject_id", *hidden], revision)
        public = [c for c in columns if c in BLIND_COLUMNS and c != "subject_id"]
        if public:
            own = read_columns(path_or_repo_id, split, ["subject_id", *public], revision, verify)
            refs.update({c: own[c] for c in public})
        return {c: refs[c] for c in columns}
    files = _split_files(path_or_repo_id, meta, split, revision, verify)
    shards = meta.split_shards(split)
    table = pa.concat_tables(
        _read_table(f, list(columns), e.rows, e.path) for f, e in zip(files, shards, strict=True)
    )
    out = {name: column_to_numpy(table.column(name)) for name in columns}
    if "subject_id" in out and np.any(np.diff(out["subject_id"]) < 0):
        order = np.argsort(out["subject_id"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
    return out


def read_references(
    path_or_repo_id: str | Path,
    references: str | Path,
    columns: Sequence[str],
    revision: str | None = None,
) -> dict[str, np.ndarray]:
    """Columns of a blind split from its private references file, rows sorted by
    ``subject_id`` (the blind split's ids, every one).

    The file must be the one the dataset's manifest records (size and sha256, which the
    dataset fingerprint covers); a ``manifest.json`` beside it (the private references
    manifest) must name this dataset's fingerprint.
    """
    meta = read_metadata(path_or_repo_id, revision)
    record = meta.references
    if record is None:
        raise ValueError(f"{path_or_repo_id} has no blind split; it needs no references")
    known = reference_columns(meta.noise_levels)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(
            f"unknown reference column(s) {', '.join(unknown)}; the references hold "
            f"{', '.join(known)}"
        )
    path = Path(os.path.expanduser(str(references)))
    if path.is_dir():
        path = path / Path(record.path).name
    if not path.is_file():
        raise ValueError(f"no references file at {references}; give {record.path} of the build")
    fingerprint = manifest_fingerprint(meta)
    private = path.parent / MANIFEST_NAME
    if private.is_file():
        owner = read_references_manifest(private).dataset_fingerprint
        if owner != fingerprint:
            raise ValueError(
                f"{private} belongs to the dataset with fingerprint {owner[:12]}…, not to "
                f"{path_or_repo_id} ({fingerprint[:12]}…): these references score another "
                "dataset"
            )
    try:
        check_shard_files([(path, record)], str(path_or_repo_id))
    except ValueError:
        raise ValueError(
            f"{path} is not the references file of {path_or_repo_id}: its size or sha256 "
            f"differs from the manifest's ({record.sha256[:12]}…); give the file written "
            "by that build"
        ) from None
    table = _read_table(
        path, ["subject_id", *[c for c in columns if c != "subject_id"]], record.rows, record.path
    )
    out = {name: column_to_numpy(table.column(name)) for name in table.column_names}
    order = np.argsort(out["subject_id"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    expected = np.arange(record.first_id, record.last_id + 1)
    if not np.array_equal(out["subject_id"], expected):
        raise ValueError(f"{path}: its subject ids are not those of the {record.split} split")
    return {c: out[c] for c in columns}


def dataset_fingerprint(path_or_repo_id: str | Path, revision: str | None = None) -> str:
    """A string naming the data: the sha256 of its whole manifest (settings, seed, NLME
    parameters and fits, versions, and every shard's checksum). A folder and the Hub
    repo it was pushed to share it."""
    return manifest_fingerprint(read_metadata(path_or_repo_id, revision))
