"""Counter-based random numbers keyed by (seed, stream, subject index).

Every random draw in the benchmark comes from here, so any subject's data can
be recomputed alone, bit for bit, whatever the batch size, shard layout or
number of workers. A draw is a pure function of its key and its position:

    u = hash(seed, stream, subject_id, k)   for k = 0, 1, ...

where ``hash`` chains the SplitMix64 finaliser (Steele, Lea & Flood 2014), a
bijective 64-bit mixer with full avalanche. Everything is vectorised over
subjects with numpy uint64 arithmetic (wrap-around is intended).

Streams name independent uses (latents, noise per level, residual error, image
speckle, bootstrap...). Use :func:`stream_id` to derive one from a name and
optional integers, so two call sites never share a stream by accident.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stream_id", "uniform", "standard_normal", "subject_seeds"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_TWO53 = float(2**53)


def stream_id(name: str, *parts: int | float) -> int:
    """A stable 63-bit stream id for a named use, e.g. ``stream_id("noise", 9)``."""
    text = "/".join([name, *(repr(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (returns a new array)."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def _as_ids(subject_ids: np.ndarray | int) -> np.ndarray:
    ids = np.asarray(subject_ids)
    if ids.ndim != 1:
        ids = ids.reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"subject_ids must be integers, got dtype {ids.dtype}; pass np.arange(start, stop)"
        )
    if ids.size and ids.min() < 0:
        raise ValueError("subject_ids must be non-negative subject indices")
    return ids.astype(np.uint64)


def _subject_keys(seed: int, stream: int, subject_ids: np.ndarray) -> np.ndarray:
    for name, value in (("seed", seed), ("stream", stream)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    with np.errstate(over="ignore"):
        base = _mix(np.array([int(seed) & (2**64 - 1)], dtype=np.uint64))
        base = _mix(base ^ np.uint64(int(stream) & (2**64 - 1)))
        return _mix(base ^ (_as_ids(subject_ids) * _GOLDEN))


def _bits(seed: int, stream: int, subject_ids: np.ndarray, n: int) -> np.ndarray:
    keys = _subject_keys(seed, stream, subject_ids)
    with np.errstate(over="ignore"):
        counters = (np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        return _mix(keys[:, None] + counters)


def uniform(seed: int, stream: int, subject_ids: np.ndarray, size: int) -> np.ndarray:
    """Uniform draws on the open interval (0, 1), shape (N, size), float64."""
    bits = _bits(seed, stream, subject_ids, size) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) / _TWO53


def standard_normal(seed: int, stream: int, subject_ids: np.ndarray, size: int) -> np.ndarray:
    """Standard normal draws, shape (N, size), float64 (Box-Muller on pairs)."""
    half = (size + 1) // 2
    u = uniform(seed, stream, subject_ids, 2 * half)
    radius = np.sqrt(-2.0 * np.log(u[:, :half]))
    angle = 2.0 * np.pi * u[:, half:]
    out = np.empty((u.shape[0], 2 * half), dtype=np.float64)
    out[:, 0::2] = radius * np.cos(angle)
    out[:, 1::2] = radius * np.sin(angle)
    return out[:, :size]


def subject_seeds(seed: int, stream: int, subject_ids: np.ndarray) -> np.ndarray:
    """One 63-bit integer seed per subject (int64), for generators that take a seed
    (a ``torch.Generator``, a per-image speckle pattern)."""
    return (_bits(seed, stream, subject_ids, 1)[:, 0] >> np.uint64(1)).astype(np.int64)
