"""Which latent dims does an image generator show most? The paper's section 2.4.

- Method 1: draw z ~ N(0, I), decode, encode again to ẑ; per-dim MSE(z, ẑ).
  Dims the round trip keeps best (smallest MSE) are the most influential.
  Needs an encoder (the β-VAE's μ head, or any image -> latent model).
- Method 2: draw z, replace one dim by a fresh N(0, 1) value, decode both;
  per-dim image MSE. Dims whose change moves the image most (largest MSE) are
  the most influential. Needs only the decoder.

Both take plain callables on numpy arrays, so they work for the β-VAE, the
phantom or a diffusion model alike: ``decode(z, ids) -> images (B, ...)``,
``encode(images) -> (B, latent_dim)``; ``ids`` are the rows' subject indices,
for generators that seed per subject (decode z and its perturbed copy with the
same seed). All draws come from :mod:`synthoct_bench.rng`, keyed by (seed, row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthoct_bench import rng
from synthoct_bench.atomic import save_figure
from synthoct_bench.latent import LATENT_DIM

__all__ = [
    "DecodeFn",
    "EncodeFn",
    "method1_roundtrip_mse",
    "method2_perturbation_mse",
    "SelectionResult",
    "select_latent_dims",
    "vae_decode_fn",
    "vae_encode_fn",
    "generator_decode_fn",
    "plot_selection",
]

DecodeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
EncodeFn = Callable[[np.ndarray], np.ndarray]


def _batches(n: int, batch_size: int) -> list[np.ndarray]:
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def _progress(items: list, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not progress)


def method1_roundtrip_mse(
    decode: DecodeFn,
    encode: EncodeFn,
    n: int = 1_000_000,
    seed: int = 0,
    latent_dim: int = LATENT_DIM,
    batch_size: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """Per-dim MSE(z, encode(decode(z))) over ``n`` draws, (latent_dim,); small = influential."""
    total = np.zeros(latent_dim)
    stream = rng.stream_id("latent_selection/method1")
    for ids in _progress(_batches(n, batch_size), "method 1", progress):
        z = rng.standard_normal(seed, stream, ids, latent_dim)
        z_hat = np.asarray(encode(decode(z, ids)), dtype=np.float64)
        if z_hat.shape != z.shape:
            raise ValueError(f"encode must return shape {z.shape}, got {z_hat.shape}")
        total += np.sum((z - z_hat) ** 2, axis=0)
    return total / n


def method2_perturbation_mse(
    decode: DecodeFn,
    n: int = 10_000,
    seed: int = 0,
    latent_dim: int = LATENT_DIM,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """Per-dim image MSE between decode(z) and decode(z with dim d redrawn), shape
    (latent_dim,); large = influential. The fresh value for (row i, dim d) is its own draw."""
    total = np.zeros(latent_dim)
    stream_z = rng.stream_id("latent_selection/method2/z")
    stream_new = rng.stream_id("latent_selection/method2/new")
    for ids in _progress(_batches(n, batch_size), "method 2", progress):
        z = rng.standard_normal(seed, stream_z, ids, latent_dim)
        fresh = rng.standard_normal(seed, stream_new, ids, latent_dim)
        base = np.asarray(decode(z, ids), dtype=np.float64)
        for d in range(latent_dim):
            z_hat = z.copy()
            z_hat[:, d] = fresh[:, d]
            moved = np.asarray(decode(z_hat, ids), dtype=np.float64)
            total[d] += np.sum(np.mean((moved - base).reshape(len(ids), -1) ** 2, axis=1))
    return total / n


@dataclass
class SelectionResult:
    """Both rankings (most influential first) and whether their top ``k`` dims agree."""

    method1_mse: np.ndarray | None
    method2_mse: np.ndarray
    k: int

    @property
    def method1_ranking(self) -> np.ndarray | None:
        if self.method1_mse is None:
            return None
        return np.argsort(self.method1_mse, kind="stable")

    @property
    def method2_ranking(self) -> np.ndarray:
        return np.argsort(-self.method2_mse, kind="stable")

    @property
    def top_method1(self) -> tuple[int, ...] | None:
        r = self.method1_ranking
        return None if r is None else tuple(int(d) for d in r[: self.k])

    @property
    def top_method2(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.method2_ranking[: self.k])

    @property
    def agree(self) -> bool | None:
        """Same top-k set from both methods (the paper's check); None without Method 1."""
        top1 = self.top_method1
        return None if top1 is None else set(top1) == set(self.top_method2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "top_method1": self.top_method1,
            "top_method2": self.top_method2,
            "agree": self.agree,
            "method1_mse": None if self.method1_mse is None else self.method1_mse.tolist(),
            "method2_mse": self.method2_mse.tolist(),
        }

    def summary(self, show: int = 10) -> str:
        """Readable report: top dims (0-based) of each method and their scores."""
        lines = []
        if self.method1_mse is not None:
            r1 = self.method1_ranking[:show]
            lines.append("Method 1 (round-trip MSE, smallest first; dims 0-based):")
            lines += [f"  dim {d:4d}  mse {self.method1_mse[d]:.4g}" for d in r1]
        lines.append("Method 2 (image MSE when the dim is redrawn, largest first):")
        lines += [
            f"  dim {d:4d}  mse {self.method2_mse[d]:.4g}" for d in self.method2_ranking[:show]
        ]
        if self.agree is None:
            lines.append(f"top {self.k} by Method 2: {list(self.top_method2)}")
        else:
            verdict = "agree" if self.agree else "DISAGREE"
            lines.append(
                f"top {self.k}: Method 1 {list(self.top_method1)}, Method 2 "
                f"{list(self.top_method2)}: {verdict}"
            )
        return "\n".join(lines)


def select_latent_dims(
    decode: DecodeFn,
    encode: EncodeFn | None = None,
    k: int = 3,
    n_method1: int = 1_000_000,
    n_method2: int = 10_000,
    seed: int = 0,
    latent_dim: int = LATENT_DIM,
    batch_size: int = 1024,
    progress: bool = False,
) -> SelectionResult:
    """Run Method 2 (and Method 1 when an encoder is given) and compare their top ``k``."""
    if not 1 <= k <= latent_dim:
        raise ValueError(f"k must be in 1..{latent_dim}, got {k}")
    m1 = None
    if encode is not None:
        m1 = method1_roundtrip_mse(
            decode, encode, n_method1, seed, latent_dim, batch_size, progress
        )
    m2 = method2_perturbation_mse(decode, n_method2, seed, latent_dim, batch_size, progress)
    return SelectionResult(m1, m2, k)


# ---- adapters -----------------------------------------------------------------------------


def vae_decode_fn(vae: Any, batch_size: int = 256) -> DecodeFn:
    """``decode(z, ids)`` for a :class:`~synthoct_bench.generators.vae.BetaVAE` (ids unused)."""
    return lambda z, ids: vae.decode_latents(z, batch_size=batch_size)


def vae_encode_fn(vae: Any, batch_size: int = 256) -> EncodeFn:
    """``encode(images)`` = the β-VAE's μ for images (N, H, W) in [0, 1] or uint8."""

    def encode(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = images.astype(np.float32)
        return vae.encode_images(images, batch_size=batch_size)

    return encode


def generator_decode_fn(generator: Any, seed: int = 0) -> DecodeFn:
    """``decode(z, ids)`` for any ImageGenerator: images in [0, 1], one seed per subject id
    (so z and its perturbed copy are rendered with the same noise)."""
    stream = rng.stream_id("latent_selection/generator_seeds")

    def decode(z: np.ndarray, ids: np.ndarray) -> np.ndarray:
        seeds = rng.subject_seeds(seed, stream, np.asarray(ids))
        return generator.generate(np.asarray(z), seeds).astype(np.float32) / 255.0

    return decode


def plot_selection(result: SelectionResult, path: Any) -> Any:
    """Per-dim scores of both methods (top k highlighted), written atomically as PNG."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("Method 2: image MSE (large = influential)", result.method2_mse, result.top_method2)]
    if result.method1_mse is not None:
        panels.insert(
            0,
            (
                "Method 1: round-trip MSE (small = influential)",
                result.method1_mse,
                result.top_method1,
            ),
        )
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), squeeze=False)
    for ax, (title, scores, top) in zip(axes[:, 0], panels, strict=True):
        colors = ["C3" if d in top else "C0" for d in range(len(scores))]
        ax.bar(np.arange(len(scores)), scores, color=colors, width=0.8)
        for d in top:
            ax.annotate(str(d), (d, scores[d]), ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[-1, 0].set_xlabel("latent dim (0-based)")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, hspace=0.45)
    return save_figure(fig, path, dpi=90)
