"""The manifest: what a built dataset holds, with a checksum per shard.

During a build each finished shard gets a sidecar ``_build/shards/{name}.json``
(written after its Parquet file, both atomically); the final merge gathers the
sidecars into ``manifest.json``. A shard counts as done only when its file and
sidecar exist and agree, which is what makes ``--resume`` safe after a kill.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from synthoct_bench.dataset.layout import ShardSpec
from synthoct_bench.dataset.records import (
    FORMAT_VERSION,
    Manifest,
    ReferencesManifest,
    ShardSidecar,
)
from synthoct_bench.dataset.writer import sha256_file

__all__ = [
    "MANIFEST_NAME",
    "BUILD_DIR",
    "FORMAT_VERSION",
    "sidecar_path",
    "read_sidecar",
    "read_manifest",
    "shard_is_done",
    "software_versions",
    "manifest_fingerprint",
    "REFERENCES_MANIFEST",
    "read_references_manifest",
]

MANIFEST_NAME = "manifest.json"
#: Build state (config, population fits, per-shard sidecars); not uploaded to the Hub.
BUILD_DIR = "_build"
#: A blind build's private manifest, beside its references (never uploaded).
REFERENCES_MANIFEST = "references/manifest.json"
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


def manifest_fingerprint(manifest: Manifest) -> str:
    """sha256 of the whole manifest as canonical JSON (sorted keys, no spaces): the
    settings, seed, NLME parameters and fits, versions and every shard's checksum, so
    any edit to the data or to what defines it gives another fingerprint."""
    import hashlib

    text = json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_references_manifest(path: str | Path) -> ReferencesManifest:
    """Parse a blind build's private ``references/manifest.json``."""
    path = Path(path)
    try:
        return ReferencesManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a references manifest ({exc})") from None
