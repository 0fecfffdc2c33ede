"""The paper's β-VAE (Table 3): ResNet18 encoder, 128-d latent, upsampling decoder.

Encoder: torchvision ResNet18 with a 1-channel stem and no classifier
(1×224×224 -> 512), ReLU, then two Dense 512 -> 128 heads for μ and log σ².
Decoder: Dense + ReLU 128 -> 1024·7·7, reshape to (1024, 7, 7), then
conv/BatchNorm/ReLU blocks with five nearest-neighbour ×2 upsamplings to
(1, 224, 224) and a Sigmoid. ``decoder_widths`` (default the paper's
1024, 512, 256, 128, 64, 32) and ``image_size`` are configurable so tests can
run a narrow, small copy with the same structure.

Weights are saved the diffusers way: a folder with ``config.json`` and
``model.safetensors``; :meth:`BetaVAE.from_pretrained` takes that folder or a
Hub repo id.

:class:`VAEBase` holds what every VAE architecture here shares (the
reparameterised forward, the numpy helpers, save/load), so the trainer can take
any of them; :data:`ARCHITECTURES` names them (``paper``: this module's
:class:`BetaVAE`; ``small``: seed 003's :class:`~synthoct_bench.generators.vae_small.SmallConvVAE`)
and :func:`load_vae` loads a saved folder of either kind.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthoct_bench.atomic import atomic_write_dir
from synthoct_bench.latent import LATENT_DIM

__all__ = [
    "BetaVAEConfig",
    "BetaVAE",
    "VAEBase",
    "ARCHITECTURES",
    "get_architecture",
    "build_vae",
    "load_vae",
    "kl_divergence",
    "BetaVAEGenerator",
    "SELECTION_NAME",
    "saved_eta_dims",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PAPER_DECODER_WIDTHS: tuple[int, ...] = (1024, 512, 256, 128, 64, 32)

#: Architecture registry: name -> "module:Class" of a :class:`VAEBase` subclass.
ARCHITECTURES: dict[str, str] = {
    "paper": "synthoct_bench.generators.vae:BetaVAE",
    "small": "synthoct_bench.generators.vae_small:SmallConvVAE",
}


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


def _resolve_folder(
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
    folder = _resolve_folder(path_or_repo_id, revision, subfolder)
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
    def encode_images(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """μ (N, latent_dim) float64 for images (N, H, W), resized to image_size."""
        was_training = self.training
        self.eval()
        try:
            out = [
                self.encode(self.images_to_tensor(images[i : i + batch_size]))[0].double().cpu()
                for i in range(0, len(images), batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.latent_dim))

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

        folder = _resolve_folder(path_or_repo_id, revision, subfolder)
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
            folder = _resolve_folder(vae, revision, None)
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
