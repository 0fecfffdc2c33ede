"""The per-subject pipeline, batched over one shard: latents → image → η → data → EBE.

Each stage is a plain function of (seed, subject ids, ...), so any shard is
rebuilt alone, bit for bit, and the population fit can regenerate the
observations of the training split without rendering a single image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from synthoct_bench import latent, rng
from synthoct_bench.dataset.features import arrow_schema
from synthoct_bench.dataset.layout import ShardSpec, all_columns, noise_columns
from synthoct_bench.dataset.records import BuildConfig
from synthoct_bench.dataset.writer import encode_png

__all__ = [
    "STAGES",
    "ShardContext",
    "make_generator",
    "latents",
    "image_seeds",
    "observations",
    "shard_table",
]

#: Images rendered and PNG-encoded per generator call: keeps a worker's memory flat
#: (a 10,000-row shard of 224 px float intermediates would need gigabytes at once).
IMAGE_CHUNK = 256
#: Stage names, in pipeline order, as timed in the build summary and BENCHMARKS.md.
STAGES: tuple[str, ...] = ("latents", "images", "png", "simulation", "ebe", "parquet")


@dataclass(frozen=True)
class ShardContext:
    """Everything a worker needs to build any shard: the build's settings and its fits."""

    config: BuildConfig
    #: noise level -> fitted PopulationParams.to_dict() used for that level's EBEs
    fitted_params: dict[int, dict[str, Any]] = field(default_factory=dict)


def make_generator(name: str, image_size: int, kwargs: dict[str, Any] | None = None) -> Any:
    """:func:`~synthoct_bench.generators.get_generator` with ``image_size=``, checked to
    render images of that size."""
    from synthoct_bench.generators import get_generator

    gen = get_generator(name, image_size=image_size, **dict(kwargs or {}))
    if int(gen.image_size) != int(image_size):
        raise ValueError(
            f"generator {name!r} renders {gen.image_size}px images but image_size={image_size}"
        )
    return gen


def latents(ids: np.ndarray, seed: int, eta_dims: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(z (N,128) float64, η (N,3) float64) for the given subject ids."""
    z = latent.sample_z(ids, seed)
    return z, latent.select_eta(z, eta_dims)


def image_seeds(ids: np.ndarray, seed: int) -> np.ndarray:
    """The per-subject generator seeds (speckle, diffusion noise), int64 (N,)."""
    return rng.subject_seeds(seed, rng.stream_id("image"), ids)


def observations(
    eta: np.ndarray, noise: int, ids: np.ndarray, seed: int, sim_params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(η̂ (N,3), observations (N,21)) at noise level ``noise`` (σ²)."""
    from synthoct_bench.nlme import PopulationParams, simulate

    params = PopulationParams.from_dict(sim_params) if sim_params else None
    eta_noisy = latent.add_noise(eta, noise, ids, seed)
    obs = simulate(eta_noisy, seed, params, subject_ids=ids, stream=latent.residual_stream(noise))
    return eta_noisy, np.asarray(obs)


def _fixed_list(values: np.ndarray, width: int) -> pa.Array:
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width)


def shard_table(
    spec: ShardSpec, ctx: ShardContext, generator: Any
) -> tuple[pa.Table, dict[str, float], dict[str, int]]:
    """Compute one shard's rows.

    Returns (table, seconds per stage, EBE-converged count per level).
    """
    from synthoct_bench.nlme import OBS_TIMES, PopulationParams, ebe

    config = ctx.config
    timings = dict.fromkeys(STAGES, 0.0)
    ids = np.arange(spec.first_id, spec.first_id + spec.rows, dtype=np.int64)
    n = ids.size

    t = time.perf_counter()
    z, eta = latents(ids, config.seed, generator.eta_dims)
    seeds = image_seeds(ids, config.seed)
    timings["latents"] += time.perf_counter() - t

    png: list[bytes] = []
    for start in range(0, n, IMAGE_CHUNK):  # bounded memory whatever the shard size
        stop = min(start + IMAGE_CHUNK, n)
        t = time.perf_counter()
        images = np.asarray(generator.generate(z[start:stop], seeds[start:stop]))
        size = config.image_size
        if images.shape != (stop - start, size, size) or (images.dtype != np.uint8):
            raise ValueError(
                f"generator returned {images.dtype} {images.shape}; expected uint8 "
                f"({stop - start}, {size}, {size})"
            )
        timings["images"] += time.perf_counter() - t
        t = time.perf_counter()
        png.extend(encode_png(images))
        timings["png"] += time.perf_counter() - t

    times = np.broadcast_to(np.asarray(OBS_TIMES, dtype=np.float32), (n, len(OBS_TIMES)))
    columns: dict[str, pa.Array] = {
        "subject_id": pa.array(ids, type=pa.int64()),
        "image": pa.StructArray.from_arrays(
            [pa.array(png, type=pa.binary()), pa.nulls(n, type=pa.string())],
            names=["bytes", "path"],
        ),
        "time": _fixed_list(times, len(OBS_TIMES)),
        "eta": _fixed_list(eta, eta.shape[1]),
        "z": _fixed_list(z, z.shape[1]),
    }
    converged: dict[int, int] = {}
    for k in config.noise_levels:
        t = time.perf_counter()
        eta_noisy, obs = observations(eta, k, ids, config.seed, config.simulation_params)
        timings["simulation"] += time.perf_counter() - t

        t = time.perf_counter()
        fitted = PopulationParams.from_dict(ctx.fitted_params[k])
        est = ebe(obs, fitted)
        timings["ebe"] += time.perf_counter() - t
        converged[k] = int(np.count_nonzero(np.asarray(est.converged)))

        noisy_col, ebe_col, obs_col = noise_columns(k)
        columns[noisy_col] = _fixed_list(eta_noisy, 3)
        columns[ebe_col] = _fixed_list(np.asarray(est.eta), 3)
        columns[obs_col] = _fixed_list(obs, obs.shape[1])

    levels = config.noise_levels
    schema = arrow_schema(levels)
    table = pa.Table.from_arrays([columns[c] for c in all_columns(levels)], schema=schema)
    return table, timings, converged
