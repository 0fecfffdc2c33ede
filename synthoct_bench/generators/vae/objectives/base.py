"""What every VAE objective shares: the config base, the output, the call signature
and the building blocks of the reconstruction and prior terms."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = [
    "LOG_2PI",
    "REDUCTIONS",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "Objective",
    "gaussian_log_density",
    "standard_normal_log_density",
    "per_image",
]

LOG_2PI = math.log(2 * math.pi)
#: how an image's error is reduced over its pixels
REDUCTIONS = ("mean", "sum")


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
        reduction = getattr(self, "reduction", "mean")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        kl_weight = getattr(self, "kl_weight", None)
        if kl_weight is not None and kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0 or None (batch/N), got {kl_weight}")


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
