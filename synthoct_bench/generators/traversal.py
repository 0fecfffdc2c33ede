"""Latent traversal figures like the paper's Figure 5, for any image generator.

Rows are latent dims, columns are values (default -3..3 in 7 steps). Every cell
starts from one base latent whose chosen dims are all set to 0 (the centre
column), then sets that row's dim to the column's value; all cells share one
seed, so only the traversed dim changes between cells.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthoct_bench import latent
from synthoct_bench.atomic import save_figure
from synthoct_bench.generators.base import ImageGenerator

__all__ = ["traversal_latents", "traversal_grid", "save_traversal_figure", "dim_labels"]

_DEFAULT_VALUES = np.linspace(-3.0, 3.0, 7)


def traversal_latents(
    dims: Sequence[int],
    values: Sequence[float] | np.ndarray = _DEFAULT_VALUES,
    base_z: np.ndarray | None = None,
    seed: int = 0,
    latent_dim: int = latent.LATENT_DIM,
) -> np.ndarray:
    """Latents (len(dims) * len(values), latent_dim) in row-major grid order."""
    dims = [int(d) for d in dims]
    values = np.asarray(values, dtype=np.float64)
    if not dims:
        raise ValueError("dims must name at least one latent dim")
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad:
        raise ValueError(f"dims {bad} are outside 0..{latent_dim - 1} (dims are 0-based)")
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError("values must be a non-empty 1-d array of finite numbers")
    if base_z is None:
        base = latent.sample_z(np.array([0]), seed, latent_dim)[0]
    else:
        base = np.asarray(base_z, dtype=np.float64)
        if base.shape != (latent_dim,) or not np.isfinite(base).all():
            raise ValueError(f"base_z must be a finite vector of shape ({latent_dim},)")
        base = base.copy()
    base[dims] = 0.0
    z = np.repeat(base[None, :], len(dims) * values.size, axis=0)
    for r, d in enumerate(dims):
        z[r * values.size : (r + 1) * values.size, d] = values
    return z


def traversal_grid(
    generator: ImageGenerator,
    dims: Sequence[int],
    values: Sequence[float] | np.ndarray = _DEFAULT_VALUES,
    base_z: np.ndarray | None = None,
    seed: int = 0,
    gap: int = 2,
) -> np.ndarray:
    """One uint8 image (rows·H + gaps, cols·W + gaps): row r traverses dims[r] over values."""
    values = np.asarray(values, dtype=np.float64)
    z = traversal_latents(dims, values, base_z, seed)
    seeds = np.full(z.shape[0], int(seed), dtype=np.int64)
    images = np.asarray(generator.generate(z, seeds))
    n_rows, n_cols = len(dims), values.size
    h, w = images.shape[1:]
    grid = np.full(
        (n_rows * h + (n_rows - 1) * gap, n_cols * w + (n_cols - 1) * gap), 255, np.uint8
    )
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = image
    return grid


def dim_labels(generator: ImageGenerator, dims: Sequence[int]) -> list[str]:
    """Row labels "dim 91: vertical_position" from the generator's config()["dims"] if any."""
    try:
        names = {int(d): n for n, d in dict(generator.get_config().get("dims", {})).items()}
    except (AttributeError, TypeError, ValueError):
        names = {}
    return [f"dim {d}" + (f": {names[d]}" if d in names else "") for d in dims]


def save_traversal_figure(
    generator: ImageGenerator,
    dims: Sequence[int],
    path: str | os.PathLike,
    values: Sequence[float] | np.ndarray = _DEFAULT_VALUES,
    base_z: np.ndarray | None = None,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Write the traversal grid as a PNG with row labels and column values; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=np.float64)
    labels = list(labels) if labels is not None else dim_labels(generator, dims)
    if len(labels) != len(dims):
        raise ValueError(f"labels has {len(labels)} entries for {len(dims)} dims")
    z = traversal_latents(dims, values, base_z, seed)
    images = np.asarray(generator.generate(z, np.full(z.shape[0], int(seed), dtype=np.int64)))
    n_rows, n_cols = len(dims), values.size
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.6 * n_cols + 1.6, 1.6 * n_rows + 0.5), squeeze=False
    )
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        ax = axes[r, c]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(f"{values[c]:+.1f}", fontsize=9)
        if c == 0:
            ax.set_ylabel(labels[r], fontsize=8)
    fig.suptitle(title or f"{type(generator).__name__}: latent traversal", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
