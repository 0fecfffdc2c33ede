"""The interpretable baselines of Soelistyo & Lowe 2024: β-TCVAE features, a dense or
RigL-sparse head, formulas.

``TCVAEHeadBaseline(stage=...)`` reads images like the ResNet18 and predicts the
three random effects in three stages of Soelistyo & Lowe's (2024) pipeline:

1. a β-TCVAE (Soelistyo & Lowe's (2024) small convolutional VAE) is trained on the training
   images *without targets*; its encoder mean μ (32 latents) are the features;
2. ``stage="dense"``: a head 32 → 16 → 16 → 16 → 3 with Mish, dropout 0.3 (Scheme 2
   of Soelistyo & Lowe 2024); ``stage="sparse"``: the same head without dropout trained with
   RigL (:mod:`~synthoct_bench.baselines.rigl`: dense warm-up, then S = 0.951
   sparse), its leaf and bias weights then pruned;
3. ``stage="symbolic"``: per random effect, an expression in the latents the
   sparse head kept, fitted to the sparse head's outputs (Soelistyo & Lowe's (2024) "MSE loss"
   strategy) by :class:`~synthoct_bench.baselines.symbolic.SymbolicRegressor`.

The head trains on the EBE targets ``eta_ebe_s{k}`` in their own units (they are
O(1)), so a formula predicts η directly; the final epoch's weights are used,
as Soelistyo & Lowe 2024 do. Their flips and 90° rotations are left out of the VAE's
training: a rotated B-scan is no image a scanner makes, and a flip reverses the
tilt that drives η₂.

``workdir`` keeps what the stages share: ``vae/`` (the β-TCVAE run, resumable)
and ``heads/<fingerprint of features and targets>/{dense,sparse}/``
(``config.json`` + ``model.safetensors``), so the three stages and the noise
levels train the VAE once and ``symbolic`` reuses the sparse head. A cached head
is used only when its features, targets and settings match; otherwise it is
trained again and replaced.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from synthoct_bench.atomic import atomic_write_dir, to_jsonable
from synthoct_bench.augment import AdaptiveSchedule, LatentAugmentation, augment, generator_for
from synthoct_bench.baselines.base import ETA_DIM, Columns, ParamsMixin, check_targets, column
from synthoct_bench.baselines.rigl import (
    RigL,
    RigLConfig,
    active_inputs,
    expression_size,
    prune_leaf_and_bias_weights,
)
from synthoct_bench.baselines.symbolic import SymbolicRegressor
from synthoct_bench.baselines.training import epoch_order
from synthoct_bench.generators.metrics.disentanglement import r2_columns
from synthoct_bench.generators.vae.run import ETA_FACTORS

__all__ = ["STAGES", "ETA_NAMES", "HeadConfig", "MishHead", "train_head", "TCVAEHeadBaseline"]

#: The pipeline's stages, in order; each is a baseline (``tcvae-<stage>``).
STAGES: tuple[str, ...] = ("dense", "sparse", "symbolic")
#: The random effects' parameter names (the paper model's Ka, Imax, IC50).
ETA_NAMES: tuple[str, ...] = ("Ka", "Imax", "IC50")


@dataclass(frozen=True)
class HeadConfig:
    """A Mish MLP: ``in_features`` → ``hidden`` … → ``out_features`` (Soelistyo & Lowe 2024: 32 →
    16 → 16 → 16 → 3 here, its last layer 2 wide for two classes), no batch norm."""

    in_features: int = 32
    hidden: tuple[int, ...] = (16, 16, 16)
    out_features: int = ETA_DIM
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.in_features < 1 or self.out_features < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"layer widths must be positive, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown HeadConfig keys {unknown}")
        return cls(**d)


class MishHead(nn.Module):
    """The head: Linear layers with Mish (and dropout) between them, none after the last."""

    def __init__(self, config: HeadConfig | None = None) -> None:
        super().__init__()
        self.config = config or HeadConfig()
        widths = [self.config.in_features, *self.config.hidden, self.config.out_features]
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(nn.Mish())
                if self.config.dropout > 0:
                    layers.append(nn.Dropout(self.config.dropout))
        self.net = nn.Sequential(*layers)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Outputs (N, out) float64 for features (N, in), in eval mode."""
        was = self.training
        self.eval()
        try:
            x = torch.as_tensor(np.asarray(features, np.float32))
            out = [self(x[i : i + batch_size]).double() for i in range(0, len(x), batch_size)]
            return torch.cat(out).numpy() if out else np.zeros((0, self.config.out_features))
        finally:
            self.train(was)

    def live_weights(self) -> list[int]:
        """Nonzero weights per layer."""
        return [int((layer.weight != 0).sum()) for layer in self.linears]

    def save_pretrained(
        self, folder: str | os.PathLike, extra: dict[str, Any] | None = None
    ) -> Path:
        """``config.json`` (+ ``extra``) and ``model.safetensors``, written atomically."""
        from safetensors.torch import save_file

        def write(tmp: Path) -> None:
            payload = {"head": self.config.to_dict(), **to_jsonable(extra or {})}
            (tmp / "config.json").write_text(json.dumps(payload, indent=2) + "\n")
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})

        return atomic_write_dir(folder, write)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> tuple[MishHead, dict[str, Any]]:
        """(head, the extra entries of its config.json)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        payload = json.loads((folder / "config.json").read_text())
        head = cls(HeadConfig.from_dict(payload.pop("head")))
        head.load_state_dict(load_file(str(folder / "model.safetensors")))
        return head, payload


def _epoch(
    head: MishHead,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epoch: int,
    batch_size: int,
    seed: int,
    aug: LatentAugmentation | None,
    sparse: RigL | None = None,
    step: int = 0,
) -> tuple[float, int]:
    """One epoch of MSE steps in an order drawn from (seed, epoch), the features of each
    batch augmented by ``aug``; returns (mean training loss, next step)."""
    n = len(x)
    order = epoch_order(n, seed, epoch)
    head.train()
    total = 0.0
    for b in range(math.ceil(n / batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        xb, yb = x[idx], y[idx]
        if aug is not None and aug.name != "none":
            xb, yb = augment(xb, yb, aug, generator_for(seed, epoch, b))
        loss = torch.nn.functional.mse_loss(head(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        total += float(loss.detach()) * len(idx)
        if sparse is not None and sparse.step(step, opt):
            step += 1
            continue
        opt.step()
        if sparse is not None:
            sparse.apply_masks()
        step += 1
    return total / n, step


@torch.no_grad()
def _mse(head: MishHead, x: torch.Tensor, y: torch.Tensor) -> float:
    head.eval()
    return float(torch.nn.functional.mse_loss(head(x), y))


def train_head(
    head: MishHead,
    features: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 1e-3,
    rigl: RigLConfig | None = None,
    warmup_epochs: int = 20,
    augmentation: LatentAugmentation | AdaptiveSchedule | None = None,
    eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    keep_best: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``head`` in place with MSE and Adam; batch order per epoch from (seed, epoch).

    ``rigl``: RigL after a dense warm-up of ``warmup_epochs``. ``augmentation``: a
    :class:`~synthoct_bench.augment.LatentAugmentation` applied to every batch of
    features (and targets, for mixup), or an
    :class:`~synthoct_bench.augment.AdaptiveSchedule` choosing one per epoch from the
    validation loss (the first epoch plain; its random search trains a copy of the
    head for one epoch per candidate). ``eval_set``: validation (features, targets),
    scored after every epoch; ``keep_best`` restores the best epoch's weights.
    Returns the per-epoch losses, the augmentation per epoch and RigL's updates.
    """
    x = torch.as_tensor(np.asarray(features, np.float32))
    y = torch.as_tensor(np.asarray(targets, np.float32))
    val = None
    if eval_set is not None:
        val = tuple(torch.as_tensor(np.asarray(a, np.float32)) for a in eval_set)
    adaptive = augmentation if isinstance(augmentation, AdaptiveSchedule) else None
    if (adaptive is not None or keep_best) and val is None:
        raise ValueError("an adaptive augmentation and keep_best need eval_set=(features, targets)")
    per_epoch = max(1, math.ceil(len(x) / batch_size))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    sparse = None
    if rigl is not None:
        if not 0 <= warmup_epochs < epochs:
            raise ValueError(f"warmup_epochs must be in [0, {epochs}), got {warmup_epochs}")
        sparse = RigL(
            head.linears, rigl, epochs * per_epoch, warmup_steps=warmup_epochs * per_epoch
        )
    log: dict[str, Any] = {"train_loss": [], "val_loss": []}
    if augmentation is not None:
        log["augmentation"] = []
    best = (math.inf, None, 0)
    step = 0
    aug = None if adaptive is not None else augmentation
    for epoch in tqdm(range(epochs), disable=not progress, desc="head"):
        loss, step = _epoch(head, opt, x, y, epoch=epoch, batch_size=batch_size, seed=seed,
                            aug=aug, sparse=sparse, step=step)  # fmt: skip
        if not math.isfinite(loss):
            raise ValueError(f"the head's loss became {loss} at epoch {epoch + 1}; lower lr")
        log["train_loss"].append(loss)
        if augmentation is not None:
            log["augmentation"].append(aug.name if aug is not None else "none")
        if val is None:
            continue
        val_loss = _mse(head, *val)
        log["val_loss"].append(val_loss)
        if keep_best and val_loss < best[0]:
            best = (val_loss, copy.deepcopy(head.state_dict()), epoch + 1)
        if adaptive is not None:

            def trial(cand: LatentAugmentation, epoch: int = epoch) -> float:
                probe = copy.deepcopy(head)
                probe_opt = torch.optim.Adam(probe.parameters(), lr=lr)
                probe_opt.load_state_dict(opt.state_dict())
                _epoch(probe, probe_opt, x, y, epoch=epoch + 1, batch_size=batch_size,
                       seed=seed, aug=cand)  # fmt: skip
                return _mse(probe, *val)

            aug = adaptive.update(val_loss, trial if adaptive.samples > 0 else None)
    if keep_best and best[1] is not None:
        head.load_state_dict(best[1])
        log["best_epoch"] = best[2]
    head.eval()
    if adaptive is not None:
        log["schedule"] = adaptive.history()
    if sparse is not None:
        log["topology_updates"] = sparse.updates
        log["layer_density_target"] = [float(d) for d in sparse.densities]
    return log


def _fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(to_jsonable(part), sort_keys=True).encode())
    return h.hexdigest()[:16]


class TCVAEHeadBaseline(ParamsMixin):
    """β-TCVAE features with a dense, sparse or symbolic head (Soelistyo & Lowe 2024; see
    the module).

    X reads ``"image"`` (PNG bytes or uint8 (N, H, W)); y is (N, 3) EBE targets.
    ``fit(X, y, eval_set=(X_val, y_val))``: the VAE trains for ``vae_steps`` optimizer
    steps (or, with ``vae_stop_rel_change`` set, until its validation MSE stops moving:
    on a 1,900-image train split that stopped it after 119 steps, nearly collapsed,
    so it is off by default); the validation loss of the head is logged
    every epoch and steers ``latent_augment="adaptive"``. After ``fit``:
    ``vae_``, ``head_`` (sparse head for ``symbolic``), ``regressors_`` (symbolic:
    one :class:`SymbolicRegressor` per random effect) and ``report_`` (a dict: live
    weights, expression sizes, formulas, latents used).
    """

    input_columns = ("image",)

    def __init__(
        self,
        stage: str = "dense",
        image_size: int = 64,
        latent_dim: int = 32,
        vae_steps: int = 2000,
        vae_batch_size: int = 256,
        vae_lr: float = 5e-4,
        vae_stop_rel_change: float | None = None,
        vae_weights: str | os.PathLike | None = None,
        head_epochs: int = 100,
        head_batch_size: int = 64,
        head_lr: float = 1e-3,
        dropout: float = 0.3,
        warmup_epochs: int = 20,
        sparsity: float = 0.951,
        delta_t: int = 115,
        update_fraction: float = 0.758,
        t_end: float = 0.75,
        max_complexity: int = 20,
        parsimony: float = 0.001,
        population_size: int = 400,
        generations: int = 60,
        latent_augment: str | None = None,
        workdir: str | os.PathLike | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        self.stage = stage
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.vae_steps = vae_steps
        self.vae_batch_size = vae_batch_size
        self.vae_lr = vae_lr
        self.vae_stop_rel_change = vae_stop_rel_change
        self.vae_weights = vae_weights
        self.head_epochs = head_epochs
        self.head_batch_size = head_batch_size
        self.head_lr = head_lr
        self.dropout = dropout
        self.warmup_epochs = warmup_epochs
        self.sparsity = sparsity
        self.delta_t = delta_t
        self.update_fraction = update_fraction
        self.t_end = t_end
        self.max_complexity = max_complexity
        self.parsimony = parsimony
        self.population_size = population_size
        self.generations = generations
        self.latent_augment = latent_augment
        self.workdir = workdir
        self.seed = seed
        self.progress = progress

    # -- the stages' pieces ----------------------------------------------------------
    def _check_params(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        self._augmentation()
        self._rigl()

    def _images(self, X: Columns) -> np.ndarray:
        from synthoct_bench.baselines.training import decode_images, resize_images

        return resize_images(
            decode_images(column(X, "image", type(self).__name__)), self.image_size
        )

    def _vae_training(self) -> Any:
        from synthoct_bench.generators.vae.training import VAETrainingConfig

        return VAETrainingConfig(
            objective="tcvae",
            arch="small",
            batch_size=self.vae_batch_size,
            learning_rate=self.vae_lr,
            max_steps=self.vae_steps,
            augment=False,
            stop_rel_change=self.vae_stop_rel_change,
            stop_patience=3,
            stop_start_epoch=5,
            checkpoint_every=10**9,
            seed=self.seed,
        )

    def _fit_vae(self, images: np.ndarray, val_images: np.ndarray | None, root: Path) -> Any:
        from synthoct_bench.generators.vae.base import load_vae
        from synthoct_bench.generators.vae.small import SmallConvVAEConfig
        from synthoct_bench.generators.vae.training import ImageSource, train_vae

        if self.vae_weights is not None:
            from synthoct_bench.generators.vae.run import run_model_dir

            return load_vae(run_model_dir(self.vae_weights))
        cfg = self._vae_training()
        if val_images is None and cfg.stop_rel_change is not None:
            raise ValueError(
                "the β-TCVAE's stop needs validation images: pass eval_set=(X_val, y_val) or "
                "vae_stop_rel_change=None"
            )
        folder = root / "vae"
        model_cfg = SmallConvVAEConfig(image_size=self.image_size, latent_dim=self.latent_dim)
        train_vae(
            ImageSource(images, "array", self.image_size),
            folder,
            cfg,
            model_cfg,
            val_source=None
            if val_images is None
            else ImageSource(val_images, "array", self.image_size),
            resume=True,
            progress=self.progress,
        )
        return load_vae(folder / "model")

    def _rigl(self) -> RigLConfig:
        return RigLConfig(self.sparsity, self.delta_t, self.update_fraction, self.t_end)

    def _augmentation(self) -> LatentAugmentation | AdaptiveSchedule | None:
        """The head's feature augmentation (Ramisetti 2024), a fresh schedule for ``adaptive``."""
        if self.latent_augment in (None, "none"):
            return None
        if self.latent_augment == "adaptive":
            return AdaptiveSchedule(regression=True, seed=self.seed)
        return LatentAugmentation(self.latent_augment)

    def _head_settings(self, sparse: bool) -> dict[str, Any]:
        out = {
            "head_epochs": self.head_epochs,
            "head_batch_size": self.head_batch_size,
            "head_lr": self.head_lr,
            "latent_augment": self.latent_augment,
            "seed": self.seed,
        }
        if sparse:
            out.update(warmup_epochs=self.warmup_epochs, rigl=self._rigl().to_dict())
        else:
            out["dropout"] = self.dropout
        return out

    def _fit_head(
        self,
        features: np.ndarray,
        y: np.ndarray,
        sparse: bool,
        root: Path,
        val: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[MishHead, dict]:
        settings = self._head_settings(sparse)
        parts = [features, y, *(val or ())]
        key = _fingerprint(*(np.asarray(a, np.float32) for a in parts))
        folder = root / "heads" / key / ("sparse" if sparse else "dense")
        if (folder / "model.safetensors").is_file():
            head, extra = MishHead.from_pretrained(folder)
            if extra.get("settings") == to_jsonable(settings):
                return head, extra["training"]
        config = HeadConfig(
            features.shape[1], (16, 16, 16), y.shape[1], 0.0 if sparse else self.dropout
        )
        torch.manual_seed(self.seed)
        head = MishHead(config)
        rigl = self._rigl() if sparse else None
        log = train_head(
            head,
            features,
            y,
            epochs=self.head_epochs,
            batch_size=self.head_batch_size,
            lr=self.head_lr,
            rigl=rigl,
            warmup_epochs=self.warmup_epochs,
            augmentation=self._augmentation(),
            eval_set=val,
            seed=self.seed,
            progress=self.progress,
        )
        if sparse:
            log["pruned"] = prune_leaf_and_bias_weights(head.linears)
        head.save_pretrained(folder, {"training": log, "settings": settings})
        return head, log

    # -- estimator -------------------------------------------------------------------
    def fit(
        self, X: Columns, y: Any, eval_set: tuple[Columns, Any] | None = None
    ) -> TCVAEHeadBaseline:
        self._check_params()
        images = self._images(X)
        y = check_targets(y, len(images))
        val_images = self._images(eval_set[0]) if eval_set is not None else None
        if self.latent_augment == "adaptive" and eval_set is None:
            raise ValueError("latent_augment='adaptive' needs eval_set=(X_val, y_val)")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(self.workdir) if self.workdir is not None else Path(tmp)
            self.vae_ = self._fit_vae(images, val_images, root)
            features = self.vae_.encode_images(images)
            val = None
            if eval_set is not None:
                y_val = check_targets(eval_set[1], len(val_images))
                val = (self.vae_.encode_images(val_images), y_val)
            sparse = self.stage != "dense"
            self.head_, log = self._fit_head(features, y, sparse, root, val)
        self.report_ = self._head_report(log, features, y)
        if self.stage == "symbolic":
            self._fit_formulas(features)
        return self

    def _head_report(
        self, log: dict[str, Any], features: np.ndarray, y: np.ndarray
    ) -> dict[str, Any]:
        live = self.head_.live_weights()
        sizes = [layer.weight.numel() for layer in self.head_.linears]
        used = active_inputs(self.head_.linears)
        pred = self.head_.predict(features)
        return {
            "stage": self.stage,
            "latent_dim": int(features.shape[1]),
            "head": {
                "layers": [list(layer.weight.shape[::-1]) for layer in self.head_.linears],
                "live_weights": live,
                "weights": sizes,
                "live_fraction": float(sum(live) / sum(sizes)),
                "expression_size": expression_size(self.head_.linears),
                "latents_used": list(used),
                "train_r2": r2_columns(y, pred).tolist(),
                "training": {k: v for k, v in log.items() if k not in ("train_loss", "val_loss")},
                "final_train_loss": float(log["train_loss"][-1]),
                "final_val_loss": float(log["val_loss"][-1]) if log.get("val_loss") else None,
            },
        }

    def _fit_formulas(self, features: np.ndarray) -> None:
        used = list(active_inputs(self.head_.linears))
        target = self.head_.predict(features)
        names = [f"z{j}" for j in used]
        self.regressors_: list[SymbolicRegressor | float] = []
        formulas = []
        for k in range(target.shape[1]):
            if not used:  # the head kept no input: a constant
                self.regressors_.append(float(target[0, k]))
                formulas.append({"eta": ETA_NAMES[k], "formula": f"{target[0, k]:.3g}", "size": 1,
                                 "complexity": 1, "latents": [], "r2_vs_head": 1.0})  # fmt: skip
                continue
            reg = SymbolicRegressor(
                max_complexity=self.max_complexity,
                parsimony=self.parsimony,
                population_size=self.population_size,
                generations=self.generations,
                seed=self.seed * 101 + k,
            ).fit(features[:, used], target[:, k], feature_names=names)
            self.regressors_.append(reg)
            fit = reg.predict(features[:, used])
            formulas.append(
                {
                    "eta": ETA_NAMES[k],
                    "formula": reg.formula_,
                    "size": reg.size_,
                    "complexity": reg.complexity_,
                    "latents": [used[j] for j in reg.features_],
                    "r2_vs_head": float(r2_columns(target[:, k : k + 1], fit[:, None])[0]),
                    "pareto_front": [e.to_dict() for e in reg.pareto_front_],
                }
            )
        self.report_["symbolic"] = formulas

    def predict(self, X: Columns) -> np.ndarray:
        """η (N, 3) float64."""
        return self.predict_features(self.features(X))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """η (N, 3) float64 from the β-TCVAE's μ (N, latent_dim), as :meth:`features`
        gives them."""
        if not hasattr(self, "head_"):
            raise ValueError(f"this {type(self).__name__} is not fitted; call fit(X, y) first")
        if self.stage != "symbolic":
            return self.head_.predict(features)
        used = list(active_inputs(self.head_.linears))
        cols = []
        for reg in self.regressors_:
            if isinstance(reg, float):
                cols.append(np.full(len(features), reg))
            else:
                cols.append(reg.predict(features[:, used]))
        return np.stack(cols, axis=1)

    def features(self, X: Columns) -> np.ndarray:
        """The β-TCVAE's μ (N, latent_dim) of X's images."""
        if not hasattr(self, "vae_"):
            raise ValueError(f"this {type(self).__name__} is not fitted; call fit(X, y) first")
        return self.vae_.encode_images(self._images(X))


def latent_factor_information(
    features: np.ndarray, z: np.ndarray, generator: Any
) -> dict[str, Any]:
    """Which phantom factor each latent reads: normalised mutual information (MI / H(factor),
    20 equal-width bins as for MIG) between every latent (N, d) and the 21 factors
    ``generator.parameters(z)``; per η-driving factor, the latents ranked by it."""
    from synthoct_bench.generators.metrics.disentanglement import (
        discrete_entropy,
        discrete_mutual_info,
        discretize,
    )

    params = generator.parameters(np.asarray(z, np.float64))
    names = list(params)
    factors = np.stack([params[k] for k in names], axis=1)
    fb = discretize(factors)
    mi = discrete_mutual_info(discretize(features), fb)
    h = discrete_entropy(fb)
    nmi = mi / np.where(h > 0, h, 1.0)  # (d, 21)
    return {
        "factors": names,
        "normalised_mi": nmi.tolist(),
        "top_factor": {
            f"z{j}": {"factor": names[int(np.argmax(nmi[j]))], "nmi": float(nmi[j].max())}
            for j in range(nmi.shape[0])
        },
        "eta_factor_latents": {k: _ranking(nmi[:, names.index(k)]) for k in ETA_FACTORS},
    }


def _ranking(nmi: np.ndarray) -> list[int]:
    """Latents from the most to the least informative about one factor (ties by index)."""
    return [int(j) for j in np.argsort(-nmi, kind="stable")]


def eta_coverage(info: dict[str, Any], used: list[int], top: int = 3) -> dict[str, Any]:
    """Do the ``used`` latents read the η-driving factors? Per factor: the used latent
    that tells most about it, its rank among all latents for that factor, the share of
    the best latent's normalised MI it reaches, and whether it is in the ``top`` few.
    ``covers_all``: every η factor has a used latent among its ``top``."""
    nmi = np.asarray(info["normalised_mi"])
    names = info["factors"]
    out: dict[str, Any] = {}
    for k in ETA_FACTORS:
        col = nmi[:, names.index(k)]
        if not used:
            out[k] = None
            continue
        best_used = max(used, key=lambda j: col[j])
        rank = _ranking(col).index(best_used) + 1
        out[k] = {
            "latent": f"z{best_used}",
            "rank": rank,
            "share_of_best": float(col[best_used] / col.max()) if col.max() > 0 else 0.0,
            "in_top": rank <= top,
        }
    out["covers_all"] = bool(used) and all(out[k]["in_top"] for k in ETA_FACTORS)
    return out


def interpretable_report(
    model: TCVAEHeadBaseline,
    data: str | os.PathLike,
    split: str,
    subject_id: np.ndarray,
    features: np.ndarray,
    *,
    noise: int,
    revision: str | None = None,
) -> dict[str, Any]:
    """The fitted stage's report on ``split`` (its ``subject_id`` and the model's
    ``features`` of their images, in that order): ``model.report_``, and on a phantom
    dataset which factors the latents it uses read (:func:`latent_factor_information`):
    does a formula read vertical position, tilt, luminance? Whether the latents used
    are the ones most informative about the η-driving factors is answered per factor
    by ``eta_coverage`` (:func:`eta_coverage`)."""
    from synthoct_bench.dataset import read_columns, read_metadata
    from synthoct_bench.dataset.pipeline import make_generator

    out = {"split": split, "noise": int(noise), **to_jsonable(model.report_)}
    meta = read_metadata(data, revision)
    if meta.generator.name != "phantom":
        out["factors"] = f"not measured: the {meta.generator.name!r} generator has no named factors"
        return out
    try:
        z = read_columns(data, split, ["subject_id", "z"], revision=revision)
    except (KeyError, ValueError) as exc:
        out["factors"] = f"not measured: {split} has no latents z ({exc})"
        return out
    if not np.array_equal(np.asarray(z["subject_id"]), np.asarray(subject_id)):
        raise ValueError(f"{split}: the z rows do not line up with the images")
    gen = make_generator(meta.generator.name, meta.image_size, meta.generator.kwargs)
    info = latent_factor_information(features, z["z"], gen)
    used = model.report_["head"]["latents_used"] if model.stage != "dense" else []
    if model.stage == "symbolic":
        used = sorted({j for f in model.report_["symbolic"] for j in f["latents"]})
    info["latents_used"] = [{"latent": f"z{j}", **info["top_factor"][f"z{j}"]} for j in used]
    info["eta_coverage"] = eta_coverage(info, list(used))
    out["factors"] = info
    return out
