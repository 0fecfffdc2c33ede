"""Augmentation in a VAE's latent space (Ramisetti 2024), batched, with its adaptive schedule.

Ramisetti 2024 augments autoencoder latents with Gaussian noise (σ₀ = 0.1), cutout of
10 random dims and mixup with the reversed batch (α₀ = 0.2), and picks one of
them each epoch from the trend of the last three validation losses, with a random
search of their parameters. Read closely its listings have flaws; this module
implements the rule with each one fixed, as follows:

1. *Unreachable branch.* ``elif avg > 0.05`` precedes ``elif avg > 0.15``, so
   "high" never fires from a falling loss. Here the larger threshold is tested first.
2. *Scale-bound thresholds.* 0.05 and 0.15 are absolute MSEs of CelebA pixels.
   Here they are fractions of the first validation loss the scheduler sees, so the
   rule means the same for any loss (``relative=False`` restores absolute values).
3. *Two training loops.* The first listing calls the plain step in every epoch, so
   nothing is ever augmented; the second augments from epoch 2. Here the first
   epoch is plain and every later one augmented, as the prose says.
4. *Mixup weight.* ``mixup_alpha`` is used as the mixing weight itself (0.2 → each
   sample is 80% its partner). Here λ ~ Beta(α, α) per sample, as in mixup (Zhang
   et al. 2018), and the targets are mixed with the same λ.
5. *Cutout with repeats.* Indices drawn with replacement zero fewer than
   ``mask_size`` dims. Here exactly ``n_dims`` distinct dims are zeroed per sample.
6. *Parameter search.* Candidates are scored by the validation loss *of augmented
   latents*, which always favours the weakest augmentation. Here a candidate is
   scored by a caller-given ``evaluate(params)`` (e.g. a short training trial judged
   on clean validation data); without one the parameters stay as they are.

For regression, plain mixup pairs samples whatever their targets; ``cmixup`` is
C-Mixup (Yao et al. 2022): partners drawn with probability ∝ exp(−‖yᵢ − yⱼ‖² /
(2·bandwidth²)) within the batch. Nothing here knows which latent dims drive η.

Every draw comes from a ``torch.Generator``; :func:`generator_for` keys one by
(seed, epoch, step), so a run repeats bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from synthoct_bench import rng as _rng

__all__ = [
    "AUGMENTATIONS",
    "LatentAugmentation",
    "gaussian",
    "cutout",
    "mixup",
    "cmixup",
    "augment",
    "augmented_images",
    "beta_weights",
    "generator_for",
    "AdaptiveSchedule",
]

#: Latent augmentations by name; ``none`` leaves the batch as it is.
AUGMENTATIONS: tuple[str, ...] = ("none", "gaussian", "cutout", "mixup", "cmixup")


@dataclass(frozen=True)
class LatentAugmentation:
    """Which augmentation and its parameters (Ramisetti's (2024) starting values).

    ``sigma``: Gaussian noise SD. ``n_dims``: dims cutout zeroes. ``alpha``: mixup's
    Beta(α, α). ``bandwidth``: C-Mixup's kernel width in target units.
    """

    name: str = "none"
    sigma: float = 0.1
    n_dims: int = 10
    alpha: float = 0.2
    bandwidth: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in AUGMENTATIONS:
            raise ValueError(
                f"unknown latent augmentation {self.name!r}; choose one of "
                f"{', '.join(AUGMENTATIONS)}"
            )
        if self.sigma < 0 or self.n_dims < 0 or self.alpha <= 0 or self.bandwidth <= 0:
            raise ValueError(
                f"need sigma >= 0, n_dims >= 0, alpha > 0 and bandwidth > 0; got {self}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def generator_for(seed: int, *key: int) -> torch.Generator:
    """A torch generator keyed by (seed, key…), e.g. (seed, epoch, step)."""
    return torch.Generator().manual_seed(_rng.stream_id("latent_augment", seed, *key) % 2**63)


def gaussian(z: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """z + σ·ε, ε ~ N(0, I)."""
    eps = torch.randn(z.shape, generator=generator, dtype=z.dtype)
    return z + sigma * eps.to(z.device)


def cutout(z: torch.Tensor, n_dims: int, generator: torch.Generator) -> torch.Tensor:
    """z with ``n_dims`` distinct random dims zeroed in each row (B, d)."""
    b, d = z.shape
    k = min(int(n_dims), d)
    if k == 0:
        return z
    order = torch.rand((b, d), generator=generator).argsort(dim=1)[:, :k]
    keep = torch.ones((b, d), dtype=z.dtype)
    keep.scatter_(1, order, 0.0)
    return z * keep.to(z.device)


def beta_weights(alpha: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws of λ ~ Beta(α, α), float64, by inverting the CDF of uniforms from
    ``generator`` (torch's Beta sampler takes no generator)."""
    from scipy.special import betaincinv

    u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    return torch.from_numpy(betaincinv(alpha, alpha, u))


def _mix(
    z: torch.Tensor,
    y: torch.Tensor | None,
    partner: torch.Tensor,
    alpha: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    lam = beta_weights(alpha, z.shape[0], generator).to(z.device)[:, None]
    z_mix = (lam * z + (1 - lam) * z[partner]).to(z.dtype)
    if y is None:
        return z_mix, None
    return z_mix, (lam * y + (1 - lam) * y[partner]).to(y.dtype)


def mixup(
    z: torch.Tensor, y: torch.Tensor | None, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each row mixed with its partner in the reversed batch (Ramisetti 2024), λ ~ Beta(α, α)
    per row; y (B, k), if given, mixed with the same λ."""
    partner = torch.arange(z.shape[0] - 1, -1, -1, device=z.device)
    return _mix(z, y, partner, alpha, generator)


def cmixup(
    z: torch.Tensor, y: torch.Tensor, alpha: float, bandwidth: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """C-Mixup: each row's partner drawn within the batch with probability ∝
    exp(−‖yᵢ − yⱼ‖² / (2·bandwidth²)) (itself excluded when it has another), then mixed
    as :func:`mixup` does."""
    if y is None:
        raise ValueError("cmixup mixes by the targets: pass y")
    d2 = torch.cdist(y.double(), y.double()) ** 2
    w = torch.exp(-d2 / (2 * bandwidth**2))
    if y.shape[0] > 1:
        w.fill_diagonal_(0.0)
    w = w + 1e-300
    partner = torch.multinomial(w.cpu(), 1, generator=generator).reshape(-1).to(z.device)
    z_mix, y_mix = _mix(z, y, partner, alpha, generator)
    assert y_mix is not None
    return z_mix, y_mix


def augment(
    z: torch.Tensor,
    y: torch.Tensor | None,
    aug: LatentAugmentation,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply ``aug`` to a batch of latents z (B, d) and targets y (B, k) or None."""
    if aug.name == "none":
        return z, y
    if aug.name == "gaussian":
        return gaussian(z, aug.sigma, generator), y
    if aug.name == "cutout":
        return cutout(z, aug.n_dims, generator), y
    if aug.name == "mixup":
        return mixup(z, y, aug.alpha, generator)
    return cmixup(z, y, aug.alpha, aug.bandwidth, generator)


@dataclass
class AdaptiveSchedule:
    """Ramisetti's (2024) adaptive choice of augmentation, with its flaws fixed (module docstring).

    After each epoch call :meth:`update` with the validation loss; :attr:`current`
    is the augmentation for the next epoch. With a falling loss over the last
    ``window`` values: mean below ``thresholds[0]`` → ``low`` (gaussian), above
    ``thresholds[1]`` → ``high`` (mixup), else ``medium`` (cutout); a loss that is
    not falling → ``high``. Thresholds are fractions of the first loss seen unless
    ``relative`` is False. ``regression=True`` uses C-Mixup for ``high``. With an
    ``evaluate`` callback, each update also runs Ramisetti's (2024) random search: ``samples``
    draws of (σ in [0.01, 0.5], cutout dims in [1, 20], α in [0.1, 0.9]) each scored
    by ``evaluate(LatentAugmentation) -> loss``, the best kept.
    """

    thresholds: tuple[float, float] = (0.05, 0.15)
    relative: bool = True
    window: int = 3
    regression: bool = True
    base: LatentAugmentation = field(default_factory=LatentAugmentation)
    samples: int = 5
    seed: int = 0
    losses: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    current: LatentAugmentation = field(default_factory=LatentAugmentation)

    def __post_init__(self) -> None:
        low, high = self.thresholds
        if not 0 <= low <= high:
            raise ValueError(f"thresholds must satisfy 0 <= low <= high, got {self.thresholds}")
        if self.window < 2:
            raise ValueError(f"window must be >= 2 (a trend needs two losses), got {self.window}")

    def category(self) -> str:
        """``low``, ``medium`` or ``high`` from the losses so far (``none`` before any)."""
        if not self.losses:
            return "none"
        last = np.asarray(self.losses[-self.window :], dtype=np.float64)
        ref = self.losses[0] if self.relative and self.losses[0] > 0 else 1.0
        avg = float(last.mean()) / ref
        falling = last.size >= 2 and bool(np.all(np.diff(last) < 0))
        if not falling:
            return "high"
        if avg > self.thresholds[1]:
            return "high"
        if avg > self.thresholds[0]:
            return "medium"
        return "low"

    def update(
        self,
        val_loss: float,
        evaluate: Callable[[LatentAugmentation], float] | None = None,
    ) -> LatentAugmentation:
        """Record an epoch's validation loss and choose the next epoch's augmentation."""
        if not math.isfinite(val_loss):
            raise ValueError(f"validation loss must be finite, got {val_loss}")
        self.losses.append(float(val_loss))
        cat = self.category()
        self.categories.append(cat)
        name = {"low": "gaussian", "medium": "cutout"}.get(
            cat, "cmixup" if self.regression else "mixup"
        )
        params = self.base
        if evaluate is not None:
            params = self._search(name, evaluate)
        self.current = replace(params, name=name)
        return self.current

    def _search(
        self, name: str, evaluate: Callable[[LatentAugmentation], float]
    ) -> LatentAugmentation:
        g = np.random.default_rng([self.seed, len(self.losses)])
        best, best_loss = self.base, math.inf
        for _ in range(self.samples):
            cand = replace(
                self.base,
                name=name,
                sigma=float(g.uniform(0.01, 0.5)),
                n_dims=int(g.integers(1, 21)),
                alpha=float(g.uniform(0.1, 0.9)),
            )
            loss = float(evaluate(cand))
            if loss < best_loss:
                best, best_loss = cand, loss
        self.base = replace(best, name=self.base.name)
        return best

    def history(self) -> list[dict[str, Any]]:
        """One row per update: the loss, the category and (last) the augmentation."""
        return [
            {"epoch": i + 1, "val_loss": loss, "category": cat}
            for i, (loss, cat) in enumerate(zip(self.losses, self.categories, strict=True))
        ]


def augmented_images(
    vae: Any,
    images: np.ndarray,
    targets: np.ndarray,
    aug: LatentAugmentation,
    copies: int = 1,
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Extra training images from augmented latents: encode ``images`` (N, H, W) uint8
    with ``vae`` (μ), augment each batch ``copies`` times, decode. Returns (uint8 images
    (N·copies, S, S) at the VAE's size, targets (N·copies, k), mixed for mixup)."""
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    if aug.name == "none":
        raise ValueError("augmented_images needs an augmentation other than 'none'")
    mu = torch.from_numpy(vae.encode_images(images, batch_size=batch_size))
    y = torch.as_tensor(np.asarray(targets, np.float64))
    out_x, out_y = [], []
    for c in range(copies):
        for b, start in enumerate(range(0, len(mu), batch_size)):
            zb, yb = augment(mu[start : start + batch_size], y[start : start + batch_size], aug,
                             generator_for(seed, c, b))  # fmt: skip
            decoded = vae.decode_latents(zb.float().numpy(), batch_size=batch_size)
            out_x.append(np.clip(np.rint(decoded * 255.0), 0, 255).astype(np.uint8))
            out_y.append(yb.numpy())
    return np.concatenate(out_x), np.concatenate(out_y)
