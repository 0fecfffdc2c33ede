"""The β-VAE of Deltadahl et al. 2024 (Table 3): ResNet18 encoder, 128-d latent,
upsampling decoder.

Encoder: torchvision ResNet18 with a 1-channel stem and no classifier
(1×224×224 -> 512), ReLU, then two Dense 512 -> 128 heads for μ and log σ².
Decoder: Dense + ReLU 128 -> 1024·7·7, reshape to (1024, 7, 7), then
conv/BatchNorm/ReLU blocks with five nearest-neighbour ×2 upsamplings to
(1, 224, 224) and a Sigmoid. ``decoder_widths`` (default the paper's
1024, 512, 256, 128, 64, 32) and ``image_size`` are configurable so tests can
run a narrow, small copy with the same structure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthoct_bench.generators.vae.base import VAEBase
from synthoct_bench.latent import LATENT_DIM

__all__ = ["BetaVAEConfig", "BetaVAE", "PAPER_DECODER_WIDTHS"]

PAPER_DECODER_WIDTHS: tuple[int, ...] = (1024, 512, 256, 128, 64, 32)


@dataclass(frozen=True)
class BetaVAEConfig:
    """Architecture settings; defaults are the paper's Table 3."""

    latent_dim: int = LATENT_DIM
    image_size: int = 224
    #: ResNet18 stage-1 width (64 = the paper's ResNet18; smaller for tests).
    encoder_width: int = 64
    decoder_widths: tuple[int, ...] = field(default_factory=lambda: PAPER_DECODER_WIDTHS)
    upsample_mode: str = "nearest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_widths", tuple(int(w) for w in self.decoder_widths))
        if self.encoder_width < 1:
            raise ValueError(f"encoder_width must be >= 1, got {self.encoder_width}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if len(self.decoder_widths) < 2 or min(self.decoder_widths) < 1:
            raise ValueError(
                f"decoder_widths needs >= 2 positive widths, got {self.decoder_widths}"
            )
        factor = 2**self.num_upsamples
        if self.image_size % factor or self.image_size < factor:
            raise ValueError(
                f"image_size {self.image_size} must be a positive multiple of {factor} "
                f"(2 ** (len(decoder_widths) - 1)); e.g. 224 with 6 widths, 32 or 64 for tests"
            )
        if self.upsample_mode not in ("nearest", "bilinear"):
            raise ValueError(
                f"upsample_mode must be 'nearest' or 'bilinear', got {self.upsample_mode!r}"
            )

    @property
    def num_upsamples(self) -> int:
        return len(self.decoder_widths) - 1

    @property
    def base_size(self) -> int:
        """Side of the decoder's first feature map (7 for 224 with the paper's widths)."""
        return self.image_size // 2**self.num_upsamples

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoder_widths"] = list(self.decoder_widths)
        return {"_class_name": "BetaVAE", **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BetaVAEConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known) - {"_class_name"})
        if unknown:
            raise ValueError(f"unknown BetaVAE config keys {unknown}")
        return cls(**known)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _resnet18_encoder(width: int = 64) -> nn.Module:
    """torchvision's ResNet18 with a 1-channel stem, no classifier, stage widths
    ``width·(1, 2, 4, 8)`` (64 = the standard ResNet18, output 512)."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class _ResNet18(ResNet):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
            self.conv1 = nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(BasicBlock, width, 2)
            self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Identity()
            for m in self.modules():  # torchvision's initialisation
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    return _ResNet18()


class BetaVAE(VAEBase):
    """β-VAE of the paper's Table 3 on 1-channel images in [0, 1]."""

    config_class = BetaVAEConfig

    def __init__(self, config: BetaVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or BetaVAEConfig()
        c = self.config
        w = c.decoder_widths
        self.encoder = _resnet18_encoder(c.encoder_width)
        features = 8 * c.encoder_width
        self.fc_mu = nn.Linear(features, c.latent_dim)
        self.fc_logvar = nn.Linear(features, c.latent_dim)
        self.fc_decode = nn.Linear(c.latent_dim, w[0] * c.base_size**2)
        up = nn.Upsample(scale_factor=2, mode=c.upsample_mode)
        layers: list[nn.Module] = [*_conv_bn_relu(w[0], w[1]), up]
        for k in range(1, len(w) - 1):
            layers += [*_conv_bn_relu(w[k], w[k]), *_conv_bn_relu(w[k], w[k + 1]), up]
        layers += [*_conv_bn_relu(w[-1], w[-1]), nn.Conv2d(w[-1], 1, 3, 1, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²), each (N, latent_dim), for images (N, 1, S, S) in [0, 1]."""
        self._check_images(x)
        h = F.relu(self.encoder(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, S, S) in [0, 1] for latents (N, latent_dim)."""
        self._check_latents(z)
        c = self.config
        h = F.relu(self.fc_decode(z)).view(-1, c.decoder_widths[0], c.base_size, c.base_size)
        return self.decoder(h)
