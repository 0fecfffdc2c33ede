"""What every VAE architecture here shares, and the registry that names them.

:class:`VAEBase` holds the reparameterised forward, the batched numpy helpers and
diffusers-style ``save_pretrained``/``from_pretrained`` (a folder with
``config.json`` and ``model.safetensors``, or a Hub repo id), so the trainer can
take any architecture. :data:`ARCHITECTURES` names them (``paper``: the
β-VAE of Deltadahl et al. 2024, Table 3, :class:`~synthoct_bench.generators.vae.paper.BetaVAE`;
``small``: the small convolutional VAE of Soelistyo & Lowe 2024,
:class:`~synthoct_bench.generators.vae.small.SmallConvVAE`) and
:func:`load_vae` loads a saved folder of any of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthoct_bench.atomic import atomic_write_dir

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "VAEBase",
    "ARCHITECTURES",
    "get_architecture",
    "build_vae",
    "load_vae",
    "resolve_vae_folder",
    "kl_divergence",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


#: Architecture registry: name -> "module:Class" of a :class:`VAEBase` subclass.
ARCHITECTURES: dict[str, str] = {
    "paper": "synthoct_bench.generators.vae.paper:BetaVAE",
    "small": "synthoct_bench.generators.vae.small:SmallConvVAE",
}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, mean over the batch."""
    return torch.mean(-0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1))


def get_architecture(name: str) -> type[VAEBase]:
    """The VAE class registered as ``name`` in :data:`ARCHITECTURES`."""
    from synthoct_bench.lazy import resolve

    if name not in ARCHITECTURES:
        raise ValueError(f"unknown VAE architecture {name!r}; choose from {sorted(ARCHITECTURES)}")
    return resolve(ARCHITECTURES[name])


def build_vae(arch: str, config: Any = None) -> VAEBase:
    """A freshly initialised VAE of architecture ``arch``; ``config`` is its config
    object, a dict of its fields, or None for its defaults."""
    cls = get_architecture(arch)
    if config is None:
        config = cls.config_class()
    elif isinstance(config, dict):
        config = cls.config_class.from_dict(config)
    if not isinstance(config, cls.config_class):
        raise ValueError(
            f"architecture {arch!r} takes a {cls.config_class.__name__}, got "
            f"{type(config).__name__}"
        )
    return cls(config)


def resolve_vae_folder(
    path_or_repo_id: str | os.PathLike, revision: str | None, subfolder: str | None
) -> Path:
    folder = Path(path_or_repo_id)
    if not folder.is_dir():
        if os.path.exists(folder) or str(path_or_repo_id).count("/") != 1:
            raise ValueError(
                f"{path_or_repo_id!r} is neither a folder with {CONFIG_NAME} and "
                f"{WEIGHTS_NAME} nor a Hub repo id of the form 'owner/name'"
            )
        from huggingface_hub import snapshot_download

        pattern = f"{subfolder}/*" if subfolder else "*"
        folder = Path(
            snapshot_download(str(path_or_repo_id), revision=revision, allow_patterns=[pattern])
        )
    if subfolder:
        folder = folder / subfolder
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ValueError(f"{folder} has no {name}; save the model with save_pretrained()")
    return folder


def load_vae(
    path_or_repo_id: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    device: str | torch.device = "cpu",
) -> VAEBase:
    """Load a VAE of any registered architecture from a folder written by
    ``save_pretrained`` (or a Hub repo id); the class is the config's ``_class_name``."""
    folder = resolve_vae_folder(path_or_repo_id, revision, subfolder)
    name = json.loads((folder / CONFIG_NAME).read_text()).get("_class_name", "BetaVAE")
    classes = {target.rpartition(":")[2]: arch for arch, target in ARCHITECTURES.items()}
    if name not in classes:
        raise ValueError(f"{folder} holds a {name!r}, not one of {sorted(classes)}")
    return get_architecture(classes[name]).from_pretrained(folder, device=device)


_VAE = TypeVar("_VAE", bound="VAEBase")


class VAEBase(nn.Module):
    """What every VAE here shares: ``encode`` -> (μ, log σ²), ``decode`` -> images in
    [0, 1], a reparameterised ``forward``, batched numpy helpers and diffusers-style
    ``save_pretrained``/``from_pretrained``. Subclasses set ``config_class`` and
    implement ``encode`` and ``decode``; their config has ``image_size``,
    ``latent_dim``, ``to_dict`` (with ``_class_name``) and ``from_dict``."""

    config_class: ClassVar[type]
    config: Any

    @property
    def in_channels(self) -> int:
        return int(getattr(self.config, "channels", 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_images(self, x: torch.Tensor) -> None:
        s, c = self.config.image_size, self.in_channels
        if x.ndim != 4 or x.shape[1] != c or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (N, {c}, {s}, {s}) in [0, 1], "
                f"got {tuple(x.shape)}"
            )

    def _check_latents(self, z: torch.Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"z must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}"
            )

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, μ, log σ²) with z = μ + σ·ε (ε drawn from ``generator``)."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device="cpu").to(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar

    def init_output_bias(self, mean_intensity: float) -> None:
        """Start the decoder at the images' mean intensity: the bias of its last
        convolution becomes logit(``mean_intensity``), so the first outputs are about the
        mean image's level instead of sigmoid(0) = 0.5.

        Why: phantom and OCT images are dark almost everywhere (mean intensity about 0.09
        at 32 px). From 0.5, the first Adam steps of a likelihood summed over pixels push
        every output down at once and overshoot into a black image within about 15
        steps; there the Sigmoid saturates, its gradient vanishes, and the run never
        leaves the black image (MSE above the mean image's, every latent unit collapsed).
        """
        decoder = getattr(self, "decoder", None)
        if not (
            isinstance(decoder, nn.Sequential) and len(decoder) >= 2
            and isinstance(decoder[-1], nn.Sigmoid) and isinstance(decoder[-2], nn.Conv2d)
            and decoder[-2].bias is not None
        ):  # fmt: skip
            raise TypeError(
                f"{type(self).__name__}.decoder must end in a Conv2d with a bias and a "
                "Sigmoid to start at the mean intensity"
            )
        m = min(max(float(mean_intensity), 1e-3), 1 - 1e-3)
        with torch.no_grad():
            decoder[-2].bias.fill_(float(np.log(m / (1 - m))))

    # ---- numpy convenience, batched -------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def images_to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 or [0, 1] float images (N, H, W), or (N, C, H, W) for C channels, ->
        (N, C, S, S) float on the model device."""
        images = np.asarray(images)
        c = self.in_channels
        if not (images.ndim == 3 and c == 1) and not (images.ndim == 4 and images.shape[1] == c):
            want = "(N, H, W)" if c == 1 else f"(N, {c}, H, W)"
            raise ValueError(f"images must have shape {want}, got {images.shape}")
        x = torch.from_numpy(images.astype(np.float32))
        if images.dtype == np.uint8:
            x = x / 255.0
        x = (x[:, None] if images.ndim == 3 else x).to(self.device)
        s = self.config.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(0, 1)

    @torch.no_grad()
    def encode_posterior(
        self, images: np.ndarray, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """(μ, σ), each (N, latent_dim) float64, of q(z | x) for images (N, H, W), resized
        to image_size."""
        was_training = self.training
        self.eval()
        mus, stds = [], []
        try:
            for i in range(0, len(images), batch_size):
                mu, logvar = self.encode(self.images_to_tensor(images[i : i + batch_size]))
                mus.append(mu.double().cpu())
                stds.append(torch.exp(0.5 * logvar.double()).cpu())
        finally:
            self.train(was_training)
        if not mus:
            empty = np.zeros((0, self.config.latent_dim))
            return empty, empty.copy()
        return torch.cat(mus).numpy(), torch.cat(stds).numpy()

    def encode_images(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """μ (N, latent_dim) float64 for images (N, H, W), resized to image_size."""
        return self.encode_posterior(images, batch_size)[0]

    @torch.no_grad()
    def decode_latents(self, z: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Images (N, S, S) float32 in [0, 1] for latents z (N, latent_dim);
        (N, C, S, S) for a model with C > 1 channels."""
        was_training = self.training
        self.eval()
        squeeze = self.in_channels == 1
        try:
            out = []
            for i in range(0, len(z), batch_size):
                batch = torch.as_tensor(z[i : i + batch_size], dtype=torch.float32)
                images = self.decode(batch.to(self.device))
                out.append((images[:, 0] if squeeze else images).float().cpu())
        finally:
            self.train(was_training)
        s = self.config.image_size
        empty = (0, s, s) if squeeze else (0, self.in_channels, s, s)
        return torch.cat(out).numpy() if out else np.zeros(empty, np.float32)

    # ---- save / load ----------------------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (atomically)."""
        from safetensors.torch import save_file

        def write(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})

        return atomic_write_dir(folder, write)

    @classmethod
    def from_pretrained(
        cls: type[_VAE],
        path_or_repo_id: str | os.PathLike,
        revision: str | None = None,
        subfolder: str | None = None,
        device: str | torch.device = "cpu",
    ) -> _VAE:
        """Load from a folder written by :meth:`save_pretrained` or a Hub repo id."""
        from safetensors.torch import load_file

        folder = resolve_vae_folder(path_or_repo_id, revision, subfolder)
        raw = json.loads((folder / CONFIG_NAME).read_text())
        saved = raw.get("_class_name", cls.__name__)
        if saved != cls.__name__:
            raise ValueError(
                f"{folder} holds a {saved}, not a {cls.__name__}; load it with "
                f"{saved}.from_pretrained or synthoct_bench.generators.vae.load_vae"
            )
        model = cls(cls.config_class.from_dict(raw))
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
        return model.to(device).eval()
