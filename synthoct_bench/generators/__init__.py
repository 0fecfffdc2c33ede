"""Image generators: latents z (N, 128) + per-subject seeds (N,) -> uint8 images (N, H, W).

- ``PhantomGenerator``: the procedural OCT phantom, the CPU default (numpy + numba).
- ``get_generator(name, **kwargs)``: build a registered generator by name.

Everything is imported lazily, so ``import synthoct_bench.generators`` loads
neither numba nor torch; heavy generators (the β-VAE, latent-conditioned
diffusion) register here as ``"module:attribute"`` strings.
"""

from __future__ import annotations

import importlib
from typing import Any

from synthoct_bench.generators.base import ImageGenerator

#: Public name -> "module:attribute", imported on first access.
_LAZY: dict[str, str] = {
    "PhantomGenerator": "synthoct_bench.generators.phantom:PhantomGenerator",
    "traversal_grid": "synthoct_bench.generators.traversal:traversal_grid",
    "save_traversal_figure": "synthoct_bench.generators.traversal:save_traversal_figure",
    # β-VAE and latent-conditioned Stable Diffusion (torch / diffusers, GPU path)
    "BetaVAE": "synthoct_bench.generators.vae:BetaVAE",
    "BetaVAEConfig": "synthoct_bench.generators.vae:BetaVAEConfig",
    "BetaVAEGenerator": "synthoct_bench.generators.vae:BetaVAEGenerator",
    "LatentDiffusionGenerator": "synthoct_bench.generators.diffusion:LatentDiffusionGenerator",
    "latent_to_prompt_embeds": "synthoct_bench.generators.diffusion:latent_to_prompt_embeds",
    "select_latent_dims": "synthoct_bench.generators.latent_selection:select_latent_dims",
    "conditioning_check": "synthoct_bench.generators.conditioning_check:conditioning_check",
}

#: Generator name (as used by ``get_generator`` and the CLI) -> "module:class".
GENERATORS: dict[str, str] = {
    "phantom": "synthoct_bench.generators.phantom:PhantomGenerator",
    "diffusion": "synthoct_bench.generators.diffusion:load_latent_diffusion",
    "vae": "synthoct_bench.generators.vae:BetaVAEGenerator",
}

__all__ = ["ImageGenerator", "GENERATORS", "get_generator", "register_generator", *_LAZY]


def _resolve(target: str) -> Any:
    module_path, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_path), attribute)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = _resolve(_LAZY[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthoct_bench.generators' has no attribute {name!r}")


def register_generator(name: str, target: str) -> None:
    """Register a generator class as ``"module:Class"`` (imported only when built)."""
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:Class', got {target!r}")
    GENERATORS[name] = target


def get_generator(name: str, **kwargs: Any) -> ImageGenerator:
    """Build the generator registered as ``name`` (e.g. ``"phantom"``) with ``kwargs``."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose from {sorted(GENERATORS)}")
    return _resolve(GENERATORS[name])(**kwargs)
