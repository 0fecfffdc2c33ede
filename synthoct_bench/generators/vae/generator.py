"""A trained VAE's decoder as an image generator (``synthoct build --generator vae``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench.generators.vae.base import VAEBase, load_vae, resolve_vae_folder
from synthoct_bench.latent import LATENT_DIM

__all__ = ["BetaVAEGenerator", "SELECTION_NAME", "saved_eta_dims"]


#: File beside a saved VAE's weights naming its η dims (written by ``synthoct vae select``).
SELECTION_NAME = "selection.json"


def saved_eta_dims(folder: str | os.PathLike) -> tuple[int, ...] | None:
    """The ``eta_dims`` of ``folder/selection.json`` (a saved VAE's folder), or None."""
    path = Path(folder) / SELECTION_NAME
    if not path.is_file():
        return None
    dims = json.loads(path.read_text()).get("eta_dims")
    if not isinstance(dims, list) or not all(isinstance(d, int) for d in dims):
        raise ValueError(f"{path} has no eta_dims list of ints; run `synthoct vae select` again")
    return tuple(dims)


class BetaVAEGenerator:
    """A VAE decoder as an ImageGenerator (what the paper's Figure 5 traverses).

    ``vae`` is any :class:`VAEBase` (the paper's :class:`BetaVAE`, the small conv VAE,
    ...) or a folder / Hub repo id to load one from with :func:`load_vae`
    (``path_or_repo_id`` is another spelling of it, as ``synthoct build --weights``
    passes). ``eta_dims``: the three latent dims carrying η; None takes them from the
    folder's ``selection.json`` (``synthoct vae select``), an error if it has none.

    The dataset's latents z have 128 dims; a VAE with a smaller latent decodes the first
    ``latent_dim`` of them (so its η dims must be below ``latent_dim``). Deterministic:
    the seeds are checked but unused.
    """

    def __init__(
        self,
        vae: VAEBase | str | os.PathLike | None = None,
        eta_dims: tuple[int, ...] | None = None,
        batch_size: int = 64,
        revision: str | None = None,
        device: str = "cpu",
        path_or_repo_id: str | os.PathLike | None = None,
        image_size: int | None = None,
    ) -> None:
        if (vae is None) == (path_or_repo_id is None):
            raise ValueError("give the VAE as vae=... or path_or_repo_id=... (--weights), once")
        vae = vae if vae is not None else path_or_repo_id
        self.weights: str | None = None
        eta_source = "explicit"
        if not isinstance(vae, VAEBase):
            folder = resolve_vae_folder(vae, revision, None)
            self.weights = str(vae)
            if eta_dims is None:
                eta_dims, eta_source = saved_eta_dims(folder), SELECTION_NAME
            vae = load_vae(folder, device=device)
        if eta_dims is None:
            raise ValueError(
                "the VAE has no saved selection.json: run `synthoct vae select DIR` or give "
                "eta_dims (--generator-arg eta_dims=[a,b,c])"
            )
        self.vae = vae.eval()
        self.latent_dim = int(vae.config.latent_dim)
        if self.latent_dim > LATENT_DIM:
            raise ValueError(
                f"the VAE has {self.latent_dim} latent dims; the dataset's z has {LATENT_DIM}"
            )
        self.eta_dims = tuple(int(d) for d in eta_dims)
        bad = [d for d in self.eta_dims if not 0 <= d < self.latent_dim]
        if len(self.eta_dims) != 3 or len(set(self.eta_dims)) != 3 or bad:
            raise ValueError(
                f"eta_dims must be 3 distinct dims in 0..{self.latent_dim - 1}, got "
                f"{list(self.eta_dims)}"
            )
        self.eta_dims_source = eta_source
        self.batch_size = int(batch_size)
        self.image_size = vae.config.image_size
        if image_size is not None and int(image_size) != self.image_size:
            raise ValueError(
                f"the VAE decodes {self.image_size}px images, not {image_size}px; build with "
                f"--image-size {self.image_size}"
            )

    def generate(self, z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """uint8 images (N, S, S) decoded from the first ``latent_dim`` columns of z."""
        z = np.asarray(z)
        if np.shape(seeds) != (len(z),):
            raise ValueError(f"seeds must have shape ({len(z)},), got {np.shape(seeds)}")
        if z.ndim != 2 or z.shape[1] < self.latent_dim:
            raise ValueError(f"z must have shape (N, >= {self.latent_dim}), got {z.shape}")
        images = self.vae.decode_latents(z[:, : self.latent_dim], batch_size=self.batch_size)
        return np.round(images * 255).astype(np.uint8)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": "vae-decoder",
            **self.vae.config.to_dict(),
            "weights": self.weights,
            "eta_dims": self.eta_dims,
            "eta_dims_source": self.eta_dims_source,
        }
