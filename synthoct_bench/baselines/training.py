"""Train, checkpoint, resume and run the ResNet18 baseline (a scikit-learn style estimator).

``ResNet18Baseline(epochs=10, ...).fit(X, y, eval_set=(X_val, y_val))`` trains
with MSE on the EBE targets of one noise level (Adam, lr 1e-3, batch 16 as in
the paper), validates every epoch, keeps the best epoch's weights, and
``predict(X)`` returns η (N, 3). X is one split's column mapping as for every
baseline (:mod:`synthoct_bench.baselines.base`); this one reads ``"image"``
(PNG bytes or decoded uint8 (N, H, W)). Validation data goes to ``fit`` as
``eval_set``, as in LightGBM and XGBoost. Choices beyond the paper, each one a
constructor parameter:

- targets are standardised per dimension with the training set's mean and SD
  (EBEs are shrunk towards 0, variance < 1); the model maps outputs back, so
  predictions are in η units (``standardise_targets``);
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
progress, history and parameters; ``best/model.safetensors`` + ``best/config.json``
hold the best epoch (before calibration; ``save_pretrained`` writes the final
model). Mixed precision (``amp``) is on by default on GPUs (bf16, or fp16 with
loss scaling where bf16 is missing) and on CPUs with native bf16 (AVX-512 BF16
or AMX), where it trains 1.5-1.7× and predicts 1.75× faster at 48 px than
float32 (2-core AMD EPYC); training, validation and prediction all run under
it. On GPU, data-loader workers are switched on too. Adam runs fused where torch
has the fused kernel (3× faster optimiser steps on the CPU).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthoct_bench.atomic import write_json
from synthoct_bench.baselines.base import Columns, ParamsMixin, column
from synthoct_bench.baselines.resnet import ResNet18Regressor, ResNetConfig, _renamed_keys
from synthoct_bench.checkpoint import (
    TrainingDiverged,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors,
)
from synthoct_bench.devices import resolve_device

__all__ = [
    "ResNet18Baseline",
    "ArrayImageDataset",
    "resize_images",
    "decode_images",
    "epoch_order",
]

#: Fewest validation images the shrinkage line is fitted on: two parameters per η dim
#: from fewer subjects are noise (on 3 subjects the slope of one dim fell to 0 and
#: another rose to 25), so below it the network's predictions are kept as they are.
MIN_CALIBRATION_IMAGES = 20

#: Parameters a resumed run must share with the run that wrote its checkpoints.
_RESUME_KEYS = ("batch_size", "seed", "input_size", "lr", "standardise_targets")


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


def decode_images(images: Any) -> np.ndarray:
    """The ``"image"`` column as uint8 (N, H, W): PNG bytes (N,) are decoded, arrays kept."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        return images
    if isinstance(images, np.ndarray) and images.ndim != 1:
        raise ValueError(
            f"images must be PNG bytes (N,) or uint8 (N, H, W), got shape {images.shape}"
        )
    from synthoct_bench.dataset.writer import decode_png

    return decode_png(images)


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


def _eval_pair(eval_set: Any) -> tuple[Any, Any] | None:
    """``(X_val, y_val)`` from ``eval_set``: that pair, or a list holding just that pair."""
    if eval_set is None:
        return None
    if isinstance(eval_set, list):
        if len(eval_set) != 1:
            raise ValueError(
                f"eval_set takes one validation set (X_val, y_val), got a list of {len(eval_set)}"
            )
        eval_set = eval_set[0]
    if not isinstance(eval_set, tuple) or len(eval_set) != 2:
        raise ValueError("eval_set must be a pair (X_val, y_val)")
    return eval_set


#: An epoch record's ``precision``, spelled as the benchmarks' ``--dtype``.
_PRECISION_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: a CUDA GPU of compute capability 8
    or more (Ampere and later; older ones only emulate it), or a CPU with AVX-512 BF16
    or AMX (on x86; elsewhere oneDNN's own test). Other devices: no."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    try:
        if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without these checks: say no
        return False


def _adam(params: Any, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for ``device``, else the
    default; the same update up to float rounding."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=device.type in ("cuda", "cpu"))
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of n training rows for one epoch, drawn from (seed, epoch), so a
    run resumed mid-epoch sees the same batches."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=gen)


class ResNet18Baseline(ParamsMixin):
    """The paper's ResNet18 baseline as an estimator: ``fit`` then ``predict``.

    Reads X["image"]. Defaults follow the paper where it says (Adam, lr 1e-3, batch 16).

    Parameters:
        epochs: passes over the training data.
        batch_size: training batch size.
        lr: Adam learning rate.
        input_size: network input side in px; images are resized to it (None: the
            data's own image size).
        seed: weight initialisation and per-epoch data order.
        device: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
        amp: mixed precision (None: on for GPUs, in fp16 with loss scaling where bf16
            is missing, and for CPUs with native bf16, see :func:`native_bf16`).
        num_workers: data-loader workers for a torch Dataset X (None: min(8, cpus) on
            cuda, 0 on cpu).
        standardise_targets: train on per-dimension standardised targets.
        calibrate: fit a validation-set shrinkage line after training (needs eval_set
            with at least :data:`MIN_CALIBRATION_IMAGES` images; with fewer, a warning).
        checkpoint_every: also checkpoint every this many steps (0: at epoch ends only).
        eval_batch_size: batch size of validation and ``predict``.
        progress: show progress bars.
        checkpoint_dir: where checkpoints go (None: none are written);
            ``fit(..., resume=True)`` continues from it.
        latent_augment: Ramisetti's (2024) latent augmentation (gaussian, cutout, mixup or
            cmixup, at its default parameters) to make extra training images: the
            training images are encoded by ``augment_vae`` (a trained VAE folder),
            their latents augmented ``augment_copies`` times and decoded, and the
            decoded images join the training set with their (mixed) targets.

    Learned: ``model_`` (the network), ``history_`` (one record per epoch),
    ``calibration_`` (the shrinkage line, or None).
    """

    input_columns: tuple[str, ...] = ("image",)

    def __init__(
        self,
        *,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 1e-3,
        input_size: int | None = None,
        seed: int = 0,
        device: str = "auto",
        amp: bool | None = None,
        num_workers: int | None = None,
        standardise_targets: bool = True,
        calibrate: bool = True,
        checkpoint_every: int = 0,
        eval_batch_size: int = 256,
        progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        latent_augment: str | None = None,
        augment_vae: str | os.PathLike | None = None,
        augment_copies: int = 1,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.input_size = input_size
        self.seed = seed
        self.device = device
        self.amp = amp
        self.num_workers = num_workers
        self.standardise_targets = standardise_targets
        self.calibrate = calibrate
        self.checkpoint_every = checkpoint_every
        self.eval_batch_size = eval_batch_size
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir
        self.latent_augment = latent_augment
        self.augment_vae = augment_vae
        self.augment_copies = augment_copies

    def _check_params(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.input_size is not None and self.input_size < 16:
            raise ValueError(f"input_size must be >= 16 px (or None), got {self.input_size}")
        if self.latent_augment not in (None, "none"):
            from synthoct_bench.augment import LatentAugmentation

            LatentAugmentation(self.latent_augment)
            if self.augment_vae is None:
                raise ValueError("latent_augment decodes through a VAE: give augment_vae=DIR")
            if int(self.augment_copies) < 1:
                raise ValueError(f"augment_copies must be >= 1, got {self.augment_copies}")

    def _train_config(self) -> dict[str, Any]:
        """The parameters that define training, as saved beside checkpoints and models."""
        params = self.get_params(deep=False)
        del params["checkpoint_dir"]
        return params

    def _checkpoints(self) -> Path | None:
        return Path(self.checkpoint_dir) if self.checkpoint_dir is not None else None

    @classmethod
    def _saved_params(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters from a saved ``train_config``, defaults where it has none."""
        defaults = cls().get_params(deep=False)
        del defaults["checkpoint_dir"]
        saved = _renamed_keys(dict(saved))
        return {name: saved.get(name, default) for name, default in defaults.items()}

    # ------------------------------------------------------------------ data
    def _dataset(self, X: Any, y: Any, size: int | None) -> torch.utils.data.Dataset:
        """X's images (resized to ``size``) and y as a dataset; a torch Dataset X as it is."""
        if isinstance(X, torch.utils.data.Dataset):
            return X
        images = decode_images(column(X, "image", type(self).__name__))
        return ArrayImageDataset(resize_images(images, size), y)

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
        workers = self.num_workers
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
            size = size or self.input_size
            if size is not None and tuple(x.shape[-2:]) != (size, size):
                x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
            yield x.to(device, non_blocking=non_blocking), y.to(device).float()

    def _with_decoded_latents(self, train: torch.utils.data.Dataset) -> ArrayImageDataset:
        """The training set plus images decoded from its augmented VAE latents."""
        from synthoct_bench.augment import LatentAugmentation, augmented_images
        from synthoct_bench.generators.vae.base import load_vae
        from synthoct_bench.generators.vae.run import run_model_dir

        if not isinstance(train, ArrayImageDataset):
            raise ValueError("latent_augment needs in-memory images (X as columns), not a Dataset")
        vae = load_vae(run_model_dir(self.augment_vae))
        images = train.images.numpy()
        extra, extra_y = augmented_images(
            vae, images, train.targets.numpy(), LatentAugmentation(self.latent_augment),
            copies=int(self.augment_copies), seed=self.seed,
        )  # fmt: skip
        extra = resize_images(extra, images.shape[-1])
        return ArrayImageDataset(
            np.concatenate([images, extra]),
            np.concatenate([train.targets.numpy(), extra_y.astype(np.float32)]),
        )

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
        X: Columns | torch.utils.data.Dataset,
        y: Any = None,
        *,
        eval_set: Any = None,
        resume: bool = False,
    ) -> ResNet18Baseline:
        """Train on X["image"] and the (N, 3) targets y; returns self.

        ``eval_set=(X_val, y_val)`` (or ``[(X_val, y_val)]``, as LightGBM and XGBoost
        take it) is the validation data, needed for model selection and calibration;
        without it the last epoch is kept and no calibration is done. X (and X_val)
        may also be a torch Dataset of (image, target) pairs, for data that does not
        fit in memory; y (and y_val) is then None. ``resume``: continue from the
        checkpoints in ``checkpoint_dir``.
        """
        self._check_params()
        device = resolve_device(self.device)
        if y is None and not isinstance(X, torch.utils.data.Dataset):
            raise ValueError("y is required: the (N, 3) training targets (the EBEs eta_ebe_s{k})")
        train = self._dataset(X, y, self.input_size)
        if self.latent_augment not in (None, "none"):
            train = self._with_decoded_latents(train)
        val_pair = _eval_pair(eval_set)
        val = self._dataset(*val_pair, self.input_size) if val_pair is not None else None
        if len(train) < 2:
            raise ValueError(f"need at least 2 training images, got {len(train)}")
        y_train = self._targets_of(train)
        out_dim = y_train.shape[1]
        if self.standardise_targets:
            mean, std = y_train.mean(axis=0), y_train.std(axis=0)
            std = np.where(std > 1e-8, std, 1.0)
        else:
            mean, std = np.zeros(out_dim), np.ones(out_dim)
        first_x = train[0][0]
        model_config = ResNetConfig(
            in_channels=int(first_x.shape[0]),
            out_dim=out_dim,
            input_size=int(self.input_size or first_x.shape[-1]),
            target_mean=[float(v) for v in mean],
            target_std=[float(v) for v in std],
        )
        torch.manual_seed(self.seed)
        model = ResNet18Regressor(model_config).to(device)
        optimizer = _adam(list(model.parameters()), self.lr, device)
        amp, amp_dtype = self._precision(device)
        autocast = self._autocast(device)  # one context, entered once a step
        scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)

        epoch, batch_pos, step = 0, 0, 0
        best_val, best_state = math.inf, None
        self.history_ = []
        if resume:
            loaded = self._load_progress(model, optimizer, scaler, device)
            if loaded is not None:
                epoch, batch_pos, step, best_val = loaded
                model_config = model.config
                checkpoints = self._checkpoints()
                if checkpoints and (checkpoints / "best").is_dir():
                    best_state = "disk"

        n = len(train)
        steps_per_epoch = math.ceil(n / self.batch_size)
        mean_t = model.target_mean.to(device)
        std_t = model.target_std.to(device)
        while epoch < self.epochs:
            model.train()
            order = epoch_order(n, self.seed, epoch)[batch_pos * self.batch_size :]
            bar = tqdm(
                self._batches(train, order, self.batch_size, device),
                total=steps_per_epoch - batch_pos,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                disable=not self.progress,
                leave=False,
            )
            t0, loss_sum, seen = time.perf_counter(), 0.0, 0
            for x, y in bar:
                with autocast:
                    out = model.forward_standardised(x)
                loss = F.mse_loss(out.float(), (y - mean_t) / std_t)
                value = float(loss.detach())
                if not math.isfinite(value):
                    hint = "lower --lr" + (", or train in float32 (--amp off)" if amp else "")
                    raise TrainingDiverged(step + 1, value, hint=hint)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                batch_pos += 1
                loss_sum += value * x.shape[0]
                seen += x.shape[0]
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
                if self.checkpoint_every and step % self.checkpoint_every == 0:
                    self._save_progress(model, optimizer, scaler, epoch, batch_pos, step, best_val)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "seconds": time.perf_counter() - t0,
                "images_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                "precision": _PRECISION_NAMES[amp_dtype] if amp else "fp32",
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
        if self.calibrate and val is not None:
            if len(val) >= MIN_CALIBRATION_IMAGES:
                # best/ keeps the uncalibrated weights, so a re-run calibrates the same way
                self._calibrate(model, val, device)
            else:
                warnings.warn(
                    f"no calibration: {len(val)} validation images, fewer than the "
                    f"{MIN_CALIBRATION_IMAGES} a shrinkage line needs; pass calibrate=False "
                    "to silence this",
                    stacklevel=2,
                )
        self.model_ = model.eval()
        return self

    # --------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, X: Columns | torch.utils.data.Dataset) -> np.ndarray:
        """η predictions (N, 3), float64, from X["image"] (or a torch Dataset's images)."""
        if getattr(self, "model_", None) is None:
            raise ValueError(
                "this ResNet18Baseline is not fitted; call fit() or from_pretrained() first"
            )
        model = self.model_.eval()
        device = next(model.parameters()).device
        size = model.config.input_size
        data = self._dataset(X, None, size)
        order = torch.arange(len(data))
        batches = self._batches(data, order, self.eval_batch_size, device, size)
        with self._autocast(device):
            outs = [model(x).float().cpu() for x, _ in batches]
        return torch.cat(outs).numpy().astype(np.float64)

    def _precision(self, device: torch.device) -> tuple[bool, torch.dtype]:
        """(mixed precision on, its dtype) on ``device``: ``amp``, else on for every GPU
        (fp16 with loss scaling where bf16 is missing) and for CPUs with native bf16."""
        native = native_bf16(device)
        amp = self.amp if self.amp is not None else device.type == "cuda" or native
        bf16 = device.type != "cuda" or native
        return bool(amp), torch.bfloat16 if bf16 else torch.float16

    def _autocast(self, device: torch.device) -> torch.autocast:
        amp, dtype = self._precision(device)
        return torch.autocast(device.type, dtype=dtype, enabled=amp)

    @torch.no_grad()
    def _val_loss(self, model: ResNet18Regressor, val, device) -> float:
        """MSE on standardised targets, the quantity training minimises."""
        model.eval()
        total, count = 0.0, 0
        order = torch.arange(len(val))
        with self._autocast(device):
            for x, y in self._batches(val, order, self.eval_batch_size, device):
                z = (y - model.target_mean) / model.target_std
                out = model.forward_standardised(x).float()
                total += float(((out - z) ** 2).sum())
                count += y.numel()
        model.train()
        return total / max(count, 1)

    @torch.no_grad()
    def _calibrate(self, model: ResNet18Regressor, val, device) -> None:
        """Per-dimension least-squares line y ≈ a + b·pred on validation, b >= 0."""
        model.eval()
        preds, ys = [], []
        with self._autocast(device):
            for x, y in self._batches(val, torch.arange(len(val)), self.eval_batch_size, device):
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
        if self._checkpoints() is None:
            return copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        self._write_best(model)
        return "disk"

    def _write_best(self, model: ResNet18Regressor) -> None:
        best = self._checkpoints() / "best"
        save_tensors(best / "model.safetensors", model.state_dict())
        write_json(best / "config.json", model.config.to_dict())

    def _load_best_model(self, device) -> ResNet18Regressor:
        return self._read_model(self._checkpoints() / "best", device)

    @staticmethod
    def _read_model(folder: Path, device) -> ResNet18Regressor:
        config = ResNetConfig.from_dict(json.loads((folder / "config.json").read_text()))
        model = ResNet18Regressor(config)
        model.load_state_dict(load_tensors(folder / "model.safetensors"))
        return model.to(device)

    def _save_progress(self, model, optimizer, scaler, epoch, batch_pos, step, best_val) -> None:
        d = self._checkpoints()
        if d is None:
            return
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
            "train_config": self._train_config(),
            "model_config": model.config.to_dict(),
            "optimizer": opt_rest,
            "grad_scaler": {k: v for k, v in scaler.state_dict().items()},
        }
        write_json(d / "state.json", state)  # last: names the now-complete files
        for old in d.glob("step-*.safetensors"):
            if not old.name.startswith(stem + "."):
                old.unlink(missing_ok=True)

    def _load_progress(self, model, optimizer, scaler, device):
        checkpoints = self._checkpoints()
        if checkpoints is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        path = checkpoints / "state.json"
        if not path.is_file():
            return None  # nothing saved yet: start fresh
        state = json.loads(path.read_text())
        saved = self._saved_params(state["train_config"])
        for key in _RESUME_KEYS:
            if saved[key] != getattr(self, key):
                raise ValueError(
                    f"cannot resume: checkpoint has {key}={saved[key]!r} but this run "
                    f"has {getattr(self, key)!r}; use the same settings or a new directory"
                )
        config = ResNetConfig.from_dict(state["model_config"])
        model.config = config
        stem = checkpoints / state["checkpoint"]
        model.load_state_dict(load_tensors(f"{stem}.model.safetensors"))
        model.to(device)
        # the kernel choice (fused, foreach) is this run's, not the checkpoint's: a
        # checkpoint written by an unfused Adam must not unfuse this one (GradScaler
        # steps a fused Adam differently), nor a fused one ask for a missing kernel
        kernels = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
        optimizer_from_tensors(
            optimizer, load_tensors(f"{stem}.optimizer.safetensors", device), state["optimizer"]
        )
        for group, kernel in zip(optimizer.param_groups, kernels, strict=True):
            group.update(kernel)
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
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the fitted model into ``folder``; no pickle anywhere.

        ``model.safetensors`` (weights), ``config.json`` (the network and its target
        scaling, calibration folded in) and ``training.json`` (the parameters but
        ``checkpoint_dir``, ``history_`` and ``calibration_``).
        """
        if getattr(self, "model_", None) is None:
            raise ValueError("nothing to save: fit() the model first")
        folder = Path(folder)
        save_tensors(folder / "model.safetensors", self.model_.state_dict())
        write_json(folder / "config.json", self.model_.config.to_dict())
        info = {"train_config": self._train_config(), "history": self.history_}
        if getattr(self, "calibration_", None):
            info["calibration"] = self.calibration_
        write_json(folder / "training.json", info)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str = "auto") -> ResNet18Baseline:
        """Rebuild a fitted baseline from :meth:`save_pretrained`'s folder on ``device``.

        A checkpoint's ``best/`` folder works too (it has no ``training.json``, so
        the parameters are the defaults). ``checkpoint_dir`` is not restored.
        """
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} holds no config.json: not a saved ResNet18Baseline")
        info_path = folder / "training.json"
        info: dict[str, Any] = {}
        if info_path.is_file():
            info = json.loads(info_path.read_text())
        out = cls(**{**cls._saved_params(info.get("train_config", {})), "device": device})
        out.model_ = cls._read_model(folder, resolve_device(device)).eval()
        out.history_ = list(info.get("history", []))
        out.calibration_ = info.get("calibration")
        return out
