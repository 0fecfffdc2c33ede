"""Training objectives of the VAE family, one module and one typed config each.

Every objective is an ``nn.Module`` called as::

    out = objective(x, recon, mu, logvar, z, dataset_size=N, anneal=1.0, generator=g)
    out.loss.backward(); out.terms  # named scalar terms for logging

with images x (B, C, H, W) in [0, 1], the encoder's μ and log σ² (B, d), latent
samples z = μ + σ·ε and their reconstructions. Objectives that use one sample
per image take z (B, d) and recon (B, C, H, W); IWAE takes k samples,
z (k, B, d) and recon (k, B, C, H, W), so a trainer can decode one (k·B) batch
(``decoder(z.flatten(0, 1)).view(k, B, ...)``) or call the decoder k times and
stack. ``objective.num_samples`` says how many it wants. ``dataset_size`` is the
number of training images (β-TCVAE's estimator and the batch/N KL weight of seed
004's objectives need it); ``anneal`` in [0, 1] scales the regularising terms (a
warm-up); ``generator`` keys the prior draws InfoVAE's MMD needs.

Registry :data:`OBJECTIVES` (name -> class; ``get_objective(name, config)``):

- ``beta``: the paper's α·MSE + Σ perceptual + β·KL (VGG16 terms optional).
- ``vae``: seed 004's standard VAE, MSE + w·KL with w = batch/N.
- ``tcvae``: β-TCVAE (Chen et al. 2018; seed 003): reconstruction + α·index-code
  MI + β·total correlation + γ·dimension-wise KL, with minibatch-stratified
  estimates of log q(z) and log Π_j q(z_j) from the dataset size N.
- ``iwae``: the importance-weighted bound (Burda et al. 2016) with k samples.
- ``infovae``: InfoVAE (Zhao et al. 2019) with an inverse multiquadric MMD.
- ``logcosh``: log-cosh reconstruction (Chen et al. 2019) + w·KL.

Reconstruction terms are per-image errors (squared, or log-cosh) averaged over
the batch; ``reduction`` says whether an image's error is the mean over its
pixels (the ``F.mse_loss`` scale of the code seed 004 adapted, which its
constants go with) or the sum (a Gaussian log-likelihood up to a constant, the
scale β-TCVAE's nats need). Where a seed's formula is inconsistent the config's
docstring says which reading is implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from synthoct_bench.generators.vae import kl_divergence

__all__ = [
    "ObjectiveOutput",
    "Objective",
    "BetaConfig",
    "BetaObjective",
    "VanillaVAEConfig",
    "VanillaVAEObjective",
    "TCVAEConfig",
    "TCVAEObjective",
    "IWAEConfig",
    "IWAEObjective",
    "InfoVAEConfig",
    "InfoVAEObjective",
    "LogCoshConfig",
    "LogCoshObjective",
    "OBJECTIVES",
    "get_objective",
    "objective_config",
    "gaussian_log_density",
    "log_cosh",
    "kernel_matrix",
    "mmd",
    "log_importance_weights",
    "tc_decomposition",
]

_LOG_2PI = math.log(2 * math.pi)
_REDUCTIONS = ("mean", "sum")


# ---- building blocks ------------------------------------------------------------------------


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; μ, exp(log σ²)), broadcasting the three arguments."""
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def _standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + z**2)


def log_cosh(u: torch.Tensor) -> torch.Tensor:
    """log cosh(u) without overflow: |u| + log1p(exp(−2|u|)) − log 2."""
    a = u.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)


def _per_image(err: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-image reduction over the last three (C, H, W) dims of an elementwise error."""
    flat = err.flatten(start_dim=err.ndim - 3)
    return flat.mean(-1) if reduction == "mean" else flat.sum(-1)


def kernel_matrix(a: torch.Tensor, b: torch.Tensor, kernel: str, scale: float) -> torch.Tensor:
    """k(a_i, b_j) (n, m) for a (n, d), b (m, d): ``"imq"`` C / (C + ‖a − b‖²) or ``"rbf"``
    exp(−‖a − b‖² / C), C = ``scale``."""
    sq = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    if kernel == "imq":
        return scale / (scale + sq)
    if kernel == "rbf":
        return torch.exp(-sq / scale)
    raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}")


def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel: str = "imq",
    scale: float | None = None,
    unbiased: bool = True,
) -> torch.Tensor:
    """Squared maximum mean discrepancy between samples x (n, d) and y (m, d).

    ``scale`` defaults to 2·d, the inverse multiquadric's C for a unit-variance
    prior (Tolstikhin et al. 2018, WAE). ``unbiased``: the U-statistic (Gretton et
    al. 2012), for equal sizes 1/(n(n−1)) Σ_{i≠j} [k(x_i,x_j) + k(y_i,y_j) −
    k(x_i,y_j) − k(x_j,y_i)], else the within-sample sums over i ≠ j and the full
    cross mean; otherwise the biased V-statistic. Both are exactly 0 for y = x.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must be (n, d) and (m, d), got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    n, m = x.shape[0], y.shape[0]
    c = 2.0 * x.shape[1] if scale is None else float(scale)
    kxx, kyy = kernel_matrix(x, x, kernel, c), kernel_matrix(y, y, kernel, c)
    kxy = kernel_matrix(x, y, kernel, c)
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples on each side")
    if n == m:
        h = kxx + kyy - kxy - kxy.T
        return (h.sum() - h.diagonal().sum()) / (n * (n - 1))
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()


def log_importance_weights(
    batch_size: int, dataset_size: int, estimator: str = "mss", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """log W (B, B) with q(z_i) ≈ Σ_j W_ij q(z_i | x_j) over a minibatch of B drawn from N.

    ``"mss"``, minibatch-stratified: the sample's own index is one stratum with its
    exact weight 1/N; the other B − 1 batch members, a uniform draw from the
    remaining N − 1, share (N − 1)/N, each (N − 1)/(N(B − 1)). Rows sum to 1, and
    at B = N the estimate is the exact mixture. Chen et al. (2018, App. C.2)
    stratify with one specially weighted member instead; the public copies of that
    matrix are contested (in the disentangling-vae repository), so this is the plain
    two-stratum form of the same idea.

    ``"mws"``, minibatch-weighted (Chen et al. 2018, App. C.1): every entry
    1/(N·B), as the paper writes it. Rows sum to 1/N, so log q(z) is low by log N
    and the total-correlation value carries a constant (d − 1)·log N (no effect on
    gradients); its own-sample term dominates at small batches.
    """
    if batch_size < 2 and estimator == "mss":
        raise ValueError("minibatch-stratified sampling needs a batch of at least 2")
    if dataset_size < batch_size:
        raise ValueError(f"dataset_size {dataset_size} is smaller than the batch {batch_size}")
    b, n = int(batch_size), int(dataset_size)
    if estimator == "mss":
        w = torch.full((b, b), math.log((n - 1) / (n * (b - 1))), dtype=dtype)
        w.fill_diagonal_(-math.log(n))
        return w
    if estimator == "mws":
        return torch.full((b, b), -math.log(n * b), dtype=dtype)
    raise ValueError(f"estimator must be 'mss' or 'mws', got {estimator!r}")


def tc_decomposition(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    estimator: str = "mss",
) -> dict[str, torch.Tensor]:
    """Batch means of the three parts of E_n KL(q(z|x_n) ‖ p(z)) (Chen et al. 2018):
    ``mi`` = log q(z|x) − log q(z), ``tc`` = log q(z) − Σ_j log q(z_j), ``dwkl`` =
    Σ_j log q(z_j) − log p(z), for z (B, d) drawn from q(z | x_i) = N(μ_i, σ_i²), with
    q(z) and q(z_j) estimated over the batch by :func:`log_importance_weights`. The
    three sum to the batch's Monte Carlo KL, whatever the estimator."""
    b = z.shape[0]
    mat = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # (B, B, d)
    log_w = log_importance_weights(b, dataset_size, estimator, dtype=z.dtype).to(z.device)
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(-1)
    log_qz = torch.logsumexp(log_w + mat.sum(-1), dim=1)
    log_prod_qzj = torch.logsumexp(log_w[:, :, None] + mat, dim=1).sum(-1)
    log_pz = _standard_normal_log_density(z).sum(-1)
    return {
        "mi": (log_qz_x - log_qz).mean(),
        "tc": (log_qz - log_prod_qzj).mean(),
        "dwkl": (log_prod_qzj - log_pz).mean(),
    }


# ---- configs --------------------------------------------------------------------------------


class _Config:
    """to_dict / from_dict for the frozen objective configs (tuples as lists)."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(names)}")
        return cls(**d)

    def _check(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{type(self).__name__}.{f.name} must be finite, got {value}")
        reduction = getattr(self, "reduction", "mean")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        kl_weight = getattr(self, "kl_weight", None)
        if kl_weight is not None and kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0 or None (batch/N), got {kl_weight}")


@dataclass(frozen=True)
class BetaConfig(_Config):
    """The paper's loss (section 2.1): α·MSE + γ·P(relu1_2) + τ·P(relu3_3) + β·KL, with
    MSE the pixel mean and KL summed over dims; β is the value after the warm-up."""

    alpha: float = 400 / 3
    beta: float = 0.0376
    #: False drops the VGG16 terms (no VGG is built).
    perceptual: bool = True
    perceptual_layers: tuple[str, ...] = ("relu1_2", "relu3_3")
    #: one weight per layer (γ, τ).
    perceptual_weights: tuple[float, ...] = (25 / 12, 1 / 3)
    #: VGG16 weights file; None = torchvision's cache, else random init with a warning.
    vgg_weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "perceptual_layers", tuple(self.perceptual_layers))
        object.__setattr__(
            self, "perceptual_weights", tuple(float(w) for w in self.perceptual_weights)
        )
        if len(self.perceptual_weights) != len(self.perceptual_layers):
            raise ValueError(
                f"perceptual_weights {self.perceptual_weights} needs one weight per layer in "
                f"perceptual_layers {self.perceptual_layers}"
            )
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        self._check()


@dataclass(frozen=True)
class VanillaVAEConfig(_Config):
    """Seed 004's standard VAE: recon_weight·MSE + w·KL, w = ``kl_weight`` or batch/N."""

    recon_weight: float = 1.0
    #: None: batch/N, the KL weight of the public PyTorch-VAE code seed 004 adapted.
    kl_weight: float | None = None
    reduction: str = "mean"

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True)
class TCVAEConfig(_Config):
    """β-TCVAE weights. Seed 003 gives none: α = γ = 1 as Chen et al. (2018) set them,
    β = 6 as the public disentangling-vae defaults. The decomposition is of a KL in
    nats per image, so the reconstruction defaults to the per-image sum.

    Seed 003 writes the weighted sum α·I + β·TC + γ·Σ KL as equal to E_n KL(q(z|x)‖p(z));
    that holds only at α = β = γ = 1 (the weighted sum is the objective's regulariser,
    not an identity). It also names the encoder's parameters θ and then writes
    q_ϕ(z|x); only the notation is affected."""

    alpha: float = 1.0
    beta: float = 6.0
    gamma: float = 1.0
    recon_weight: float = 1.0
    reduction: str = "sum"
    #: "mss" (minibatch-stratified, default) or "mws" (minibatch-weighted).
    estimator: str = "mss"

    def __post_init__(self) -> None:
        if self.estimator not in ("mss", "mws"):
            raise ValueError(f"estimator must be 'mss' or 'mws', got {self.estimator!r}")
        self._check()


@dataclass(frozen=True)
class IWAEConfig(_Config):
    """IWAE with ``k`` samples (seed 004: 5). log w_k = −recon_weight·err_k +
    w·(log p(z_k) − log q(z_k|x)); w = ``kl_weight`` or batch/N as in seed 004's
    other objectives. ``reduction="sum"``, ``recon_weight=1/(2σ²)`` and
    ``kl_weight=1`` give Burda et al.'s bound for a Gaussian decoder of SD σ (up to
    a constant)."""

    k: int = 5
    recon_weight: float = 1.0
    kl_weight: float | None = None
    reduction: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive int, got {self.k!r}")
        self._check()


@dataclass(frozen=True)
class InfoVAEConfig(_Config):
    """InfoVAE with seed 004's constants: recon_weight·rec + (1 − α)·w·KL + (α + λ − 1)·MMD²,
    λ = ``mmd_weight``. Seed 004's table calls α = −9 the "KLD Weight", λ = 110 the "MMD
    Weight" and β = 10.5 the "Reconstruction Weight"; it trains with gradient
    clipping 0.8, which the trainer applies unless told otherwise.

    Seed 004's printed formula is garbled: its "recon loss" line adds a KL term and
    the total repeats itself. The reading here is Zhao et al.'s objective with the
    table's constants. The seed divides the MMD by B(B − 1) ("bias correction"):
    that is the normaliser of the unbiased U-statistic, which :func:`mmd` already
    applies, not a second factor (dividing a mean-kernel MMD by B(B − 1) again, as
    the code the seed adapted does, would switch the MMD term off at its batch of
    1000).
    """

    alpha: float = -9.0
    mmd_weight: float = 110.0
    recon_weight: float = 10.5
    kl_weight: float | None = None
    reduction: str = "mean"
    kernel: str = "imq"
    #: kernel scale C = kernel_scale · latent_dim (2·d: WAE's choice for a N(0, I) prior).
    kernel_scale: float = 2.0
    grad_clip: float | None = 0.8

    def __post_init__(self) -> None:
        if self.kernel not in ("imq", "rbf"):
            raise ValueError(f"kernel must be 'imq' or 'rbf', got {self.kernel!r}")
        if self.kernel_scale <= 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ValueError("kernel_scale and grad_clip must be > 0")
        self._check()


@dataclass(frozen=True)
class LogCoshConfig(_Config):
    """Log-cosh VAE (seed 004: a = 10, β = 1): (1/a)·log cosh(a·(x − x̂)) per pixel,
    reduced per image, + β·w·KL. Seed 004 writes a sum over pixels; the code it
    adapted takes the mean, which is the default here (``reduction``)."""

    a: float = 10.0
    beta: float = 1.0
    kl_weight: float | None = None
    reduction: str = "mean"

    def __post_init__(self) -> None:
        if self.a <= 0:
            raise ValueError(f"a must be > 0, got {self.a}")
        self._check()


# ---- objectives -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveOutput:
    """The scalar loss to minimise and its named scalar terms (for logging)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


class Objective(nn.Module):
    """Base of the objectives: a typed ``config`` and the common call signature."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    #: whether the trainer's linear warm-up (``warmup_epochs``) applies (the paper's β).
    warmup: ClassVar[bool] = False
    #: whether the loss uses the latent samples z (validation then samples z as well).
    uses_samples: ClassVar[bool] = True
    #: the smallest batch the loss is defined for.
    min_batch: ClassVar[int] = 1

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = self.config_class.from_dict(config)
        if not isinstance(config, self.config_class):
            raise ValueError(
                f"objective {self.name!r} takes a {self.config_class.__name__}, got "
                f"{type(config).__name__}"
            )
        self.config = config

    @property
    def num_samples(self) -> int:
        """Latent samples per image the objective wants (k for IWAE, else 1)."""
        return 1

    @property
    def grad_clip(self) -> float | None:
        """Gradient-norm clipping the objective's recipe uses, if any."""
        return getattr(self.config, "grad_clip", None)

    def _kl_weight(self, batch: int, dataset_size: int | None) -> float:
        weight = getattr(self.config, "kl_weight", None)
        if weight is not None:
            return float(weight)
        if dataset_size is None or dataset_size < 1:
            raise ValueError(
                f"objective {self.name!r} weights the KL by batch/N: pass dataset_size "
                "or set kl_weight"
            )
        return batch / dataset_size

    @staticmethod
    def _one_sample(
        x: torch.Tensor, recon: torch.Tensor, z: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if recon.ndim == x.ndim + 1:
            if recon.shape[0] != 1:
                raise ValueError(f"this objective takes one sample per image, got {recon.shape[0]}")
            recon = recon[0]
        if z is not None and z.ndim == 3:
            if z.shape[0] != 1:
                raise ValueError(f"this objective takes one sample per image, got {z.shape[0]}")
            z = z[0]
        if recon.shape != x.shape:
            raise ValueError(f"recon {tuple(recon.shape)} does not match x {tuple(x.shape)}")
        return recon, z

    @staticmethod
    def _need_z(z: torch.Tensor | None, name: str) -> torch.Tensor:
        if z is None:
            raise ValueError(f"objective {name!r} needs the latent samples z")
        return z

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        raise NotImplementedError


class BetaObjective(Objective):
    """The paper's β-VAE loss; ``anneal`` scales β (the linear warm-up)."""

    name = "beta"
    config_class = BetaConfig
    warmup = True
    uses_samples = False

    def __init__(self, config: BetaConfig | dict | None = None, perceptual_loss: Any = None):
        super().__init__(config)
        self.perceptual = None
        if self.config.perceptual:
            if perceptual_loss is None:
                from synthoct_bench.generators.perceptual import VGGPerceptualLoss

                perceptual_loss = VGGPerceptualLoss(
                    self.config.perceptual_layers, weights=self.config.vgg_weights
                )
            self.perceptual = perceptual_loss

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        recon, _ = self._one_sample(x, recon, None)
        c = self.config
        terms = {"mse": F.mse_loss(recon, x)}
        if self.perceptual is None:
            weighted = c.alpha * terms["mse"]
        else:
            perceptual = self.perceptual(recon, x)
            for name, value in zip(c.perceptual_layers, perceptual, strict=True):
                terms[f"perceptual_{name}"] = value
            weights = torch.tensor(
                c.perceptual_weights, dtype=perceptual.dtype, device=perceptual.device
            )
            weighted = c.alpha * terms["mse"] + torch.dot(weights, perceptual)
        terms["kl"] = kl_divergence(mu, logvar)
        beta = c.beta * anneal
        return ObjectiveOutput(weighted + beta * terms["kl"], terms)


class VanillaVAEObjective(Objective):
    """Seed 004's standard VAE: recon_weight·MSE + anneal·w·KL."""

    name = "vae"
    config_class = VanillaVAEConfig
    uses_samples = False

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        recon, _ = self._one_sample(x, recon, None)
        c = self.config
        rec = _per_image((recon - x) ** 2, c.reduction).mean()
        kl = kl_divergence(mu, logvar)
        w = self._kl_weight(x.shape[0], dataset_size)
        loss = c.recon_weight * rec + (anneal * w) * kl
        return ObjectiveOutput(loss, {"mse": F.mse_loss(recon, x).detach(), "recon": rec, "kl": kl})


class TCVAEObjective(Objective):
    """β-TCVAE: recon_weight·rec + anneal·(α·MI + β·TC + γ·dimension-wise KL)."""

    name = "tcvae"
    config_class = TCVAEConfig
    min_batch = 2

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        recon, z = self._one_sample(x, recon, self._need_z(z, self.name))
        if dataset_size is None:
            raise ValueError("objective 'tcvae' needs dataset_size (the N of its estimator)")
        c = self.config
        rec = _per_image((recon - x) ** 2, c.reduction).mean()
        parts = tc_decomposition(z, mu, logvar, dataset_size, c.estimator)
        reg = c.alpha * parts["mi"] + c.beta * parts["tc"] + c.gamma * parts["dwkl"]
        terms = {"mse": F.mse_loss(recon, x).detach(), "recon": rec, **parts}
        terms["kl"] = kl_divergence(mu, logvar).detach()
        return ObjectiveOutput(c.recon_weight * rec + anneal * reg, terms)


class IWAEObjective(Objective):
    """IWAE: −mean_b log (1/k) Σ_k w_k. Back-propagating through the log-sum-exp gives
    Σ_k w̃_k ∇ log w_k with the normalised weights w̃ = softmax(log w) entering as
    constants, the estimator of Burda et al. (2016); no weight gets a gradient of
    its own (the mistake REFERENCE.md notes in a public VAE zoo).

    Seed 004 writes the loss as softmax weights times (MSE + KLDweight·KL) per
    sample. With the analytic KL in place of log q(z_k|x) − log p(z_k) the weights
    no longer measure how well each sample explains x under the prior, and the
    weights as written carry gradients; this is the bound instead, which at k = 1
    is the single-sample ELBO (and in expectation the ``vae`` objective)."""

    name = "iwae"
    config_class = IWAEConfig

    @property
    def num_samples(self) -> int:
        return self.config.k

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        z = self._need_z(z, self.name)
        if recon.ndim == x.ndim:
            recon = recon[None]
        if z.ndim == 2:
            z = z[None]
        k = z.shape[0]
        if recon.shape[:2] != (k, x.shape[0]) or recon.shape[2:] != x.shape[1:]:
            raise ValueError(
                f"iwae takes z (k, B, d) and recon (k, B, ...); got z {tuple(z.shape)}, "
                f"recon {tuple(recon.shape)}, x {tuple(x.shape)}"
            )
        c = self.config
        err = _per_image((recon - x[None]) ** 2, c.reduction)  # (k, B)
        log_prior_ratio = (
            _standard_normal_log_density(z) - gaussian_log_density(z, mu[None], logvar[None])
        ).sum(-1)
        w = self._kl_weight(x.shape[0], dataset_size)
        log_w = -c.recon_weight * err + (anneal * w) * log_prior_ratio
        bound = torch.logsumexp(log_w, dim=0) - math.log(k)
        with torch.no_grad():
            norm = torch.softmax(log_w, dim=0)
            ess = (1.0 / (norm**2).sum(0)).mean()
        terms = {
            "mse": ((recon - x[None]) ** 2).mean().detach(),
            "kl": kl_divergence(mu, logvar).detach(),
            "ess": ess,
        }
        return ObjectiveOutput(-bound.mean(), terms)


class InfoVAEObjective(Objective):
    """InfoVAE: recon_weight·rec + anneal·((1 − α)·w·KL + (α + λ − 1)·MMD²(z, prior draws))."""

    name = "infovae"
    config_class = InfoVAEConfig
    min_batch = 2

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        recon, z = self._one_sample(x, recon, self._need_z(z, self.name))
        c = self.config
        rec = _per_image((recon - x) ** 2, c.reduction).mean()
        kl = kl_divergence(mu, logvar)
        prior = torch.randn(z.shape, generator=generator, device="cpu").to(z)
        mmd2 = mmd(z, prior, kernel=c.kernel, scale=c.kernel_scale * z.shape[1])
        w = self._kl_weight(x.shape[0], dataset_size)
        reg = (1 - c.alpha) * w * kl + (c.alpha + c.mmd_weight - 1) * mmd2
        terms = {"mse": F.mse_loss(recon, x).detach(), "recon": rec, "kl": kl, "mmd": mmd2}
        return ObjectiveOutput(c.recon_weight * rec + anneal * reg, terms)


class LogCoshObjective(Objective):
    """Log-cosh VAE: (1/a)·log cosh(a·Δ) reconstruction + anneal·β·w·KL."""

    name = "logcosh"
    config_class = LogCoshConfig
    uses_samples = False

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        anneal: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        recon, _ = self._one_sample(x, recon, None)
        c = self.config
        rec = _per_image(log_cosh(c.a * (recon - x)) / c.a, c.reduction).mean()
        kl = kl_divergence(mu, logvar)
        w = self._kl_weight(x.shape[0], dataset_size)
        loss = rec + (anneal * c.beta * w) * kl
        terms = {"mse": F.mse_loss(recon, x).detach(), "logcosh": rec, "kl": kl}
        return ObjectiveOutput(loss, terms)


#: Objective registry: name -> class (each has ``config_class``).
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        BetaObjective,
        VanillaVAEObjective,
        TCVAEObjective,
        IWAEObjective,
        InfoVAEObjective,
        LogCoshObjective,
    )
}


def objective_config(name: str, config: Any = None) -> Any:
    """The typed config of objective ``name`` from a config object, a dict or None
    (the defaults)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose from {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name].config_class
    if config is None:
        return cls()
    if isinstance(config, dict):
        return cls.from_dict(config)
    if not isinstance(config, cls):
        raise ValueError(f"objective {name!r} takes a {cls.__name__}, got {type(config).__name__}")
    return config


def get_objective(name: str, config: Any = None, **kwargs: Any) -> Objective:
    """Build objective ``name`` with ``config`` (object, dict or None for the defaults);
    ``kwargs`` go to its constructor (e.g. ``perceptual_loss=`` for ``beta``)."""
    config = objective_config(name, config)
    return OBJECTIVES[name](config, **kwargs)
