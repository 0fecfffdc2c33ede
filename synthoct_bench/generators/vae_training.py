"""Training recipe of the paper's β-VAE (section 2.1), resumable and pickle-free.

Loss = α·MSE + γ·perceptual(relu1_2) + τ·perceptual(relu3_3) + β·KL, with
α = 400/3, γ = 25/12, τ = 1/3 and β warmed up linearly from 0 to 0.0376, then
a fixed number of epochs (the paper: 100); Adam lr 1e-3, batch 5; training
augmentation: horizontal flip + random vertical crop removing 34 rows (of 224)
then resize back; validation uses the central crop.

Every random choice (epoch order, flips, crops, reparameterisation noise) is
keyed by (seed, epoch or step) through :mod:`synthoct_bench.rng`, so a run
killed and resumed from its last checkpoint takes the same path as one that
never stopped. Checkpoints are folders of safetensors + JSON, written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthoct_bench import rng
from synthoct_bench.atomic import atomic_write_dir, save_figure
from synthoct_bench.checkpoint import load_optimizer_state, save_optimizer_state
from synthoct_bench.generators.perceptual import VGGPerceptualLoss
from synthoct_bench.generators.vae import BetaVAE, BetaVAEConfig, kl_divergence

__all__ = [
    "VAETrainingConfig",
    "ImageSource",
    "load_image_source",
    "augment_batch",
    "beta_at",
    "save_optimizer_state",
    "load_optimizer_state",
    "plot_loss_curves",
    "train_vae",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass
class VAETrainingConfig:
    """Settings of the recipe; defaults are the paper's where it gives them."""

    batch_size: int = 5
    learning_rate: float = 1e-3
    alpha: float = 400 / 3
    #: weights of the perceptual terms, one per layer in ``perceptual_layers`` (γ, τ).
    perceptual_weights: tuple[float, ...] = (25 / 12, 1 / 3)
    perceptual_layers: tuple[str, ...] = ("relu1_2", "relu3_3")
    #: VGG16 weights file; None = torchvision's cache, else random init with a warning.
    vgg_weights: str | None = None
    beta_max: float = 0.0376
    #: length of the linear β warm-up; the paper does not give it.
    warmup_epochs: float = 10.0
    #: epochs after the warm-up (the paper: 100).
    epochs: int = 100
    #: stop after this many optimiser steps in total (overrides the epoch counts).
    max_steps: int | None = None
    #: rows removed by the random vertical crop at 224 px; scaled for other sizes.
    crop_rows_at_224: int = 34
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        self.perceptual_weights = tuple(float(w) for w in self.perceptual_weights)
        self.perceptual_layers = tuple(self.perceptual_layers)
        if len(self.perceptual_weights) != len(self.perceptual_layers):
            raise ValueError(
                f"perceptual_weights {self.perceptual_weights} needs one weight per layer in "
                f"perceptual_layers {self.perceptual_layers}"
            )
        for name in ("batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.beta_max < 0 or self.warmup_epochs < 0:
            raise ValueError("learning_rate must be > 0, beta_max and warmup_epochs >= 0")

    def crop_rows(self, image_size: int) -> int:
        return int(round(self.crop_rows_at_224 * image_size / 224))


# ---- data ---------------------------------------------------------------------------------


class ImageSource:
    """Grayscale images from an array, a folder of image files or a `datasets` split.

    ``get(indices)`` returns float tensors (B, 1, S, S) in [0, 1], resized to ``image_size``.
    """

    def __init__(self, items: Any, kind: str, image_size: int, image_column: str = "image"):
        self.items, self.kind, self.image_size, self.image_column = (
            items,
            kind,
            image_size,
            image_column,
        )

    def __len__(self) -> int:
        return len(self.items)

    def _to_array(self, img: Any) -> np.ndarray:
        from PIL import Image

        if isinstance(img, (str, os.PathLike)):
            with Image.open(img) as im:
                img = im.convert("L")
        elif isinstance(img, Image.Image):
            img = img.convert("L")
        else:
            img = Image.fromarray(np.asarray(img, dtype=np.uint8))
        s = self.image_size
        if img.size != (s, s):
            img = img.resize((s, s), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        idx = [int(i) for i in indices]
        if self.kind == "array":
            arr = self.items[idx]
            if arr.shape[1:] != (self.image_size, self.image_size):
                arr = np.stack([self._to_array(a) for a in arr])
        elif self.kind == "files":
            arr = np.stack([self._to_array(self.items[i]) for i in idx])
        else:
            rows = self.items[idx][self.image_column]
            arr = np.stack([self._to_array(r) for r in rows])
        return torch.from_numpy(arr.astype(np.float32) / 255.0)[:, None]


def load_image_source(
    source: Any, image_size: int, split: str = "train", image_column: str = "image"
) -> ImageSource:
    """An :class:`ImageSource` from a uint8 array (N, H, W), a folder of images
    (searched recursively), a `datasets.Dataset`, a `save_to_disk` folder, or a Hub
    dataset repo id (loaded with ``datasets.load_dataset(source, split=split)``)."""
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.dtype != np.uint8 or len(source) == 0:
            raise ValueError(
                f"an image array must be uint8 (N, H, W) with N >= 1, got {source.dtype} "
                f"{source.shape}"
            )
        return ImageSource(source, "array", image_size)
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        datasets = None
    if datasets is not None and isinstance(source, datasets.Dataset):
        return _checked_dataset(source, image_size, image_column)
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            return _checked_dataset(datasets.load_from_disk(str(path)), image_size, image_column)
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no image files ({sorted(IMAGE_SUFFIXES)}) under {path}")
        return ImageSource(files, "files", image_size)
    if path.exists():
        raise ValueError(f"{path} is a file; give a folder of images or a dataset")
    ds = datasets.load_dataset(str(source), split=split)
    return _checked_dataset(ds, image_size, image_column)


def _checked_dataset(ds: Any, image_size: int, image_column: str) -> ImageSource:
    if image_column not in ds.column_names:
        raise ValueError(
            f"dataset has no column {image_column!r} (columns: {ds.column_names}); "
            "pass image_column=..."
        )
    if len(ds) == 0:
        raise ValueError("the image dataset is empty")
    return ImageSource(ds, "dataset", image_size, image_column)


def augment_batch(
    x: torch.Tensor, crop_rows: int, generator: torch.Generator | None, train: bool = True
) -> torch.Tensor:
    """The paper's augmentation on a batch (B, 1, S, S), in one ``grid_sample`` call.

    Training: horizontal flip with probability 1/2 and a vertical crop of
    ``S - crop_rows`` rows at a uniform random offset, resized back to S rows.
    Validation (``train=False``): the central crop, no flip.
    """
    b, _, s, _ = x.shape
    if not 0 <= crop_rows < s:
        raise ValueError(f"crop_rows must be in [0, {s}), got {crop_rows}")
    if train:
        flip = torch.rand(b, generator=generator) < 0.5
        offset = torch.randint(0, crop_rows + 1, (b,), generator=generator).float()
    else:
        flip = torch.zeros(b, dtype=torch.bool)
        offset = torch.full((b,), crop_rows / 2)
    scale = (s - crop_rows) / s
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    theta[:, 1, 1] = scale
    theta[:, 1, 2] = -1 + (2 * offset + s - crop_rows) / s
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def beta_at(step: int, warmup_steps: int, beta_max: float) -> float:
    """β at optimiser step ``step`` (0-based): linear from 0 to ``beta_max``, then flat."""
    if warmup_steps <= 0:
        return beta_max
    return beta_max * min(1.0, step / warmup_steps)


# ---- plotting -----------------------------------------------------------------------------


def plot_loss_curves(
    history: list[dict[str, float]],
    path: str | os.PathLike,
    val_history: list[dict[str, float]] | None = None,
) -> Path:
    """Loss terms (log scale), validation loss if any, and β against the step (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = [h["step"] for h in history]
    keys = [k for k in (history[0] if history else {}) if k not in ("step", "epoch", "beta")]
    fig, (ax, ax_beta) = plt.subplots(1, 2, figsize=(9, 3.2), width_ratios=(3, 1))
    for key in keys:
        values = np.array([h[key] for h in history], dtype=float)
        ax.plot(steps, np.where(values > 0, values, np.nan), label=key, lw=1)
    if val_history:
        val_steps = [h["step"] for h in val_history]
        ax.plot(val_steps, [h["val_loss"] for h in val_history], "ko--", ms=3, label="val_loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend(fontsize=7, loc="upper right")
    ax_beta.plot(steps, [h.get("beta", np.nan) for h in history], color="k")
    ax_beta.set_title("β")
    ax_beta.set_xlabel("step")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.25)
    return save_figure(fig, path, dpi=90)


# ---- training -----------------------------------------------------------------------------


@dataclass
class _State:
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    val_history: list[dict[str, float]] = field(default_factory=list)


def _latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted((output_dir / "checkpoints").glob("step-*"))
    ckpts = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    return ckpts[-1] if ckpts else None


def _save_checkpoint(
    output_dir: Path, model: BetaVAE, opt: torch.optim.Optimizer, state: _State, cfg: Any
) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")
        save_optimizer_state(opt, tmp / "optimizer.safetensors")
        payload = {"step": state.step, "history": state.history, "val_history": state.val_history}
        payload["training_config"] = asdict(cfg)
        (tmp / "trainer_state.json").write_text(json.dumps(payload) + "\n")

    target = atomic_write_dir(output_dir / "checkpoints" / f"step-{state.step:09d}", write)
    old = sorted((output_dir / "checkpoints").glob("step-*"))[: -cfg.keep_checkpoints]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return target


def _step_generator(seed: int, name: str, step: int) -> torch.Generator:
    s = int(rng.subject_seeds(seed, rng.stream_id(name), np.array([step]))[0])
    return torch.Generator().manual_seed(s)


def _loss_terms(
    model: BetaVAE,
    vgg: VGGPerceptualLoss,
    x: torch.Tensor,
    cfg: VAETrainingConfig,
    beta: float,
    generator: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    if generator is None:  # validation: decode μ
        mu, logvar = model.encode(x)
        recon = model.decode(mu)
    else:
        recon, mu, logvar = model(x, generator=generator)
    terms = {"mse": F.mse_loss(recon, x)}
    perceptual = vgg(recon, x)
    for name, value in zip(cfg.perceptual_layers, perceptual, strict=True):
        terms[f"perceptual_{name}"] = value
    terms["kl"] = kl_divergence(mu, logvar)
    weighted = cfg.alpha * terms["mse"] + torch.dot(
        torch.tensor(cfg.perceptual_weights, dtype=perceptual.dtype, device=perceptual.device),
        perceptual,
    )
    terms["loss"] = weighted + beta * terms["kl"]
    return terms


def train_vae(
    train_source: Any,
    output_dir: str | os.PathLike,
    config: VAETrainingConfig | None = None,
    model_config: BetaVAEConfig | None = None,
    val_source: Any = None,
    device: str | torch.device = "cpu",
    resume: bool = True,
    progress: bool = True,
    image_column: str = "image",
) -> dict[str, Any]:
    """Train (or resume training) the β-VAE; returns the logged history.

    Writes ``output_dir/checkpoints/step-*/`` (model, optimizer, trainer state),
    ``output_dir/model/`` (final weights, loadable with ``BetaVAE.from_pretrained``)
    and ``output_dir/loss_curves.png``.
    """
    from tqdm.auto import tqdm

    cfg = config or VAETrainingConfig()
    mcfg = model_config or BetaVAEConfig()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = load_image_source(train_source, mcfg.image_size, image_column=image_column)
    val = (
        load_image_source(val_source, mcfg.image_size, split="test", image_column=image_column)
        if val_source is not None
        else None
    )
    n = len(data)
    if n < cfg.batch_size:
        raise ValueError(f"{n} training images is fewer than one batch of {cfg.batch_size}")
    steps_per_epoch = n // cfg.batch_size  # drop the last partial batch (BatchNorm needs > 1)
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    total_steps = cfg.max_steps or warmup_steps + cfg.epochs * steps_per_epoch
    crop = cfg.crop_rows(mcfg.image_size)

    torch.manual_seed(cfg.seed)  # initial weights
    model = BetaVAE(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    vgg = VGGPerceptualLoss(cfg.perceptual_layers, weights=cfg.vgg_weights).to(device)
    state = _State()
    ckpt = _latest_checkpoint(output_dir) if resume else None
    if ckpt is not None:
        saved = BetaVAE.from_pretrained(ckpt / "model")
        if saved.config.to_dict() != mcfg.to_dict():
            raise ValueError(
                f"checkpoint {ckpt} has model config {saved.config.to_dict()}, not "
                f"{mcfg.to_dict()}; use another output_dir or resume=False"
            )
        model.load_state_dict(saved.state_dict())
        load_optimizer_state(opt, ckpt / "optimizer.safetensors")
        payload = json.loads((ckpt / "trainer_state.json").read_text())
        state = _State(payload["step"], payload["history"], payload["val_history"])

    if val is not None and state.step == 0:
        state.val_history.append({"step": 0, **_validate(model, vgg, val, cfg, crop, 0.0, device)})
    model.train()
    acc: dict[str, float] = {}
    acc_n = 0
    bar = tqdm(total=total_steps, initial=state.step, disable=not progress, desc="β-VAE")
    perm: np.ndarray | None = None
    perm_epoch = -1
    while state.step < total_steps:
        epoch, pos = divmod(state.step, steps_per_epoch)
        if epoch != perm_epoch:
            keys = rng.uniform(cfg.seed, rng.stream_id("vae_train/order", epoch), np.arange(n), 1)
            perm, perm_epoch = np.argsort(keys[:, 0], kind="stable"), epoch
        idx = perm[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        x = augment_batch(
            data.get(idx), crop, _step_generator(cfg.seed, "vae_train/augment", state.step)
        ).to(device)
        beta = beta_at(state.step, warmup_steps, cfg.beta_max)
        terms = _loss_terms(
            model, vgg, x, cfg, beta, _step_generator(cfg.seed, "vae_train/eps", state.step)
        )
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        state.step += 1
        bar.update(1)
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc_n += 1
        if state.step % cfg.log_every == 0 or state.step == total_steps:
            row = {"step": state.step, "epoch": epoch, **{k: v / acc_n for k, v in acc.items()}}
            row["beta"] = beta
            state.history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}", beta=f"{beta:.3g}")
            acc, acc_n = {}, 0
        end_of_epoch = state.step % steps_per_epoch == 0 or state.step == total_steps
        if val is not None and end_of_epoch:
            state.val_history.append(
                {"step": state.step, **_validate(model, vgg, val, cfg, crop, beta, device)}
            )
        if state.step % cfg.checkpoint_every == 0 or state.step == total_steps:
            _save_checkpoint(output_dir, model, opt, state, cfg)
            if state.history:
                plot_loss_curves(state.history, output_dir / "loss_curves.png", state.val_history)
    bar.close()
    model.save_pretrained(output_dir / "model")
    if state.history:
        plot_loss_curves(state.history, output_dir / "loss_curves.png", state.val_history)
    return {"step": state.step, "history": state.history, "val_history": state.val_history}


@torch.no_grad()
def _validate(
    model: BetaVAE,
    vgg: VGGPerceptualLoss,
    val: ImageSource,
    cfg: VAETrainingConfig,
    crop: int,
    beta: float,
    device: str | torch.device,
) -> dict[str, float]:
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    for start in range(0, len(val), cfg.batch_size):
        idx = range(start, min(start + cfg.batch_size, len(val)))
        x = augment_batch(val.get(idx), crop, None, train=False).to(device)
        terms = _loss_terms(model, vgg, x, cfg, beta, None)
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
        count += len(idx)
    model.train()
    return {f"val_{k}": v / count for k, v in totals.items()}
