"""The standard VAE of Korkic 2021: reconstruction + w·KL."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from synthoct_bench.generators.vae.base import kl_divergence
from synthoct_bench.generators.vae.objectives.base import (
    Objective,
    ObjectiveConfig,
    ObjectiveOutput,
    per_image,
)

__all__ = ["VanillaVAEConfig", "VanillaVAEObjective"]


@dataclass(frozen=True)
class VanillaVAEConfig(ObjectiveConfig):
    """Korkic's (2021) standard VAE: recon_weight·MSE + w·KL, w = ``kl_weight`` or batch/N."""

    recon_weight: float = 1.0
    #: None: batch/N, the KL weight of the public PyTorch-VAE code Korkic 2021 adapted.
    kl_weight: float | None = None
    reduction: str = "mean"

    def __post_init__(self) -> None:
        self._check()


class VanillaVAEObjective(Objective):
    """Korkic's (2021) standard VAE: recon_weight·MSE + anneal·w·KL."""

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
        rec = per_image((recon - x) ** 2, c.reduction).mean()
        kl = kl_divergence(mu, logvar)
        w = self._kl_weight(x.shape[0], dataset_size)
        loss = c.recon_weight * rec + (anneal * w) * kl
        return ObjectiveOutput(loss, {"mse": F.mse_loss(recon, x).detach(), "recon": rec, "kl": kl})
