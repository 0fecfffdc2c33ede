"""The β-VAE loss of Deltadahl et al. 2024 (section 2.1): α·MSE + perceptual terms + β·KL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from synthoct_bench.generators.vae.base import kl_divergence
from synthoct_bench.generators.vae.objectives.base import (
    Objective,
    ObjectiveConfig,
    ObjectiveOutput,
)

__all__ = ["BetaConfig", "BetaObjective"]


@dataclass(frozen=True)
class BetaConfig(ObjectiveConfig):
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

    def describe_likelihood(self) -> str:
        return "the paper's beta loss (alpha x pixel-mean MSE + beta x KL)"

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
                from synthoct_bench.generators.vae.perceptual import VGGPerceptualLoss

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
