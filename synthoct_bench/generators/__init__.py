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

#: Public name -> "module:attribute", imported on first access.
_LAZY: dict[str, str] = {
    "PhantomGenerator": "synthoct_bench.generators.phantom:PhantomGenerator",
    "traversal_grid": "synthoct_bench.generators.traversal:traversal_grid",
    "save_traversal_figure": "synthoct_bench.generators.traversal:save_traversal_figure",
    # β-VAE and latent-conditioned Stable Diffusion (torch / diffusers, GPU path)
    "BetaVAE": "synthoct_bench.generators.vae:BetaVAE",
    "BetaVAEConfig": "synthoct_bench.generators.vae:BetaVAEConfig",
    "BetaVAEGenerator": "synthoct_bench.generators.vae:BetaVAEGenerator",
    # the VAE family: seed 003's small conv VAE, any saved VAE, the objectives, the metrics
    "SmallConvVAE": "synthoct_bench.generators.vae_small:SmallConvVAE",
    "SmallConvVAEConfig": "synthoct_bench.generators.vae_small:SmallConvVAEConfig",
    "load_vae": "synthoct_bench.generators.vae:load_vae",
    "get_objective": "synthoct_bench.generators.vae_objectives:get_objective",
    "mig": "synthoct_bench.generators.disentanglement:mig",
    "dci": "synthoct_bench.generators.disentanglement:dci",
    "sap": "synthoct_bench.generators.disentanglement:sap",
    "LatentDiffusionGenerator": "synthoct_bench.generators.diffusion:LatentDiffusionGenerator",
    "latent_to_prompt_embeds": "synthoct_bench.generators.diffusion:latent_to_prompt_embeds",
    "select_latent_dims": "synthoct_bench.generators.latent_selection:select_latent_dims",
    "conditioning_check": "synthoct_bench.generators.conditioning_check:conditioning_check",
}

#: The generator registry: name (as used by ``get_generator`` and ``synthoct build
#: --generator``) -> "module:factory", the factory taking the generator's keyword arguments.
GENERATORS: dict[str, str] = {
    "phantom": "synthoct_bench.generators.phantom:PhantomGenerator",
    "diffusion": "synthoct_bench.generators.diffusion:load_latent_diffusion",
    "vae": "synthoct_bench.generators.vae:BetaVAEGenerator",
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
