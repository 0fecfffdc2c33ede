"""The per-subject pipeline, batched over one shard: latents → image → η → data → EBE.

Each stage is a plain function of (seed, subject ids, ...), so any shard is
rebuilt alone, bit for bit, and the population fit can regenerate the
observations of the training split without rendering a single image. A shard is
made in two calls, :func:`render_shard` (latents and images) and
:func:`shard_table` (simulation and EBEs, which need the population fits), so a
build can render while the fits are still running.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from synthoct_bench import latent
from synthoct_bench.dataset.features import arrow_schema
from synthoct_bench.dataset.layout import ShardSpec, all_columns, noise_columns
from synthoct_bench.dataset.records import BuildConfig
from synthoct_bench.dataset.writer import encode_png
from synthoct_bench.latent import image_seeds

__all__ = [
    "STAGES",
    "RenderedShard",
    "make_generator",
    "latents",
    "observations",
    "render_shard",
    "shard_table",
]

#: Images rendered and PNG-encoded per generator call: keeps a worker's memory flat
#: (a 10,000-row shard of 224 px float intermediates would need gigabytes at once).
IMAGE_CHUNK = 256
#: Stage names, in pipeline order, as timed in the build summary and BENCHMARKS.md.
STAGES: tuple[str, ...] = ("latents", "images", "png", "simulation", "ebe", "parquet")


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


@dataclass(frozen=True)
class RenderedShard:
    """The part of a shard that needs no population fit: ids, latents and PNG images."""

    spec: ShardSpec
    ids: np.ndarray
    z: np.ndarray
    eta: np.ndarray
    png: list[bytes]


def render_shard(
    spec: ShardSpec, config: BuildConfig, generator: Any, timings: dict[str, float]
) -> RenderedShard:
    """Latents and PNG images of one shard (adds its seconds to ``timings``)."""
    ids = np.arange(spec.first_id, spec.first_id + spec.rows, dtype=np.int64)
    n = ids.size

    t = time.perf_counter()
    z, eta = latents(ids, config.seed, generator.eta_dims)
    seeds = image_seeds(ids, config.seed)
    timings["latents"] += time.perf_counter() - t

    png: list[bytes] = []
    size = config.image_size
    for start in range(0, n, IMAGE_CHUNK):  # bounded memory whatever the shard size
        stop = min(start + IMAGE_CHUNK, n)
        t = time.perf_counter()
        images = np.asarray(generator.generate(z[start:stop], seeds[start:stop]))
        if images.shape != (stop - start, size, size) or (images.dtype != np.uint8):
            raise ValueError(
                f"generator returned {images.dtype} {images.shape}; expected uint8 "
                f"({stop - start}, {size}, {size})"
            )
        timings["images"] += time.perf_counter() - t
        t = time.perf_counter()
        png.extend(encode_png(images))
        timings["png"] += time.perf_counter() - t
    return RenderedShard(spec=spec, ids=ids, z=z, eta=eta, png=png)


def shard_table(
    rendered: RenderedShard,
    config: BuildConfig,
    fitted_params: dict[int, dict[str, Any]],
    timings: dict[str, float],
) -> tuple[pa.Table, dict[int, int]]:
    """One shard's rows: the rendered part plus, per noise level, the simulated data and
    their EBEs under that level's fitted parameters (``fitted_params[k]``, a
    ``PopulationParams.to_dict()``). Returns (table, EBE-converged count per level) and adds
    its seconds to ``timings``."""
    from synthoct_bench.nlme import OBS_TIMES, PopulationParams, ebe

    ids, eta, z = rendered.ids, rendered.eta, rendered.z
    n = ids.size
    times = np.broadcast_to(np.asarray(OBS_TIMES, dtype=np.float32), (n, len(OBS_TIMES)))
    columns: dict[str, pa.Array] = {
        "subject_id": pa.array(ids, type=pa.int64()),
        "image": pa.StructArray.from_arrays(
            [pa.array(rendered.png, type=pa.binary()), pa.nulls(n, type=pa.string())],
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
        est = ebe(obs, PopulationParams.from_dict(fitted_params[k]))
        timings["ebe"] += time.perf_counter() - t
        converged[k] = int(np.count_nonzero(np.asarray(est.converged)))

        noisy_col, ebe_col, obs_col = noise_columns(k)
        columns[noisy_col] = _fixed_list(eta_noisy, 3)
        columns[ebe_col] = _fixed_list(np.asarray(est.eta), 3)
        columns[obs_col] = _fixed_list(obs, obs.shape[1])

    levels = config.noise_levels
    schema = arrow_schema(levels)
    table = pa.Table.from_arrays([columns[c] for c in all_columns(levels)], schema=schema)
    return table, converged
