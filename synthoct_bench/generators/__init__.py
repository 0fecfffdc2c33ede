"""Image generators: latents z (N, 128) + per-subject seeds (N,) -> uint8 images (N, H, W).

- ``PhantomGenerator``: the procedural OCT phantom, the CPU default (numpy + numba).
- ``get_generator(name, **kwargs)``: build a registered generator by name.

Everything is imported lazily, so ``import synthoct_bench.generators`` loads
neither numba nor torch; heavy generators (the β-VAE, latent-conditioned
diffusion) register here as ``"module:attribute"`` strings.
"""

from __future__ import annotations

from typing import Any

from synthoct_bench.generators.base import ImageGenerator
from synthoct_bench.lazy import lazy_exports, resolve

#: Public name -> "module:attribute", imported on first access. The families live in
#: their own packages: ``phantom/``, ``vae/``, ``diffusion/``, and ``metrics/`` for what
#: measures a latent space.
_P = "synthoct_bench.generators"
_LAZY: dict[str, str] = {
    "PhantomGenerator": f"{_P}.phantom.generator:PhantomGenerator",
    "traversal_grid": f"{_P}.traversal:traversal_grid",
    "save_traversal_figure": f"{_P}.traversal:save_traversal_figure",
    # the VAE family (torch): the paper's β-VAE, the small conv VAE of Soelistyo & Lowe
    # 2024, any saved VAE, the objectives
    "BetaVAE": f"{_P}.vae.paper:BetaVAE",
    "BetaVAEConfig": f"{_P}.vae.paper:BetaVAEConfig",
    "BetaVAEGenerator": f"{_P}.vae.generator:BetaVAEGenerator",
    "SmallConvVAE": f"{_P}.vae.small:SmallConvVAE",
    "SmallConvVAEConfig": f"{_P}.vae.small:SmallConvVAEConfig",
    "load_vae": f"{_P}.vae.base:load_vae",
    "get_objective": f"{_P}.vae.objectives:get_objective",
    # latent-conditioned Stable Diffusion (torch + diffusers, GPU path)
    "LatentDiffusionGenerator": f"{_P}.diffusion.pipeline:LatentDiffusionGenerator",
    "latent_to_prompt_embeds": f"{_P}.diffusion.pipeline:latent_to_prompt_embeds",
    # measuring a latent space
    "mig": f"{_P}.metrics.disentanglement:mig",
    "dci": f"{_P}.metrics.disentanglement:dci",
    "sap": f"{_P}.metrics.disentanglement:sap",
    "select_latent_dims": f"{_P}.metrics.latent_selection:select_latent_dims",
    "conditioning_check": f"{_P}.metrics.conditioning:conditioning_check",
}

#: The generator registry: name (as used by ``get_generator`` and ``synthoct build
#: --generator``) -> "module:factory", the factory taking the generator's keyword arguments.
GENERATORS: dict[str, str] = {
    "phantom": f"{_P}.phantom.generator:PhantomGenerator",
    "diffusion": f"{_P}.diffusion.pipeline:load_latent_diffusion",
    "vae": f"{_P}.vae.generator:BetaVAEGenerator",
}

__all__ = ["ImageGenerator", "GENERATORS", "get_generator", "register_generator", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, eager=__all__)


def register_generator(name: str, target: str) -> None:
    """Register a generator factory as ``"module:Class"`` (imported only when built)."""
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:Class', got {target!r}")
    GENERATORS[name] = target


def get_generator(name: str, **kwargs: Any) -> ImageGenerator:
    """Build a generator: a registered name (e.g. ``"phantom"``) or, for a class of your
    own, ``"package.module:Class"``; ``kwargs`` go to its constructor."""
    if ":" not in name and name not in GENERATORS:
        raise ValueError(
            f"unknown generator {name!r}; choose from {sorted(GENERATORS)} "
            "or give 'package.module:Class'"
        )
    target = name if ":" in name else GENERATORS[name]
    try:
        factory = resolve(target)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"cannot import generator {target!r} ({exc}); give an importable 'package.module:Class'"
        ) from None
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ValueError(
            f"generator {name!r} does not take these arguments ({exc}); check "
            "--generator-arg / generator_kwargs"
        ) from None
