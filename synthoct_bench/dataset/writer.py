"""Deterministic, atomic file writes: PNG bytes, Parquet shards, JSON, checksums.

Every setting that could change the bytes of a shard is fixed here (compression,
row groups, statistics, no timestamps), so the same rows always give the same
file for a given pyarrow version, which the manifest records.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

__all__ = [
    "PARQUET_SETTINGS",
    "PNG_COMPRESS_LEVEL",
    "UNCOMPRESSED_COLUMNS",
    "parquet_options",
    "encode_png",
    "decode_png",
    "write_parquet_atomic",
    "write_json_first_wins",
    "sha256_file",
]

#: Rows per row group: small groups let the Hub viewer and streaming readers fetch a few
#: images without a whole shard (datasets' push_to_hub uses 100 for image data).
ROW_GROUP_SIZE = 100
PARQUET_SETTINGS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": False,
    "write_statistics": ["subject_id"],
    "data_page_version": "1.0",
    "version": "2.6",
}
#: Parquet columns stored without compression: the PNG bytes are deflated already, and
#: zstd would gain them about 2% for as much time as writing the rest of the shard.
UNCOMPRESSED_COLUMNS: tuple[str, ...] = ("image.bytes",)
#: How shard images are written. Every row gets PNG's Sub filter (the difference to the
#: pixel on its left), applied to a whole batch at once in numpy, and each image is then
#: deflated by ISA-L (``isal``) at level 1. Chosen by measurement (benchmarks/bench_png.py,
#: BENCHMARKS.md "PNG encoding"): the fastest lossless candidate on phantom B-scans, and
#: smaller than zlib-ng at level 1; the pixels decode identically (PNG is lossless).
PNG_ENCODER = "sub-filter+isal"
PNG_COMPRESS_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_FILTER_SUB = 1


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(images: np.ndarray) -> list[bytes]:
    """PNG bytes (8-bit grayscale) for each uint8 image of a (N, H, W) batch.

    Filtering runs once over the batch (uint8 arithmetic wraps modulo 256, as PNG's
    filters do); only the deflate step is per image, as a PNG's zlib stream is.
    """
    from isal import isal_zlib

    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be a uint8 array (N, H, W), got {images.dtype} {images.shape}"
        )
    n, height, width = images.shape
    rows = np.empty((n, height, width + 1), dtype=np.uint8)
    rows[:, :, 0] = _PNG_FILTER_SUB
    rows[:, :, 1] = images[:, :, 0]
    np.subtract(images[:, :, 1:], images[:, :, :-1], out=rows[:, :, 2:])
    header = _PNG_SIGNATURE + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    end = _png_chunk(b"IEND", b"")
    return [
        header + _png_chunk(b"IDAT", isal_zlib.compress(r, PNG_COMPRESS_LEVEL)) + end for r in rows
    ]


def decode_png(
    blobs: np.ndarray | list[bytes], subject_ids: np.ndarray | None = None
) -> np.ndarray:
    """Decode PNG bytes into a uint8 array (N, H, W) (all images must share a size).

    A blob that is not a readable image raises a ValueError naming its subject (when
    ``subject_ids`` is given) and ``synthoct verify``.
    """
    out = []
    for i, blob in enumerate(blobs):
        try:
            out.append(np.asarray(Image.open(io.BytesIO(blob)).convert("L")))
        except (OSError, ValueError, TypeError) as exc:
            who = f"subject {int(subject_ids[i])}" if subject_ids is not None else f"row {i}"
            raise ValueError(
                f"the image of {who} cannot be decoded ({exc}); the shard is corrupt: run "
                "`synthoct verify` on the dataset"
            ) from None
    return np.stack(out)


def _leaf_paths(field: pa.Field, prefix: str = "") -> list[str]:
    """Parquet column paths under an Arrow field (``image.bytes``, ``eta.list.element``)."""
    path = prefix + field.name
    kind = field.type
    if pa.types.is_struct(kind):
        return [p for i in range(kind.num_fields) for p in _leaf_paths(kind.field(i), path + ".")]
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind):
        return _leaf_paths(pa.field("element", kind.value_type), path + ".list.")
    return [path]


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """``pq.write_table`` keywords for a shard: :data:`PARQUET_SETTINGS`, with the codec and
    level spelled out per column so that :data:`UNCOMPRESSED_COLUMNS` skip compression."""
    paths = [p for field in schema for p in _leaf_paths(field)]
    codec, level = PARQUET_SETTINGS["compression"], PARQUET_SETTINGS["compression_level"]
    squeezed = [p for p in paths if p not in UNCOMPRESSED_COLUMNS]
    return {
        **PARQUET_SETTINGS,
        "compression": {p: codec if p in squeezed else "none" for p in paths},
        "compression_level": {p: level for p in squeezed},
    }


def write_parquet_atomic(table: pa.Table, path: str | Path) -> tuple[str, int]:
    """Write ``table`` to ``path`` via ``path.tmp`` + rename; return (sha256, bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, **parquet_options(table.schema))
    digest, size = sha256_file(tmp)
    os.replace(tmp, path)
    return digest, size


def write_json_first_wins(obj: Any, path: str | Path) -> Any:
    """Write JSON only if ``path`` does not exist yet; return what ends up there.

    Ranks of a multi-machine build that race to record the same stage (the population
    fits) all end up using the first file written (atomic ``os.link``), never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # filesystems without hard links: last writer wins, still atomic
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return json.loads(path.read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size
