"""The paper's reference model: a ResNet18 that regresses η from one grayscale image.

torchvision's resnet18 with random initial weights (the paper gives no
pre-training, and nothing is downloaded), its first convolution swapped for a
1-channel one and its classifier for a 3-output linear head. The config is a
small JSON-serialisable dataclass saved beside the weights, so a checkpoint
rebuilds its model without pickle (as diffusers' ``config.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

__all__ = ["ResNetConfig", "ResNet18Regressor"]


@dataclass
class ResNetConfig:
    """What defines the network and how its outputs map back to η.

    ``target_mean``/``target_std`` undo the standardisation of the training
    targets: the network predicts standardised EBEs, ``forward`` returns η.
    """

    in_channels: int = 1
    out_dim: int = 3
    input_size: int = 224  # side of the square images the network takes
    target_mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    target_std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        data = _renamed_keys(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ResNetConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def _renamed_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Configs saved before the network input side was named ``input_size`` say ``image_size``."""
    if "image_size" in data and "input_size" not in data:
        data = {("input_size" if k == "image_size" else k): v for k, v in data.items()}
    return data


class ResNet18Regressor(nn.Module):
    """ResNet18 (1 input channel, ``out_dim`` outputs) with target de-standardisation.

    Input: float images (B, 1, H, W) in [0, 1]. ``forward`` returns η (B, out_dim) in
    the targets' own units; ``forward_standardised`` returns what the loss sees.
    """

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        from torchvision.models import resnet18

        self.config = config or ResNetConfig()
        c = self.config
        if len(c.target_mean) != c.out_dim or len(c.target_std) != c.out_dim:
            raise ValueError("target_mean and target_std need one entry per output")
        if min(c.target_std) <= 0:
            raise ValueError(f"target_std must be positive, got {c.target_std}")
        net = resnet18(weights=None, num_classes=c.out_dim)
        net.conv1 = nn.Conv2d(c.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.net = net
        self.register_buffer("target_mean", torch.tensor(c.target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(c.target_std, dtype=torch.float32))

    def forward_standardised(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - 0.5) / 0.25)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.forward_standardised(images).float()
        return out * self.target_std + self.target_mean
