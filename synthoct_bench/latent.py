"""Latent vectors z, the random effects η they carry, and the paper's noise injection.

z ~ N(0, I_128) is shared by the image generator and the NLME model; η is z at
three chosen dimensions; η̂ = (η + r)/√(1+σ²), r ~ N(0, σ² I) (paper eq. 10)
lowers how much of η̂ an image can explain to 1/(1+σ²).
All draws are keyed by (seed, subject index): see :mod:`synthoct_bench.rng`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthoct_bench import rng

__all__ = [
    "LATENT_DIM",
    "PAPER_ETA_DIMS",
    "NOISE_LEVELS",
    "sample_z",
    "image_seeds",
    "select_eta",
    "add_noise",
    "residual_stream",
    "theoretical_max_r2",
]

LATENT_DIM = 128
#: The reference VAE's chosen dims, 1-based 92, 111, 50 in the paper, here 0-based.
PAPER_ETA_DIMS: tuple[int, int, int] = (91, 110, 49)
#: σ² of the paper's five noise levels.
NOISE_LEVELS: tuple[int, ...] = (0, 1, 9, 18, 49)


def sample_z(subject_ids: np.ndarray, seed: int, dim: int = LATENT_DIM) -> np.ndarray:
    """z ~ N(0, I_dim) for each subject, shape (N, dim), float64."""
    if dim < 1:
        raise ValueError(f"latent dim must be >= 1, got {dim}")
    return rng.standard_normal(seed, rng.stream_id("z"), subject_ids, dim)


def image_seeds(subject_ids: np.ndarray, seed: int) -> np.ndarray:
    """The per-subject generator seeds (speckle, diffusion noise), int64 (N,)."""
    return rng.subject_seeds(seed, rng.stream_id("image"), subject_ids)


def select_eta(z: np.ndarray, dims: Sequence[int] = PAPER_ETA_DIMS) -> np.ndarray:
    """η = z[:, dims], shape (N, len(dims))."""
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (N, latent_dim), got {z.shape}")
    dims = list(dims)
    bad = [d for d in dims if not 0 <= d < z.shape[1]]
    if bad:
        raise ValueError(f"eta dims {bad} are outside 0..{z.shape[1] - 1} (dims are 0-based)")
    if len(set(dims)) != len(dims):
        raise ValueError(f"eta dims must be distinct, got {dims}")
    return z[:, dims]


def add_noise(eta: np.ndarray, noise: float, subject_ids: np.ndarray, seed: int) -> np.ndarray:
    """η̂ = (η + r)/√(1+σ²) with r ~ N(0, σ² I); each level draws its own r.

    Keeps η̂ ~ N(0, I) when η ~ N(0, I), so the NLME population is the same at
    every level and only the image's share of the signal changes.
    """
    eta = np.asarray(eta, dtype=np.float64)
    if eta.ndim != 2:
        raise ValueError(f"eta must have shape (N, k), got {eta.shape}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise (the variance sigma2) must be finite and >= 0, got {noise}")
    ids = np.asarray(subject_ids)
    if ids.shape != (eta.shape[0],):
        raise ValueError(f"subject_ids must have shape ({eta.shape[0]},), got {ids.shape}")
    if noise == 0:
        return eta.copy()
    r = rng.standard_normal(seed, rng.stream_id("noise", float(noise)), ids, eta.shape[1])
    return (eta + np.sqrt(noise) * r) / np.sqrt(1.0 + noise)


def theoretical_max_r2(noise: float) -> float:
    """Largest R² any image model can reach for η̂ at noise level σ²: 1/(1+σ²)."""
    return 1.0 / (1.0 + float(noise))


def residual_stream(noise: int | str) -> str:
    """The random stream of the residual error of the observations at noise level
    ``noise``: the dataset's ``obs`` columns and any re-simulation of them use it."""
    return f"residual/s{noise}"
