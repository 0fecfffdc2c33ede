"""The small convolutional VAE of Soelistyo & Lowe 2024 (the β-TCVAE's network), at any
image and latent size.

Soelistyo & Lowe 2024 (supplement, section 2.1): "four convolutional layers, with 8, 16, 32 &
64 filters respectively, followed by a fully-connected layer with 256 units,
then the sampling layers, each with 32 units", and a decoder "with the reverse
architecture, using upsampling layers". The seed gives no kernel sizes, strides
or activations; this module uses 3×3 convolutions with stride 2 (each halves the
side), ReLU, and a decoder of dense 256 -> dense to the last feature map, then
per stage a nearest-neighbour ×2 upsampling and a 3×3 convolution back through
64 -> 32 -> 16 -> 8 -> channels, with a Sigmoid on the output. No batch norm,
so a sample's output never depends on the rest of its batch.

The interface is :class:`~synthoct_bench.generators.vae.VAEBase`'s, the same as
the paper's :class:`~synthoct_bench.generators.vae.BetaVAE`, so the trainer,
``encode_images``/``decode_latents`` and ``save_pretrained``/``from_pretrained``
work on either (registry name ``small``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthoct_bench.generators.vae.base import VAEBase

__all__ = ["SmallConvVAEConfig", "SmallConvVAE", "SOELISTYO_LOWE_WIDTHS"]

#: Filters of the four encoder convolutions (Soelistyo & Lowe 2024).
SOELISTYO_LOWE_WIDTHS: tuple[int, ...] = (8, 16, 32, 64)


@dataclass(frozen=True)
class SmallConvVAEConfig:
    """Architecture settings; defaults are those of Soelistyo & Lowe 2024 (latent 32,
    widths 8/16/32/64, dense 256). ``image_size`` must be a multiple of 2 ** len(widths)."""

    image_size: int = 64
    latent_dim: int = 32
    channels: int = 1
    widths: tuple[int, ...] = field(default_factory=lambda: SOELISTYO_LOWE_WIDTHS)
    hidden_dim: int = 256
    upsample_mode: str = "nearest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        for name in ("image_size", "latent_dim", "channels", "hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths needs >= 1 positive widths, got {self.widths}")
        factor = 2 ** len(self.widths)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} must be a positive multiple of {factor} "
                f"(2 ** len(widths)), e.g. 32, 64 or 224"
            )
        if self.upsample_mode not in ("nearest", "bilinear"):
            raise ValueError(
                f"upsample_mode must be 'nearest' or 'bilinear', got {self.upsample_mode!r}"
            )

    @property
    def base_size(self) -> int:
        """Side of the last encoder feature map (4 at 64 px with four stages)."""
        return self.image_size // 2 ** len(self.widths)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return {"_class_name": "SmallConvVAE", **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SmallConvVAEConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names - {"_class_name"})
        if unknown:
            raise ValueError(f"unknown SmallConvVAE config keys {unknown}")
        return cls(**{k: v for k, v in d.items() if k in names})


class SmallConvVAE(VAEBase):
    """Soelistyo & Lowe's (2024) convolutional VAE on images (N, channels, S, S) in [0, 1]."""

    config_class = SmallConvVAEConfig

    def __init__(self, config: SmallConvVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or SmallConvVAEConfig()
        c = self.config
        enc: list[nn.Module] = []
        c_in = c.channels
        for w in c.widths:
            enc += [nn.Conv2d(c_in, w, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            c_in = w
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        flat = c.widths[-1] * c.base_size**2
        self.fc_hidden = nn.Linear(flat, c.hidden_dim)
        self.fc_mu = nn.Linear(c.hidden_dim, c.latent_dim)
        self.fc_logvar = nn.Linear(c.hidden_dim, c.latent_dim)
        self.fc_decode = nn.Sequential(
            nn.Linear(c.latent_dim, c.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(c.hidden_dim, flat),
            nn.ReLU(inplace=True),
        )
        dec: list[nn.Module] = []
        outs = [*reversed(c.widths[:-1]), c.channels]
        c_in = c.widths[-1]
        for i, w in enumerate(outs):
            dec += [nn.Upsample(scale_factor=2, mode=c.upsample_mode), nn.Conv2d(c_in, w, 3, 1, 1)]
            dec.append(nn.ReLU(inplace=True) if i < len(outs) - 1 else nn.Sigmoid())
            c_in = w
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²), each (N, latent_dim), for images (N, channels, S, S) in [0, 1]."""
        self._check_images(x)
        h = F.relu(self.fc_hidden(self.encoder(x)))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, channels, S, S) in [0, 1] for latents (N, latent_dim)."""
        self._check_latents(z)
        c = self.config
        h = self.fc_decode(z).view(-1, c.widths[-1], c.base_size, c.base_size)
        return self.decoder(h)
