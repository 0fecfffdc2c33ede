"""The interface every image generator implements.

A generator maps latents z (N, 128) and per-subject seeds (N,) to uint8
grayscale images (N, H, W). Output for a subject depends only on its own z and
seed, never on the batch it was generated in, so shards rebuild bit for bit on
any number of workers.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["ImageGenerator", "GENERATOR_CONFIG_NAME"]

#: File in a saved generator folder holding the settings synthoct adds to the weights
#: (the whole configuration for weight-free generators such as the phantom).
GENERATOR_CONFIG_NAME = "synthoct_generator.json"


@runtime_checkable
class ImageGenerator(Protocol):
    #: Side of the square output image in pixels.
    image_size: int
    #: The latent dims (0-based) this generator shows most strongly; the dataset uses
    #: them as the NLME random effects η unless told otherwise.
    eta_dims: tuple[int, ...]

    def generate(self, z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """uint8 images (N, image_size, image_size) for latents z (N, 128) and seeds (N,)."""
        ...

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description (name, version, settings) for the dataset card."""
        ...
