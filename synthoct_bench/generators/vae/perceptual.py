"""VGG16 perceptual loss: MSE between VGG16 feature maps of two images.

The paper's public code (Julia, Metalhead VGG16 with ReLU fused into each conv)
uses relu1_2 and relu3_3, which are torchvision ``vgg16().features[3]`` and
``features[15]``; the layers are configurable. ImageNet weights come from a
local file or torchvision's cache (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``),
never from the network. Without them the loss runs on a randomly initialised
VGG16 (still a usable perceptual loss: Liu et al., CVPR 2021) and warns.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["VGG16_RELU_LAYERS", "VGG16_CACHE_FILE", "find_vgg16_weights", "VGGPerceptualLoss"]

#: ReLU name -> index in torchvision's ``vgg16().features``.
VGG16_RELU_LAYERS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}  # fmt: skip
#: File name torchvision gives the ImageNet VGG16 weights in its hub cache.
VGG16_CACHE_FILE = "vgg16-397923af.pth"
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def find_vgg16_weights() -> Path | None:
    """torchvision's cached ImageNet VGG16 file, if present (no download)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_CACHE_FILE
    return path if path.is_file() else None


def _vgg16_features(last_index: int) -> nn.Sequential:
    """torchvision's ``vgg16().features`` truncated after ``last_index`` (same layer indices)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
        if len(layers) > last_index:
            break
    return nn.Sequential(*layers[: last_index + 1])


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class VGGPerceptualLoss(nn.Module):
    """Per-layer MSE between VGG16 features of ``x`` and ``y`` (images in [0, 1]).

    Args:
        layers: ReLU names from :data:`VGG16_RELU_LAYERS` (default relu1_2, relu3_3).
        weights: a ``.pth``/``.safetensors`` file of torchvision VGG16 weights;
            ``None`` looks in torchvision's cache and warns if absent; ``"random"``
            uses a seeded random initialisation without warning.
        seed: seed of the random initialisation.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu3_3"),
        weights: str | os.PathLike | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_RELU_LAYERS]
        if not layers or unknown:
            raise ValueError(
                f"unknown VGG16 layers {unknown or list(layers)}; choose from "
                f"{sorted(VGG16_RELU_LAYERS)}"
            )
        self.layers = tuple(layers)
        self.indices = tuple(VGG16_RELU_LAYERS[name] for name in self.layers)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.features = _vgg16_features(max(self.indices))
        self.weights_source = self._load_weights(weights)
        self.features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def _load_weights(self, weights: str | os.PathLike | None) -> str:
        if isinstance(weights, str) and weights == "random":
            return "random"
        if weights is None:
            path = find_vgg16_weights()
            if path is None:
                warnings.warn(
                    f"VGG16 ImageNet weights not found ({VGG16_CACHE_FILE} in "
                    f"{torch.hub.get_dir()}/checkpoints); the perceptual loss uses a randomly "
                    "initialised VGG16. Pass weights=PATH or put the file in torchvision's cache "
                    "to match the paper.",
                    stacklevel=3,
                )
                return "random"
        else:
            path = Path(weights)
            if not path.is_file():
                raise ValueError(f"VGG16 weights file {path} does not exist")
        state = _load_state_dict(path)
        wanted = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
        own = self.features.state_dict()
        missing = [k for k in own if k not in wanted]
        if missing:
            raise ValueError(
                f"{path} is not a torchvision VGG16 state dict (missing {missing[:3]})"
            )
        self.features.load_state_dict({k: wanted[k] for k in own})
        return str(path)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        """The VGG stays in eval mode whatever the surrounding model does."""
        super().train(mode)
        self.features.eval()
        return self

    def _feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.indices:
                out.append(h)
        return [out[sorted(self.indices).index(i)] for i in self.indices]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-layer MSE, shape (len(layers),), in the order of ``layers``."""
        fx = self._feature_maps(x)
        fy = self._feature_maps(y)
        return torch.stack([torch.mean((a - b) ** 2) for a, b in zip(fx, fy, strict=True)])
