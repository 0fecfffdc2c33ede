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
number of training images (β-TCVAE's estimator and the batch/N KL weight of the
``korkic2021`` convention need it); ``anneal`` in [0, 1] scales the regularising terms (a
warm-up); ``generator`` keys the prior draws InfoVAE's MMD needs.

Registry :data:`OBJECTIVES` (name -> class; ``get_objective(name, config)``):

- ``beta``: the paper's α·MSE + Σ perceptual + β·KL (VGG16 terms optional).
- ``vae``: the standard VAE, −log p(x|z) + w·KL.
- ``tcvae``: β-TCVAE (Chen et al. 2018; Soelistyo & Lowe 2024): reconstruction + α·index-code
  MI + β·total correlation + γ·dimension-wise KL, with minibatch-stratified
  estimates of log q(z) and log Π_j q(z_j) from the dataset size N.
- ``iwae``: the importance-weighted bound (Burda et al. 2016) with k samples.
- ``infovae``: InfoVAE (Zhao et al. 2019) with an inverse multiquadric MMD.
- ``logcosh``: log-cosh reconstruction (Chen et al. 2019) + w·KL.

Every objective but ``beta`` (the paper's own loss, kept as published) states its
reconstruction likelihood in ``likelihood``: a Gaussian (sech for log-cosh)
log-likelihood summed over pixels with σ fixed or learned, the KL at weight 1 per
image, or ``korkic2021``, the pixel-mean scale with the KL × batch/N that Korkic
2021 trained with (:mod:`~synthoct_bench.generators.vae.objectives.base` says why
that scale collapses). Where a work's formula is inconsistent the config's
docstring says which reading is implemented.
"""

from __future__ import annotations

from typing import Any

from synthoct_bench.generators.vae.objectives.base import (
    Objective,
    ObjectiveConfig,
    ObjectiveOutput,
    gaussian_log_density,
    per_image,
    standard_normal_log_density,
)
from synthoct_bench.generators.vae.objectives.beta import BetaConfig, BetaObjective
from synthoct_bench.generators.vae.objectives.infovae import (
    InfoVAEConfig,
    InfoVAEObjective,
    kernel_matrix,
    mmd,
)
from synthoct_bench.generators.vae.objectives.iwae import IWAEConfig, IWAEObjective
from synthoct_bench.generators.vae.objectives.logcosh import (
    LogCoshConfig,
    LogCoshObjective,
    log_cosh,
)
from synthoct_bench.generators.vae.objectives.standard import (
    VanillaVAEConfig,
    VanillaVAEObjective,
)
from synthoct_bench.generators.vae.objectives.tcvae import (
    TCVAEConfig,
    TCVAEObjective,
    log_importance_weights,
    tc_decomposition,
)

__all__ = [
    "ObjectiveConfig",
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
    "standard_normal_log_density",
    "per_image",
    "log_cosh",
    "kernel_matrix",
    "mmd",
    "log_importance_weights",
    "tc_decomposition",
]


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
