"""The manifest: what a built dataset holds, with a checksum per shard, and its check.

During a build each finished shard gets a sidecar ``_build/shards/{name}.json``
(written after its Parquet file, both atomically); the final merge gathers the
sidecars into ``manifest.json``. A shard counts as done only when its file and
sidecar exist and agree, which is what makes ``--resume`` safe after a kill.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq

from synthoct_bench.dataset.layout import SPLIT_NAMES, ShardSpec
from synthoct_bench.dataset.records import FORMAT_VERSION, Manifest, ShardSidecar
from synthoct_bench.dataset.writer import sha256_file

__all__ = [
    "MANIFEST_NAME",
    "BUILD_DIR",
    "FORMAT_VERSION",
    "VerifyReport",
    "sidecar_path",
    "read_sidecar",
    "read_manifest",
    "shard_is_done",
    "software_versions",
    "verify",
    "manifest_fingerprint",
]

MANIFEST_NAME = "manifest.json"
#: Build state (config, population fits, per-shard sidecars); not uploaded to the Hub.
BUILD_DIR = "_build"
_PACKAGES = (
    "synthoct-bench",
    "numpy",
    "scipy",
    "numba",
    "pyarrow",
    "pillow",
    "datasets",
    "torch",
    "diffusers",
)


def sidecar_path(root: str | Path, spec: ShardSpec) -> Path:
    return Path(root) / BUILD_DIR / "shards" / f"{spec.name}.json"


def read_sidecar(root: str | Path, spec: ShardSpec) -> ShardSidecar | None:
    """The shard's sidecar, or None when it is absent or unreadable (the shard is redone)."""
    path = sidecar_path(root, spec)
    if not path.is_file():
        return None
    try:
        return ShardSidecar.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # JSONDecodeError is a ValueError
        return None


def read_manifest(path: str | Path) -> Manifest:
    """Parse a ``manifest.json`` file; a ValueError names what is malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc}); rebuild it with `synthoct build --merge`"
        ) from None
    try:
        return Manifest.from_dict(data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{path} is malformed: {exc}; rebuild it with `synthoct build --merge`"
        ) from None


def shard_is_done(root: str | Path, spec: ShardSpec, check_sha: bool = True) -> bool:
    """True when the shard file and its sidecar exist and the file matches the sidecar."""
    entry = read_sidecar(root, spec)
    path = Path(root) / spec.path
    if entry is None or not path.is_file():
        return False
    if entry.rows != spec.rows or entry.first_id != spec.first_id:
        return False
    if path.stat().st_size != entry.bytes:
        return False
    return not check_sha or sha256_file(path)[0] == entry.sha256


def software_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the data (absent ones omitted)."""
    import platform

    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class VerifyReport:
    """Result of :func:`verify`: ``ok`` is False when anything in ``problems``."""

    path: str
    problems: list[str] = field(default_factory=list)
    shards_checked: int = 0
    rows: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (
            f"{self.path}: {self.shards_checked} shards, {self.rows:,} rows, "
            f"{self.bytes / 1e6:,.1f} MB"
        )
        if self.ok:
            return head + ": OK"
        return (
            head
            + f": {len(self.problems)} problem(s)\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


def verify(path: str | Path, check_sha: bool = True) -> VerifyReport:
    """Check a built dataset folder against its manifest.

    Names every shard that is missing, truncated, has the wrong row count or checksum,
    every gap or overlap in subject ids, and stray Parquet files the manifest omits.
    """
    root = Path(path)
    report = VerifyReport(str(root))
    man_path = root / MANIFEST_NAME
    if not root.is_dir():
        report.problems.append(f"{root} is not a directory")
        return report
    if not man_path.is_file():
        report.problems.append(
            f"{MANIFEST_NAME} is missing (unfinished build? run `synthoct build --resume` "
            "or `synthoct build --merge`)"
        )
        return report
    try:
        manifest = read_manifest(man_path)
    except ValueError as exc:
        report.problems.append(str(exc))
        return report
    if not (root / "README.md").is_file():
        report.problems.append("README.md (the dataset card with the configs) is missing")

    listed = set()
    for entry in manifest.shards:
        rel = entry.path
        listed.add(rel)
        report.shards_checked += 1
        file = root / rel
        if not file.is_file():
            report.problems.append(f"{rel}: missing")
            continue
        size = file.stat().st_size
        if size != entry.bytes:
            report.problems.append(f"{rel}: corrupt ({size} bytes, manifest says {entry.bytes})")
            continue
        if check_sha and sha256_file(file)[0] != entry.sha256:
            report.problems.append(f"{rel}: corrupt (sha256 differs from the manifest)")
            continue
        try:
            rows = pq.read_metadata(file).num_rows
        except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt shard
            report.problems.append(f"{rel}: corrupt (not readable as Parquet: {exc})")
            continue
        if rows != entry.rows:
            report.problems.append(f"{rel}: {rows} rows, manifest says {entry.rows}")
            continue
        report.rows += rows
        report.bytes += size

    _check_coverage(manifest, report)
    data_dir = root / "data"
    if data_dir.is_dir():
        for file in sorted(data_dir.iterdir()):
            rel = f"data/{file.name}"
            if rel not in listed:
                report.problems.append(f"{rel}: not in the manifest (stray or leftover file)")
    return report


def _check_coverage(manifest: Manifest, report: VerifyReport) -> None:
    """Shard id ranges must tile each split exactly, splits contiguous in order."""
    expected_first = 0
    for split in SPLIT_NAMES:
        if split not in manifest.splits:
            continue
        info = manifest.splits[split]
        if info.first_id != expected_first:
            report.problems.append(
                f"split {split} starts at id {info.first_id}, expected {expected_first}"
            )
        cursor = info.first_id
        for e in manifest.split_shards(split):
            if e.first_id != cursor:
                kind = "gap" if e.first_id > cursor else "overlap"
                report.problems.append(f"{e.path}: {kind} in subject ids before {e.first_id}")
            cursor = e.last_id + 1
        if cursor != info.first_id + info.n:
            report.problems.append(
                f"split {split}: shards cover {cursor - info.first_id} subjects, "
                f"expected {info.n}"
            )
        expected_first = info.first_id + info.n


def manifest_fingerprint(manifest: Manifest) -> str:
    """sha256 over the shards' (path, sha256) pairs in manifest order: names the data."""
    import hashlib

    h = hashlib.sha256()
    for e in manifest.shards:
        h.update(f"{e.path}\0{e.sha256}\n".encode())
    return h.hexdigest()
