"""Train, checkpoint, resume and run the ResNet18 baseline (scikit-learn style).

``ResNet18Baseline(TrainConfig(...)).fit(images, targets, val_images, val_targets)``
trains with MSE on the EBE targets of one noise level (Adam, lr 1e-3, batch 16
as in the paper), validates every epoch, keeps the best epoch's weights, and
``predict(images)`` returns η (N, 3). Choices beyond the paper, each one a
config switch:

- targets are standardised per dimension with the training set's mean and SD
  (EBEs are shrunk towards 0, variance < 1); the model maps outputs back, so
  predictions are in η units;
- ``calibrate``: after training, a per-dimension least-squares line from
  predictions to targets on the validation set (slope clipped at 0). With a
  weak signal and little data a network's predictions are mostly noise, and
  noise costs R²; the line shrinks them as much as validation says (slope ≈ 1
  when the model is good, as the paper's was on 950k images);
- data order per epoch is a permutation drawn from (seed, epoch), so a run
  resumed from a mid-epoch checkpoint sees the same batches as one that was
  never stopped.

Checkpoints (``checkpoint_dir``): ``state.json`` names the current
``step-*.model.safetensors`` / ``step-*.optimizer.safetensors`` pair and holds
progress, history and configs; ``best/model.safetensors`` + ``best/config.json``
hold the best epoch (before calibration; ``save`` writes the final model). On
GPU, AMP (bf16, or fp16 with loss scaling) and data-loader workers are switched on.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthoct_bench.atomic import write_json
from synthoct_bench.baselines.resnet import ResNet18Regressor, ResNetConfig, _renamed_keys
from synthoct_bench.checkpoint import (
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors,
)

__all__ = ["TrainConfig", "ResNet18Baseline", "ArrayImageDataset", "resize_images"]


@dataclass
class TrainConfig:
    """How to train. Defaults follow the paper where it says (Adam, lr 1e-3, batch 16)."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    input_size: int | None = None  # network input side; None keeps the data's image size
    seed: int = 0
    device: str = "auto"  # "auto" = cuda if available, else cpu
    amp: bool | None = None  # None = on for cuda
    num_workers: int | None = None  # None = min(8, cpus) on cuda, 0 on cpu
    standardise_targets: bool = True
    calibrate: bool = True
    checkpoint_every: int = 0  # also save every this many steps (0 = at epoch ends only)
    eval_batch_size: int = 256
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.input_size is not None and self.input_size < 16:
            raise ValueError(f"input_size must be >= 16 px (or None), got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = _renamed_keys(data)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resize_images(images: np.ndarray, size: int | None, chunk: int = 512) -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, size, size) with antialiased bilinear resizing."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
    if size is None or images.shape[1:] == (size, size):
        return images
    out = np.empty((images.shape[0], size, size), dtype=np.uint8)
    for start in range(0, images.shape[0], chunk):
        x = torch.from_numpy(images[start : start + chunk]).float().unsqueeze(1)
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        out[start : start + chunk] = y.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


class ArrayImageDataset(torch.utils.data.Dataset):
    """In-memory uint8 images (N, H, W) and float targets (N, k) as (1, H, W) floats in [0, 1]."""

    def __init__(self, images: np.ndarray, targets: np.ndarray | None = None) -> None:
        images = np.asarray(images)
        if images.ndim != 3:
            raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        if targets is None:
            targets = np.zeros((images.shape[0], 0), dtype=np.float32)
        targets = np.array(targets, dtype=np.float32)  # own, writable copy
        if targets.ndim != 2 or targets.shape[0] != images.shape[0]:
            raise ValueError(f"targets must have shape ({images.shape[0]}, k), got {targets.shape}")
        if not np.isfinite(targets).all():
            raise ValueError("targets contain NaN or inf; drop those subjects first")
        self.targets = torch.from_numpy(targets)

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._to_float(self.images[idx]).unsqueeze(1), self.targets[idx]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._to_float(self.images[i]).unsqueeze(0), self.targets[i]

    @staticmethod
    def _to_float(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    return device


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=gen)


class ResNet18Baseline:
    """The paper's ResNet18 baseline as an estimator: ``fit`` then ``predict``.

    Parameters:
        config: training settings (see :class:`TrainConfig`).
        checkpoint_dir: where checkpoints go; ``fit(..., resume=True)`` continues from it.
    """

    def __init__(
        self, config: TrainConfig | None = None, checkpoint_dir: str | os.PathLike | None = None
    ) -> None:
        self.config = config or TrainConfig()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.model_: ResNet18Regressor | None = None
        self.history_: list[dict[str, float]] = []
        self.calibration_: dict[str, list[float]] | None = None

    # ------------------------------------------------------------------ data
    def _dataset(self, images: Any, targets: Any) -> torch.utils.data.Dataset:
        if isinstance(images, torch.utils.data.Dataset):
            return images
        return ArrayImageDataset(resize_images(images, self.config.input_size), targets)

    def _batches(
        self,
        data: torch.utils.data.Dataset,
        order: torch.Tensor,
        batch_size: int,
        device: torch.device,
        size: int | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of ``data`` in ``order``: sliced in memory, or via DataLoader workers."""
        non_blocking = device.type == "cuda"
        if isinstance(data, ArrayImageDataset):
            for start in range(0, len(order), batch_size):
                x, y = data.batch(order[start : start + batch_size])
                yield x.to(device, non_blocking=non_blocking), y.to(device)
            return
        workers = self.config.num_workers
        if workers is None:
            workers = min(8, os.cpu_count() or 1) if device.type == "cuda" else 0
        loader = torch.utils.data.DataLoader(
            data,
            batch_size=batch_size,
            sampler=order.tolist(),
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        for x, y in loader:
            size = size or self.config.input_size
            if size is not None and tuple(x.shape[-2:]) != (size, size):
                x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
            yield x.to(device, non_blocking=non_blocking), y.to(device).float()

    @staticmethod
    def _targets_of(data: torch.utils.data.Dataset) -> np.ndarray:
        if isinstance(data, ArrayImageDataset):
            return data.targets.numpy().astype(np.float64)
        for name in ("targets", "target"):
            t = getattr(data, name, None)
            if t is not None:
                return np.asarray(t, dtype=np.float64)
        return np.stack([np.asarray(data[i][1], dtype=np.float64) for i in range(len(data))])

    # ----------------------------------------------------------------- train
    def fit(
        self,
        images: Any,
        targets: np.ndarray | None = None,
        val_images: Any = None,
        val_targets: np.ndarray | None = None,
        *,
        resume: bool = False,
    ) -> ResNet18Baseline:
        """Train on images (uint8 (N, H, W) or a torch Dataset of (image, target)) and targets.

        Validation data is needed for model selection and calibration; without it
        the last epoch is kept and no calibration is done.
        """
        cfg = self.config
        device = _resolve_device(cfg.device)
        train = self._dataset(images, targets)
        val = self._dataset(val_images, val_targets) if val_images is not None else None
        if len(train) < 2:
            raise ValueError(f"need at least 2 training images, got {len(train)}")
        y_train = self._targets_of(train)
        out_dim = y_train.shape[1]
        if cfg.standardise_targets:
            mean, std = y_train.mean(axis=0), y_train.std(axis=0)
            std = np.where(std > 1e-8, std, 1.0)
        else:
            mean, std = np.zeros(out_dim), np.ones(out_dim)
        first_x = train[0][0]
        model_config = ResNetConfig(
            in_channels=int(first_x.shape[0]),
            out_dim=out_dim,
            input_size=int(cfg.input_size or first_x.shape[-1]),
            target_mean=[float(v) for v in mean],
            target_std=[float(v) for v in std],
        )
        torch.manual_seed(cfg.seed)
        model = ResNet18Regressor(model_config).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
        amp_dtype = (
            torch.bfloat16
            if device.type != "cuda" or torch.cuda.is_bf16_supported()
            else torch.float16
        )
        scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)

        epoch, batch_pos, step = 0, 0, 0
        best_val, best_state = math.inf, None
        self.history_ = []
        if resume:
            loaded = self._load_progress(model, optimizer, scaler, device)
            if loaded is not None:
                epoch, batch_pos, step, best_val = loaded
                model_config = model.config
                if self.checkpoint_dir and (self.checkpoint_dir / "best").is_dir():
                    best_state = "disk"

        n = len(train)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        mean_t = model.target_mean.to(device)
        std_t = model.target_std.to(device)
        while epoch < cfg.epochs:
            model.train()
            order = _epoch_order(n, cfg.seed, epoch)[batch_pos * cfg.batch_size :]
            bar = tqdm(
                self._batches(train, order, cfg.batch_size, device),
                total=steps_per_epoch - batch_pos,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not cfg.progress,
                leave=False,
            )
            t0, loss_sum, seen = time.perf_counter(), 0.0, 0
            for x, y in bar:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                    out = model.forward_standardised(x)
                loss = F.mse_loss(out.float(), (y - mean_t) / std_t)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                batch_pos += 1
                loss_sum += float(loss.detach()) * x.shape[0]
                seen += x.shape[0]
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    self._save_progress(model, optimizer, scaler, epoch, batch_pos, step, best_val)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "seconds": time.perf_counter() - t0,
                "images_per_s": seen / max(time.perf_counter() - t0, 1e-9),
            }
            if val is not None:
                record["val_loss"] = self._val_loss(model, val, device)
                if record["val_loss"] < best_val:
                    best_val = record["val_loss"]
                    best_state = self._keep_best(model)
            self.history_.append(record)
            epoch, batch_pos = epoch + 1, 0
            self._save_progress(model, optimizer, scaler, epoch, 0, step, best_val)

        if best_state == "disk":
            model = self._load_best_model(device)
        elif best_state is not None:
            model.load_state_dict(best_state)
        self.calibration_ = None
        if cfg.calibrate and val is not None:
            # best/ keeps the uncalibrated weights, so a re-run calibrates the same way
            self._calibrate(model, val, device)
        self.model_ = model.eval()
        return self

    # --------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, images: Any) -> np.ndarray:
        """η predictions (N, 3), float64, for uint8 images (N, H, W) or a torch Dataset."""
        if self.model_ is None:
            raise ValueError("this ResNet18Baseline is not fitted; call fit() or load() first")
        model = self.model_.eval()
        device = next(model.parameters()).device
        size = model.config.input_size
        if not isinstance(images, torch.utils.data.Dataset):
            images = ArrayImageDataset(resize_images(images, size))
        order = torch.arange(len(images))
        batches = self._batches(images, order, self.config.eval_batch_size, device, size)
        outs = [model(x).float().cpu() for x, _ in batches]
        return torch.cat(outs).numpy().astype(np.float64)

    @torch.no_grad()
    def _val_loss(self, model: ResNet18Regressor, val, device) -> float:
        """MSE on standardised targets, the quantity training minimises."""
        model.eval()
        total, count = 0.0, 0
        order = torch.arange(len(val))
        for x, y in self._batches(val, order, self.config.eval_batch_size, device):
            z = (y - model.target_mean) / model.target_std
            total += float(((model.forward_standardised(x).float() - z) ** 2).sum())
            count += y.numel()
        model.train()
        return total / max(count, 1)

    @torch.no_grad()
    def _calibrate(self, model: ResNet18Regressor, val, device) -> None:
        """Per-dimension least-squares line y ≈ a + b·pred on validation, b >= 0."""
        model.eval()
        preds, ys = [], []
        for x, y in self._batches(val, torch.arange(len(val)), self.config.eval_batch_size, device):
            preds.append(model(x).float().cpu())
            ys.append(y.float().cpu())
        p = torch.cat(preds).double().numpy()
        y = torch.cat(ys).double().numpy()
        pc, yc = p - p.mean(axis=0), y - y.mean(axis=0)
        var = (pc**2).sum(axis=0)
        slope = np.where(var > 1e-12, (pc * yc).sum(axis=0) / np.maximum(var, 1e-12), 0.0)
        slope = np.clip(slope, 0.0, None)
        shift = y.mean(axis=0) - slope * p.mean(axis=0)
        # fold the line into the de-standardisation: b·(std·z + mean) + a
        c = model.config
        new_std = slope * np.asarray(c.target_std)
        new_std = np.where(new_std > 0, new_std, 1e-12)
        new_mean = slope * np.asarray(c.target_mean) + shift
        c.target_std, c.target_mean = [float(v) for v in new_std], [float(v) for v in new_mean]
        model.target_std.copy_(torch.tensor(c.target_std))
        model.target_mean.copy_(torch.tensor(c.target_mean))
        self.calibration_ = {"slope": slope.tolist(), "shift": shift.tolist()}

    # ------------------------------------------------------------ checkpoints
    def _keep_best(self, model: ResNet18Regressor) -> Any:
        if self.checkpoint_dir is None:
            return copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        self._write_best(model)
        return "disk"

    def _write_best(self, model: ResNet18Regressor) -> None:
        best = self.checkpoint_dir / "best"
        save_tensors(best / "model.safetensors", model.state_dict())
        write_json(best / "config.json", model.config.to_dict())

    def _load_best_model(self, device) -> ResNet18Regressor:
        return self._read_model(self.checkpoint_dir / "best", device)

    @staticmethod
    def _read_model(folder: Path, device) -> ResNet18Regressor:
        config = ResNetConfig.from_dict(json.loads((folder / "config.json").read_text()))
        model = ResNet18Regressor(config)
        model.load_state_dict(load_tensors(folder / "model.safetensors"))
        return model.to(device)

    def _save_progress(self, model, optimizer, scaler, epoch, batch_pos, step, best_val) -> None:
        if self.checkpoint_dir is None:
            return
        d = self.checkpoint_dir
        d.mkdir(parents=True, exist_ok=True)
        stem = f"step-{step:09d}"
        save_tensors(d / f"{stem}.model.safetensors", model.state_dict())
        opt_tensors, opt_rest = optimizer_to_tensors(optimizer)
        save_tensors(d / f"{stem}.optimizer.safetensors", opt_tensors)
        state = {
            "checkpoint": stem,
            "epoch": epoch,
            "batch": batch_pos,
            "step": step,
            "best_val_loss": best_val if math.isfinite(best_val) else None,
            "history": self.history_,
            "train_config": self.config.to_dict(),
            "model_config": model.config.to_dict(),
            "optimizer": opt_rest,
            "grad_scaler": {k: v for k, v in scaler.state_dict().items()},
        }
        write_json(d / "state.json", state)  # last: names the now-complete files
        for old in d.glob("step-*.safetensors"):
            if not old.name.startswith(stem + "."):
                old.unlink(missing_ok=True)

    def _load_progress(self, model, optimizer, scaler, device):
        if self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        path = self.checkpoint_dir / "state.json"
        if not path.is_file():
            return None  # nothing saved yet: start fresh
        state = json.loads(path.read_text())
        saved = TrainConfig.from_dict(state["train_config"])
        for key in ("batch_size", "seed", "input_size", "lr", "standardise_targets"):
            if getattr(saved, key) != getattr(self.config, key):
                raise ValueError(
                    f"cannot resume: checkpoint has {key}={getattr(saved, key)!r} but this run "
                    f"has {getattr(self.config, key)!r}; use the same settings or a new directory"
                )
        config = ResNetConfig.from_dict(state["model_config"])
        model.config = config
        stem = self.checkpoint_dir / state["checkpoint"]
        model.load_state_dict(load_tensors(f"{stem}.model.safetensors"))
        model.to(device)
        optimizer_from_tensors(
            optimizer, load_tensors(f"{stem}.optimizer.safetensors", device), state["optimizer"]
        )
        if state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        self.history_ = list(state.get("history", []))
        best = state.get("best_val_loss")
        return (
            int(state["epoch"]),
            int(state["batch"]),
            int(state["step"]),
            math.inf if best is None else float(best),
        )

    # ------------------------------------------------------------ save / load
    def save(self, folder: str | os.PathLike) -> None:
        """Write the fitted model as ``model.safetensors`` + ``config.json`` (+ training info)."""
        if self.model_ is None:
            raise ValueError("nothing to save: fit() the model first")
        folder = Path(folder)
        save_tensors(folder / "model.safetensors", self.model_.state_dict())
        write_json(folder / "config.json", self.model_.config.to_dict())
        info = {"train_config": self.config.to_dict(), "history": self.history_}
        if getattr(self, "calibration_", None):
            info["calibration"] = self.calibration_
        write_json(folder / "training.json", info)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "auto") -> ResNet18Baseline:
        """Rebuild a fitted baseline from :meth:`save`'s folder (or a checkpoint's ``best/``)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} holds no config.json: not a saved ResNet18Baseline")
        info_path = folder / "training.json"
        config = TrainConfig()
        if info_path.is_file():
            config = TrainConfig.from_dict(json.loads(info_path.read_text())["train_config"])
        config.device = device
        out = cls(config)
        out.model_ = cls._read_model(folder, _resolve_device(device)).eval()
        return out
