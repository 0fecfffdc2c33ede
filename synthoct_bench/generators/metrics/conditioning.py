"""Do generated images carry the latent they were conditioned on?

Generate images from z, encode them (the β-VAE's μ, or any image -> latent
encoder), and compare the encoding with z on the dims that matter (the VAE's
active dims, or the η dims): MSE and Pearson correlation per dim, against the
same statistics for shuffled (image, z) pairs, which is what an image carrying
no information about z would score. On the phantom, or on any ImageGenerator,
this tells how recoverable each η dim is from the image alone.

When no trained encoder is at hand, :func:`fit_linear_probe` fits a ridge
regression from downsampled pixels to z on separate subjects: a floor on what
an image model can recover.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench import rng
from synthoct_bench.atomic import save_figure

__all__ = ["conditioning_check", "fit_linear_probe", "plot_conditioning"]

Encoder = Callable[[np.ndarray], np.ndarray]


def _as_encoder(encoder: Any) -> Encoder:
    if hasattr(encoder, "encode_images"):
        return encoder.encode_images
    if callable(encoder):
        return encoder
    raise ValueError(
        "encoder must be a callable images (N, H, W) -> (N, latent_dim) or have encode_images()"
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise correlation of a (N, k) with b (..., N, k)."""
    a = a - a.mean(axis=-2, keepdims=True)
    b = b - b.mean(axis=-2, keepdims=True)
    num = np.sum(a * b, axis=-2)
    den = np.sqrt(np.sum(a**2, axis=-2) * np.sum(b**2, axis=-2))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def conditioning_check(
    generator: Any,
    encoder: Any,
    z: np.ndarray,
    seeds: np.ndarray,
    dims: Sequence[int] | None = None,
    n_shuffles: int = 100,
    seed: int = 0,
    return_encoded: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], np.ndarray]:
    """Encode ``generator.generate(z, seeds)`` and compare with z on ``dims``.

    Args:
        generator: any ImageGenerator (``generate(z, seeds)`` -> uint8 (N, H, W)).
        encoder: a BetaVAE (its μ) or a callable images -> (N, latent_dim).
        z: latents (N, 128); seeds: per-subject seeds (N,).
        dims: latent dims to check (default ``generator.eta_dims``).
        n_shuffles: shuffled pairings for the no-information baseline.

    Returns a dict of per-dim lists: ``mse``, ``corr``, ``shuffled_mse`` (mean over
    shuffles), ``shuffled_abs_corr_q95`` (95th percentile of |corr| under shuffling)
    and ``recovered`` (|corr| above that band), plus means over dims and ``n``.
    With ``return_encoded`` also the encodings (N, latent_dim).
    """
    z = np.asarray(z, dtype=np.float64)
    seeds = np.asarray(seeds)
    if z.ndim != 2 or len(z) < 3:
        raise ValueError(f"z must have shape (N, latent_dim) with N >= 3, got {z.shape}")
    if seeds.shape != (len(z),):
        raise ValueError(f"seeds must have shape ({len(z)},), got {seeds.shape}")
    dims = list(getattr(generator, "eta_dims", ()) if dims is None else dims)
    if not dims or any(not 0 <= d < z.shape[1] for d in dims):
        raise ValueError(f"dims must be a non-empty list of latent dims in 0..{z.shape[1] - 1}")
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be >= 1, got {n_shuffles}")
    images = generator.generate(z, seeds)
    mu = np.asarray(_as_encoder(encoder)(images), dtype=np.float64)
    if mu.ndim != 2 or len(mu) != len(z) or mu.shape[1] <= max(dims):
        raise ValueError(
            f"encoder returned shape {mu.shape}; expected ({len(z)}, >{max(dims)}) latents"
        )
    zs, ms = z[:, dims], mu[:, dims]
    ids = np.arange(n_shuffles)
    keys = rng.uniform(seed, rng.stream_id("conditioning_check/shuffle"), ids, len(z))
    perms = np.argsort(keys, axis=1)  # (n_shuffles, N)
    shuffled = zs[perms]  # (n_shuffles, N, k)
    corr = _pearson(ms, zs)
    shuffled_corr = _pearson(ms[None], shuffled)
    q95 = np.quantile(np.abs(shuffled_corr), 0.95, axis=0)
    result = {
        "n": len(z),
        "dims": dims,
        "mse": np.mean((ms - zs) ** 2, axis=0).tolist(),
        "corr": corr.tolist(),
        "r2_linear": (corr**2).tolist(),
        "shuffled_mse": np.mean((ms[None] - shuffled) ** 2, axis=(0, 1)).tolist(),
        "shuffled_corr_mean": shuffled_corr.mean(axis=0).tolist(),
        "shuffled_abs_corr_q95": q95.tolist(),
        "recovered": (np.abs(corr) > q95).tolist(),
        "mean_corr": float(corr.mean()),
        "mean_shuffled_abs_corr_q95": float(q95.mean()),
        "generator": generator.get_config() if hasattr(generator, "get_config") else None,
    }
    return (result, mu) if return_encoded else result


def fit_linear_probe(
    images: np.ndarray, z: np.ndarray, size: int = 32, ridge: float = 1.0
) -> Encoder:
    """A ridge regression from ``size``×``size`` block-averaged pixels to z.

    Fit it on subjects other than those it is checked on. Returns an encoder
    images (N, H, W) -> (N, latent_dim).
    """
    images = np.asarray(images)
    z = np.asarray(z, dtype=np.float64)
    if images.ndim != 3 or len(images) != len(z):
        raise ValueError(
            f"need images (N, H, W) and z (N, d) with the same N: {images.shape}, {z.shape}"
        )
    h, w = images.shape[1:]
    if h % size or w % size:
        raise ValueError(f"image side {h}x{w} must be a multiple of the probe size {size}")

    def features(imgs: np.ndarray) -> np.ndarray:
        imgs = np.asarray(imgs, dtype=np.float64) / 255.0
        n = len(imgs)
        x = imgs.reshape(n, size, imgs.shape[1] // size, size, imgs.shape[2] // size)
        return x.mean(axis=(2, 4)).reshape(n, -1)

    x = features(images)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    x = (x - mean) / std
    z_mean = z.mean(axis=0)
    weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (z - z_mean))

    def encode(imgs: np.ndarray) -> np.ndarray:
        if np.asarray(imgs).shape[1:] != (h, w):
            raise ValueError(f"the probe was fitted on {h}x{w} images, got {np.shape(imgs)[1:]}")
        return ((features(imgs) - mean) / std) @ weights + z_mean

    return encode


def plot_conditioning(
    z: np.ndarray, encoded: np.ndarray, result: dict[str, Any], path: str | os.PathLike
) -> Path:
    """Scatter of encoding against z for each checked dim, with r and the shuffle band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = result["dims"]
    fig, axes = plt.subplots(1, len(dims), figsize=(3.2 * len(dims), 3.2), squeeze=False)
    for ax, d, r, q in zip(
        axes[0], dims, result["corr"], result["shuffled_abs_corr_q95"], strict=True
    ):
        ax.scatter(z[:, d], encoded[:, d], s=4, alpha=0.5)
        ax.set_title(f"dim {d}: r = {r:.2f} (shuffled |r| < {q:.2f})", fontsize=9)
        ax.set_xlabel("z")
    axes[0, 0].set_ylabel("encoded")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.88, wspace=0.3)
    return save_figure(fig, path, dpi=90)
