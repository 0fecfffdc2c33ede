"""What every VAE objective shares: the config base, the output, the call signature,
the reconstruction likelihood and the building blocks of the prior terms.

The reconstruction term is a stated likelihood. ``likelihood="gaussian"`` (the
default of every objective but ``beta``, the paper's own loss) is the negative
log-likelihood of a Gaussian decoder summed over pixels, in nats per image:
Σ_p (x_p − x̂_p)²/(2σ²) + P·log(σ√(2π)), with the KL at weight 1 per image, i.e.
the ELBO as Kingma & Welling, Burda et al., Zhao et al. and Chen et al. define it.
σ is fixed (``sigma``) or, when ``sigma`` is None, learned: the optimal σ of
Rybkin et al. 2021 (σ-VAE), σ² = the batch's mean squared error, shared by all
pixels, floored at :data:`SIGMA_FLOOR`.

``likelihood="korkic2021"`` is the convention of the PyTorch-VAE code Korkic 2021
adapted, kept so that thesis can be reproduced as published: the reconstruction
is the mean over pixels (times ``recon_weight``) and the KL is weighted by
batch/N. As a likelihood that is a Gaussian of variance about P·N/(2·batch),
far above the pixel variance of any image here, so the KL wins and most latent
units collapse (BENCHMARKS.md measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = [
    "LOG_2PI",
    "LIKELIHOODS",
    "SIGMA_FLOOR",
    "gaussian_nll",
    "decoder_variance",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "Objective",
    "gaussian_log_density",
    "standard_normal_log_density",
    "per_image",
]

LOG_2PI = math.log(2 * math.pi)
#: reconstruction likelihoods of the objectives with a ``likelihood`` setting (see the
#: module docstring); the log-cosh objective has its own (``sech``)
LIKELIHOODS = ("gaussian", "korkic2021")
#: the smallest learned decoder σ: below a uint8 image's quantisation step (1/255)
SIGMA_FLOOR = 1e-3


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; μ, exp(log σ²)), broadcasting the three arguments."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; 0, 1)."""
    return -0.5 * (LOG_2PI + z**2)


def per_image(err: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-image reduction over the last three (C, H, W) dims of an elementwise error."""
    flat = err.flatten(start_dim=err.ndim - 3)
    return flat.mean(-1) if reduction == "mean" else flat.sum(-1)


def decoder_variance(squared_error: torch.Tensor, sigma: float | None) -> torch.Tensor:
    """The decoder's noise variance: ``sigma``², or, for ``sigma`` None, the batch's mean
    squared error (the optimal σ of Rybkin et al. 2021) as a constant, floored at
    :data:`SIGMA_FLOOR`²."""
    if sigma is None:
        return squared_error.detach().mean().clamp_min(SIGMA_FLOOR**2)
    return torch.tensor(float(sigma) ** 2, dtype=squared_error.dtype,
                        device=squared_error.device)  # fmt: skip


def gaussian_nll(
    recon: torch.Tensor, x: torch.Tensor, sigma: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-image Gaussian NLL in nats, shape ``recon.shape[:-3]``; the σ used).

    ``sigma`` None: σ² is the batch's mean squared error (Rybkin et al. 2021), taken as
    a constant: at that σ the NLL's derivative in σ is zero, so the gradient in the
    reconstruction is the same with or without it.
    """
    err = (recon - x).pow(2)
    var = decoder_variance(err, sigma)
    pixels = err[(0,) * (err.ndim - 3)].numel()
    sse = err.flatten(start_dim=err.ndim - 3).sum(-1)
    return sse / (2 * var) + 0.5 * pixels * (LOG_2PI + var.log()), var.sqrt()


class ObjectiveConfig:
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
        likelihood = getattr(self, "likelihood", None)
        allowed = getattr(self, "likelihoods", LIKELIHOODS)
        if likelihood is not None and likelihood not in allowed:
            raise ValueError(
                f"likelihood must be one of {', '.join(allowed)}, got {likelihood!r}"
            )
        sigma = getattr(self, "sigma", None)
        if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0):
            raise ValueError(
                f"sigma must be > 0 (the decoder's noise SD) or None (learned), got {sigma!r}"
            )
        recon_weight = getattr(self, "recon_weight", None)
        if recon_weight is not None and not recon_weight > 0:
            raise ValueError(f"recon_weight must be > 0 or None, got {recon_weight}")
        kl_weight = getattr(self, "kl_weight", None)
        if kl_weight is not None and kl_weight < 0:
            raise ValueError(
                f"kl_weight must be >= 0 or None (the likelihood's own), got {kl_weight}"
            )

    #: the thesis's reconstruction weight under ``likelihood="korkic2021"``
    korkic2021_recon_weight: ClassVar[float] = 1.0

    @property
    def recon_scale(self) -> float:
        """The reconstruction term's weight: ``recon_weight``, else 1 for a likelihood
        (the ELBO) and the thesis's value under ``korkic2021``."""
        weight = getattr(self, "recon_weight", None)
        if weight is not None:
            return float(weight)
        if getattr(self, "likelihood", None) == "korkic2021":
            return self.korkic2021_recon_weight
        return 1.0

    def describe_likelihood(self) -> str:
        """One line for reports: which likelihood, and σ."""
        likelihood = getattr(self, "likelihood", None)
        if likelihood is None:
            return "the objective's own loss"
        if likelihood == "korkic2021":
            return "korkic2021 (pixel-mean reconstruction, KL x batch/N)"
        sigma = getattr(self, "sigma", None)
        return f"{likelihood}, sigma {'learned (batch RMSE)' if sigma is None else sigma}"


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
    #: steps of linear learning-rate warm-up the objective's recipe uses (the trainer's
    #: ``lr_warmup_steps`` None takes this).
    lr_warmup: ClassVar[int] = 0

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
        """``kl_weight``, else 1 per image under a likelihood, batch/N under korkic2021."""
        weight = getattr(self.config, "kl_weight", None)
        if weight is not None:
            return float(weight)
        if getattr(self.config, "likelihood", None) != "korkic2021":
            return 1.0
        if dataset_size is None or dataset_size < 1:
            raise ValueError(
                f"objective {self.name!r} weights the KL by batch/N: pass dataset_size "
                "or set kl_weight"
            )
        return batch / dataset_size

    def _reconstruction(
        self, recon: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted per-image reconstruction term, shape ``recon.shape[:-3]``; its log
        terms) under ``config.likelihood``: the Gaussian NLL in nats, or the pixel-mean
        squared error of ``korkic2021``."""
        c = self.config
        if c.likelihood == "korkic2021":
            rec = per_image((recon - x) ** 2, "mean")
            return c.recon_scale * rec, {"recon": rec.mean()}
        nll, sigma = gaussian_nll(recon, x, c.sigma)
        return c.recon_scale * nll, {"recon": nll.mean(), "sigma": sigma}

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
