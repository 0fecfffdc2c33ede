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
)

__all__ = ["VanillaVAEConfig", "VanillaVAEObjective"]


@dataclass(frozen=True)
class VanillaVAEConfig(ObjectiveConfig):
    """The standard VAE (Kingma & Welling 2014; the first of Korkic 2021's four):
    −log p(x|z) + w·KL, w = ``kl_weight`` or the likelihood's own (1; batch/N under
    ``korkic2021``, the weight of the PyTorch-VAE code the thesis adapted)."""

    #: "gaussian" (a log-likelihood summed over pixels, the KL at weight 1) or
    #: "korkic2021" (the thesis's pixel-mean scale, KL × batch/N); see the module
    likelihood: str = "gaussian"
    #: the Gaussian decoder's noise SD; None: learned (σ² = the batch's MSE)
    sigma: float | None = None
    #: None: 1 for a likelihood, the thesis's 1 under korkic2021.
    recon_weight: float | None = None
    kl_weight: float | None = None

    def __post_init__(self) -> None:
        self._check()


class VanillaVAEObjective(Objective):
    """The standard VAE: recon_weight·(−log p(x|z)) + anneal·w·KL."""

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
        rec, logged = self._reconstruction(recon, x)
        kl = kl_divergence(mu, logvar)
        w = self._kl_weight(x.shape[0], dataset_size)
        loss = rec.mean() + (anneal * w) * kl
        return ObjectiveOutput(loss, {"mse": F.mse_loss(recon, x).detach(), **logged, "kl": kl})
