"""Checksums on read: every shard a loader or the scorer reads matches the manifest.

Parquet has no page checksums, so a flipped byte inside a value changes the
data silently. Each read therefore checks the files it is about to read against
the manifest's sha256 and size. Hashing 875 MB takes seconds, so a verified
file is remembered in a small cache (``$SYNTHOCT_CACHE_DIR`` or
``~/.cache/synthoct_bench``), keyed by real path, size and modification time:
a file that has not changed since it was hashed is not hashed again. The cache
only ever skips work; it never vouches for a file whose size, mtime or
manifest checksum differs from what was hashed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from synthoct_bench.dataset.records import ShardRecord
from synthoct_bench.dataset.writer import sha256_file

__all__ = ["CorruptShardError", "cache_path", "check_shard_files"]

CACHE_ENV = "SYNTHOCT_CACHE_DIR"
_CACHE_NAME = "verified_shards.json"


class CorruptShardError(ValueError):
    """A shard that is missing or differs from the manifest; the message names it."""


def cache_path() -> Path:
    """Where verified checksums are remembered."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthoct_bench"
    return Path(root) / _CACHE_NAME


def _load_cache() -> dict[str, list]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_cache(cache: dict[str, list]) -> None:
    from synthoct_bench.atomic import write_json

    try:
        write_json(cache_path(), cache)
    except OSError:  # a read-only home only costs a rehash next time
        pass


def check_shard_files(files: Iterable[tuple[Path, ShardRecord]], where: str) -> int:
    """Check each (file, manifest record): present, the recorded size, the recorded sha256.

    ``where`` names the dataset in messages. Returns how many files were hashed now
    (the rest were verified before and have not changed). Raises
    :class:`CorruptShardError` naming the first bad shard and ``synthoct verify``.
    """
    cache = _load_cache()
    hashed = 0
    changed = False
    for file, record in files:
        try:
            st = file.stat()
        except FileNotFoundError:
            raise CorruptShardError(
                f"{record.path} of {where} is missing; restore it, or run "
                f"`synthoct verify {where}` to list every problem"
            ) from None
        if st.st_size != record.bytes:
            raise CorruptShardError(
                f"{record.path} of {where} is corrupt ({st.st_size:,} bytes, the manifest "
                f"says {record.bytes:,}); run `synthoct verify {where}` and rebuild or "
                "re-download it"
            )
        key = str(file.resolve())
        stamp = [st.st_size, st.st_mtime_ns, record.sha256]
        if cache.get(key) == stamp:
            continue
        digest, _ = sha256_file(file)
        hashed += 1
        if digest != record.sha256:
            cache.pop(key, None)
            _save_cache(cache)
            raise CorruptShardError(
                f"{record.path} of {where} is corrupt (its sha256 differs from the "
                f"manifest's); run `synthoct verify {where}` and rebuild or re-download it"
            )
        cache[key] = stamp
        changed = True
    if changed:
        _save_cache(cache)
    return hashed
