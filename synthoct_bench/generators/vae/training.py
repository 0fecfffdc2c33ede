"""Training recipe of the paper's β-VAE (section 2.1), resumable and pickle-free,
and of the VAE family around it.

Defaults (the paper's recipe): loss = α·MSE + γ·perceptual(relu1_2) +
τ·perceptual(relu3_3) + β·KL, with α = 400/3, γ = 25/12, τ = 1/3 and β warmed up
linearly from 0 to 0.0376, then a fixed number of epochs (the paper: 100); Adam
lr 1e-3, batch 5; training augmentation: horizontal flip + random vertical crop
removing 34 rows (of 224) then resize back; validation uses the central crop.

Other settings of :class:`VAETrainingConfig` select the rest of the family:
``objective`` (any of :data:`~synthoct_bench.generators.vae.objectives.OBJECTIVES`,
constants in ``objective_config``), ``arch`` (``paper`` or Soelistyo & Lowe's (2024) ``small``),
``optimizer`` (adam, sgd, rmsprop), ``lr_decay`` (exponential, per epoch) and
``grad_clip``. The training images come from
:mod:`~synthoct_bench.generators.vae.data` (re-exported here): arrays, folders,
`datasets` splits, or phantom images rendered on the fly.

Every random choice (epoch order, flips, crops, reparameterisation noise, prior
draws) is keyed by (seed, epoch or step) through :mod:`synthoct_bench.rng`, and
the learning rate is a function of the step, so a run killed and resumed from its
last checkpoint takes the same path as one that never stopped. Checkpoints are
folders of safetensors + JSON, written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthoct_bench import rng
from synthoct_bench.atomic import atomic_write_dir, save_figure
from synthoct_bench.checkpoint import TrainingDiverged, load_optimizer_state, save_optimizer_state
from synthoct_bench.generators.vae.base import VAEBase, get_architecture, load_vae
from synthoct_bench.generators.vae.data import (
    IMAGE_SUFFIXES,
    ImageSource,
    PhantomImageSource,
    load_image_source,
)
from synthoct_bench.generators.vae.objectives import (
    BetaConfig,
    Objective,
    get_objective,
    objective_config,
)

__all__ = [
    "VAETrainingConfig",
    "OPTIMIZERS",
    "make_optimizer",
    "IMAGE_SUFFIXES",
    "ImageSource",
    "PhantomImageSource",
    "load_image_source",
    "augment_batch",
    "beta_at",
    "converged",
    "loss_terms",
    "mean_intensity",
    "MEAN_INTENSITY_IMAGES",
    "TrainingDiverged",
    "save_optimizer_state",
    "load_optimizer_state",
    "plot_loss_curves",
    "train_vae",
]

#: Optimizers ``VAETrainingConfig.optimizer`` can name (Korkic 2021 compares these three).
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "rmsprop")
#: Settings a checkpoint must share with the run resuming it.
_RESUME_FIELDS = ("objective", "objective_config", "arch", "optimizer")


def check_max_steps(max_steps: Any) -> None:
    """A step budget is an int >= 1, or None for none; raises ValueError otherwise."""
    if max_steps is not None and (
        isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
    ):
        raise ValueError(f"max_steps must be an int >= 1 or None, got {max_steps!r}")


@dataclass(frozen=True)
class VAETrainingConfig:
    """Settings of the recipe; defaults are the paper's where it gives them.

    ``alpha``, ``perceptual_*``, ``vgg_weights``, ``beta_max`` and ``perceptual`` are
    the ``beta`` objective's constants (the paper's loss); the other objectives take
    theirs from ``objective_config``. ``warmup_epochs`` is the β warm-up of the
    ``beta`` objective; the other objectives' seeds do not warm up, so for them it is
    0 whatever its value here.
    """

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
    #: False: no flips or crops, training and validation see the images as they are
    #: (e.g. phantom images whose factors, like tilt, a flip would change).
    augment: bool = True
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    #: a name in ``objectives.OBJECTIVES``: beta, vae, tcvae, iwae, infovae, logcosh.
    objective: str = "beta"
    #: constants of an objective other than ``beta``: its config, a dict of its fields,
    #: or None for its defaults (the constants of the works they come from).
    objective_config: Any = None
    #: False drops the ``beta`` objective's VGG16 terms.
    perceptual: bool = True
    #: a name in ``vae.ARCHITECTURES``: "paper" (Table 3) or "small" (Soelistyo & Lowe 2024).
    arch: str = "paper"
    #: "adam", "sgd" or "rmsprop" (torch's defaults besides the settings below).
    optimizer: str = "adam"
    #: momentum of sgd and rmsprop.
    momentum: float = 0.0
    weight_decay: float = 0.0
    #: exponential decay per epoch, lr · lr_decay ** epoch (Korkic 2021: 0.95); None: constant.
    lr_decay: float | None = None
    #: linear learning-rate warm-up from 0 over this many steps; None: the objective's own
    #: (log-cosh: 500, whose bounded gradients otherwise drive the decoder to a dead black
    #: image in the first steps; the others: none).
    lr_warmup_steps: int | None = None
    #: True: a fresh run starts the decoder's output at the training images' mean
    #: intensity (``VAEBase.init_output_bias``; without it, the Sigmoid decoder of
    #: either architecture can saturate on a black image in its first steps and never
    #: learn). False: PyTorch's default initialisation, as in the published code bases.
    output_bias_init: bool = True
    #: clip the gradients' global L2 norm to this; None: the objective's own clipping
    #: (InfoVAE: 0.8, Korkic 2021) if it has one, else none.
    grad_clip: float | None = None
    #: stop at the end of an epoch (after any β warm-up) once the validation
    #: reconstruction MSE moved by less than this fraction since the previous epoch
    #: (Korkic 2021: 0.01, within its 100 epochs); None: run all ``epochs``. Needs
    #: validation images.
    stop_rel_change: float | None = None
    #: epochs in a row that must each move by less than ``stop_rel_change`` (Korkic 2021: 1,
    #: which can stop on a one-epoch plateau).
    stop_patience: int = 1
    #: the rule is judged from this epoch on (Keras' ``start_from_epoch``): the first
    #: epochs can sit for several epochs on the plateau of the mean image.
    stop_start_epoch: int = 0
    #: Ramisetti's (2024) latent augmentation: z is augmented before decoding and the decoder
    #: reconstructs the images (mixed alike for ``mixup``). A name in
    #: ``augment.AUGMENTATIONS`` other than ``cmixup`` (no targets to pair by), or
    #: ``adaptive`` (its schedule from the validation MSE, first epoch plain; needs
    #: validation images). None: off. Objectives drawing one z per image only.
    latent_augment: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "perceptual_weights", tuple(float(w) for w in self.perceptual_weights))
        set_(self, "perceptual_layers", tuple(self.perceptual_layers))
        if len(self.perceptual_weights) != len(self.perceptual_layers):
            raise ValueError(
                f"perceptual_weights {self.perceptual_weights} needs one weight per layer in "
                f"perceptual_layers {self.perceptual_layers}"
            )
        for name in (
            "batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "stop_patience"
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_max_steps(self.max_steps)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {self.epochs!r}")
        if self.learning_rate <= 0 or self.beta_max < 0 or self.warmup_epochs < 0:
            raise ValueError("learning_rate must be > 0, beta_max and warmup_epochs >= 0")
        if self.objective == "beta":
            if self.objective_config is not None:
                raise ValueError(
                    "the beta objective takes its constants from alpha, beta_max, perceptual, "
                    "perceptual_layers, perceptual_weights and vgg_weights; leave "
                    "objective_config None"
                )
        else:
            set_(self, "objective_config", objective_config(self.objective, self.objective_config))
        get_architecture(self.arch)  # raises for an unknown name
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("momentum and weight_decay must be >= 0")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1] or None, got {self.lr_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.lr_warmup_steps is not None and (
            isinstance(self.lr_warmup_steps, bool) or not isinstance(self.lr_warmup_steps, int)
            or self.lr_warmup_steps < 0
        ):  # fmt: skip
            raise ValueError(
                f"lr_warmup_steps must be an int >= 0 or None, got {self.lr_warmup_steps!r}"
            )
        if self.stop_start_epoch < 0:
            raise ValueError(f"stop_start_epoch must be >= 0, got {self.stop_start_epoch}")
        if self.latent_augment not in (None, "none", "adaptive"):
            from synthoct_bench.augment import LatentAugmentation

            LatentAugmentation(self.latent_augment)
            if self.latent_augment == "cmixup":
                raise ValueError(
                    "cmixup pairs samples by their targets, and a VAE has none; use mixup"
                )
        if self.stop_rel_change is not None and not 0 < self.stop_rel_change < 1:
            raise ValueError(
                f"stop_rel_change must be in (0, 1) or None, got {self.stop_rel_change}"
            )

    def crop_rows(self, image_size: int) -> int:
        return int(round(self.crop_rows_at_224 * image_size / 224))

    def objective_settings(self) -> Any:
        """The typed config of ``objective`` (for ``beta``, built from this config's fields)."""
        if self.objective != "beta":
            return self.objective_config
        return BetaConfig(
            alpha=self.alpha,
            beta=self.beta_max,
            perceptual=self.perceptual,
            perceptual_layers=self.perceptual_layers,
            perceptual_weights=self.perceptual_weights,
            vgg_weights=self.vgg_weights,
        )

    def learning_rate_at(self, step: int, steps_per_epoch: int, warmup_steps: int = 0) -> float:
        """The learning rate of optimiser step ``step`` (0-based): constant, or decayed by
        ``lr_decay`` once per completed epoch (as torch's ExponentialLR stepped per epoch),
        times a linear warm-up (step + 1)/``warmup_steps`` over the first steps."""
        lr = self.learning_rate
        if self.lr_decay is not None:
            lr *= self.lr_decay ** (step // steps_per_epoch)
        if warmup_steps > 0 and step < warmup_steps:
            lr *= (step + 1) / warmup_steps
        return lr

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "objective_config" and value is not None:
                value = value.to_dict()
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAETrainingConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown VAETrainingConfig keys {unknown}")
        return cls(**d)


# ---- data ---------------------------------------------------------------------------------


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
    """Loss terms (log scale; values <= 0 left out), validation loss if any, and β (or
    the learning rate when no β is logged) against the step (atomic PNG). A history
    with neither β nor a learning rate (a constant schedule) gets the loss panel only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = [h["step"] for h in history]
    first = history[0] if history else {}
    keys = [k for k in first if k not in ("step", "epoch", "beta", "lr")]
    schedule = "beta" if "beta" in first else "lr" if "lr" in first else None
    if schedule is None:
        fig, ax = plt.subplots(figsize=(6.75, 3.2))
    else:
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
    if schedule is not None:
        ax_beta.plot(steps, [h.get(schedule, np.nan) for h in history], color="k")
        ax_beta.set_title("β" if schedule == "beta" else "learning rate")
        ax_beta.set_xlabel("step")
    fig.subplots_adjust(
        left=0.12 if schedule is None else 0.09, right=0.98, bottom=0.16, top=0.9, wspace=0.25
    )
    return save_figure(fig, path, dpi=90)


# ---- training -----------------------------------------------------------------------------


@dataclass
class _State:
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    val_history: list[dict[str, float]] = field(default_factory=list)
    #: the step at which ``stop_rel_change`` ended the run, else None.
    converged_step: int | None = None


def converged(val_history: list[dict[str, float]], rel_change: float, patience: int = 1) -> bool:
    """Korkic's (2021) stop: in each of the last ``patience`` epochs the validation
    reconstruction MSE moved by less than ``rel_change`` of its value before."""
    if len(val_history) < patience + 1:
        return False
    mse = np.array([row["val_mse"] for row in val_history[-(patience + 1) :]])
    return bool(np.all(np.abs(np.diff(mse)) < rel_change * np.abs(mse[:-1])))


def _latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted((output_dir / "checkpoints").glob("step-*"))
    ckpts = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    return ckpts[-1] if ckpts else None


def _save_checkpoint(
    output_dir: Path, model: VAEBase, opt: torch.optim.Optimizer, state: _State, cfg: Any
) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")
        save_optimizer_state(opt, tmp / "optimizer.safetensors")
        payload = {"step": state.step, "history": state.history, "val_history": state.val_history}
        payload["converged_step"] = state.converged_step
        payload["training_config"] = cfg.to_dict()
        (tmp / "trainer_state.json").write_text(json.dumps(payload) + "\n")

    target = atomic_write_dir(output_dir / "checkpoints" / f"step-{state.step:09d}", write)
    old = sorted((output_dir / "checkpoints").glob("step-*"))[: -cfg.keep_checkpoints]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return target


def _step_generator(seed: int, name: str, step: int) -> torch.Generator:
    s = int(rng.subject_seeds(seed, rng.stream_id(name), np.array([step]))[0])
    return torch.Generator().manual_seed(s)


def make_optimizer(cfg: VAETrainingConfig, params: Any) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, at ``cfg.learning_rate``."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.RMSprop(
        params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def loss_terms(
    model: VAEBase,
    objective: Objective,
    x: torch.Tensor,
    dataset_size: int,
    anneal: float,
    generator: torch.Generator | None,
    prior_generator: torch.Generator | None = None,
    augmentation: Any = None,
    aug_generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The objective's terms and ``loss`` on batch x. ``generator`` None (validation of
    an objective that does not use z) decodes μ; otherwise z = μ + σ·ε with ε (B, d),
    or (k, B, d) decoded as one k·B batch for an objective that wants k samples.
    ``augmentation`` (a LatentAugmentation) changes z before decoding; mixup mixes the
    images to reconstruct with the same weights."""
    mu, logvar = model.encode(x)
    if generator is None and not objective.uses_samples:
        z = mu
        recon = model.decode(mu)
    else:
        k = objective.num_samples
        shape = mu.shape if k == 1 else (k, *mu.shape)
        eps = torch.randn(shape, generator=generator, device="cpu").to(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        z_dec = z
        if augmentation is not None and augmentation.name != "none":
            from synthoct_bench.augment import augment

            if k > 1:
                raise ValueError(
                    "latent augmentation needs an objective that draws one z per image"
                )
            z_dec, flat = augment(z, x.reshape(len(x), -1), augmentation, aug_generator)
            x = flat.view_as(x)
        recon = model.decode(z_dec.reshape(-1, mu.shape[1]))
        if k > 1:
            recon = recon.view(k, *x.shape)
    out = objective(
        x, recon, mu, logvar, z, dataset_size=dataset_size, anneal=anneal,
        generator=prior_generator,
    )  # fmt: skip
    return {**out.terms, "loss": out.loss}


def train_vae(
    train_source: Any,
    output_dir: str | os.PathLike,
    config: VAETrainingConfig | None = None,
    model_config: Any = None,
    val_source: Any = None,
    device: str | torch.device = "cpu",
    resume: bool = True,
    progress: bool = True,
    image_column: str = "image",
) -> dict[str, Any]:
    """Train (or resume training) a VAE; returns the logged history.

    ``model_config`` is the config of ``config.arch``'s model (``BetaVAEConfig`` for
    ``paper``, ``SmallConvVAEConfig`` for ``small``; None: its defaults). Writes
    ``output_dir/checkpoints/step-*/`` (model, optimizer, trainer state),
    ``output_dir/model/`` (final weights, loadable with ``load_vae`` or the
    architecture's ``from_pretrained``) and ``output_dir/loss_curves.png``.
    """
    from tqdm.auto import tqdm

    cfg = config or VAETrainingConfig()
    arch = get_architecture(cfg.arch)
    mcfg = model_config if model_config is not None else arch.config_class()
    if not isinstance(mcfg, arch.config_class):
        raise ValueError(
            f"arch {cfg.arch!r} takes a {arch.config_class.__name__}, got "
            f"{type(mcfg).__name__}; set VAETrainingConfig(arch=...) to match the model config"
        )
    if getattr(mcfg, "channels", 1) != 1:
        raise ValueError("train_vae reads grayscale images: the model needs channels=1")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = load_image_source(train_source, mcfg.image_size, image_column=image_column)
    val = (
        load_image_source(val_source, mcfg.image_size, split="test", image_column=image_column)
        if val_source is not None
        else None
    )
    n = len(data)
    if cfg.stop_rel_change is not None and val is None:
        raise ValueError("stop_rel_change compares validation losses: pass val_source")
    if n < cfg.batch_size:
        raise ValueError(f"{n} training images is fewer than one batch of {cfg.batch_size}")
    steps_per_epoch = n // cfg.batch_size  # drop the last partial batch (BatchNorm needs > 1)
    crop = cfg.crop_rows(mcfg.image_size)

    torch.manual_seed(cfg.seed)  # initial weights
    model = arch(mcfg).to(device)
    opt = make_optimizer(cfg, model.parameters())
    objective = get_objective(cfg.objective, cfg.objective_settings()).to(device)
    if cfg.batch_size < objective.min_batch:
        raise ValueError(
            f"objective {cfg.objective!r} needs a batch of at least {objective.min_batch}"
        )
    grad_clip = cfg.grad_clip if cfg.grad_clip is not None else objective.grad_clip
    lr_warmup = cfg.lr_warmup_steps if cfg.lr_warmup_steps is not None else objective.lr_warmup
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch)) if objective.warmup else 0
    total_steps = cfg.max_steps or warmup_steps + cfg.epochs * steps_per_epoch
    state = _State()
    ckpt = _latest_checkpoint(output_dir) if resume else None
    if ckpt is not None:
        _check_resumable(ckpt, cfg, mcfg)
        model.load_state_dict(load_vae(ckpt / "model").state_dict())
        load_optimizer_state(opt, ckpt / "optimizer.safetensors")
        payload = json.loads((ckpt / "trainer_state.json").read_text())
        state = _State(payload["step"], payload["history"], payload["val_history"])
        # the stop is judged again under this run's rule: a stricter one trains on
        if _should_stop(cfg, state, warmup_steps, steps_per_epoch):
            state.converged_step = state.step
    elif cfg.output_bias_init:  # a fresh run; a resumed one has its checkpoint's weights
        model.init_output_bias(mean_intensity(data))

    schedule, aug = _latent_augmentation(cfg, val is not None, state.val_history, steps_per_epoch)
    if val is not None and state.step == 0:
        # the paper's β starts its warm-up at 0; the other objectives at full weight
        anneal0 = 0.0 if objective.warmup else 1.0
        row = _validate(model, objective, val, cfg, crop, anneal0, device)
        state.val_history.append({"step": 0, **row})
    model.train()
    acc: dict[str, float] = {}
    acc_n = 0
    bar = tqdm(total=total_steps, initial=state.step, disable=not progress, desc=cfg.objective)
    perm: np.ndarray | None = None
    perm_epoch = -1
    while state.step < total_steps and state.converged_step is None:
        epoch, pos = divmod(state.step, steps_per_epoch)
        if epoch != perm_epoch:
            keys = rng.uniform(cfg.seed, rng.stream_id("vae_train/order", epoch), np.arange(n), 1)
            perm, perm_epoch = np.argsort(keys[:, 0], kind="stable"), epoch
        idx = perm[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        x = data.get(idx)
        if cfg.augment:
            x = augment_batch(x, crop, _step_generator(cfg.seed, "vae_train/augment", state.step))
        x = x.to(device)
        beta = beta_at(state.step, warmup_steps, cfg.beta_max)
        anneal = beta_at(state.step, warmup_steps, 1.0)
        lr = cfg.learning_rate_at(state.step, steps_per_epoch, lr_warmup)
        if cfg.lr_decay is not None or lr_warmup:
            for group in opt.param_groups:
                group["lr"] = lr
        terms = loss_terms(
            model,
            objective,
            x,
            n,
            anneal,
            _step_generator(cfg.seed, "vae_train/eps", state.step),
            _step_generator(cfg.seed, "vae_train/prior", state.step),
            augmentation=aug,
            aug_generator=_step_generator(cfg.seed, "vae_train/latent_augment", state.step),
        )
        if not torch.isfinite(terms["loss"].detach()):
            raise TrainingDiverged(state.step + 1, float(terms["loss"].detach()))
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        state.step += 1
        bar.update(1)
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc_n += 1
        if state.step % cfg.log_every == 0 or state.step == total_steps:
            row = {"step": state.step, "epoch": epoch, **{k: v / acc_n for k, v in acc.items()}}
            if objective.warmup:
                row["beta"] = beta
            row["lr"] = lr
            state.history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}")
            acc, acc_n = {}, 0
        end_of_epoch = state.step % steps_per_epoch == 0 or state.step == total_steps
        if val is not None and end_of_epoch:
            state.val_history.append(
                {"step": state.step, **_validate(model, objective, val, cfg, crop, anneal, device)}
            )
            if _should_stop(cfg, state, warmup_steps, steps_per_epoch):
                state.converged_step = state.step
            if schedule is not None and state.step % steps_per_epoch == 0:
                aug = schedule.update(state.val_history[-1]["val_mse"])
        done = state.step == total_steps or state.converged_step is not None
        if state.step % cfg.checkpoint_every == 0 or done:
            _save_checkpoint(output_dir, model, opt, state, cfg)
            if state.history:
                plot_loss_curves(state.history, output_dir / "loss_curves.png", state.val_history)
    bar.close()
    model.save_pretrained(output_dir / "model")
    if state.history:
        plot_loss_curves(state.history, output_dir / "loss_curves.png", state.val_history)
    return {
        "step": state.step,
        "epochs": state.step / steps_per_epoch,
        "converged_step": state.converged_step,
        "history": state.history,
        "val_history": state.val_history,
    }


def _latent_augmentation(
    cfg: VAETrainingConfig,
    has_val: bool,
    val_history: list[dict[str, float]],
    steps_per_epoch: int,
) -> tuple[Any, Any]:
    """(adaptive schedule or None, the augmentation in force now) for ``cfg``. A resumed
    run replays the schedule over the epoch-end validation losses, so it continues with
    the augmentation it would have had."""
    if cfg.latent_augment in (None, "none"):
        return None, None
    from synthoct_bench.augment import AdaptiveSchedule, LatentAugmentation

    if cfg.latent_augment != "adaptive":
        return None, LatentAugmentation(cfg.latent_augment)
    if not has_val:
        raise ValueError("latent_augment='adaptive' chooses by the validation MSE: pass val_source")
    schedule = AdaptiveSchedule(regression=False, samples=0, seed=cfg.seed)
    aug = None
    for row in val_history:
        if row["step"] > 0 and row["step"] % steps_per_epoch == 0:
            aug = schedule.update(row["val_mse"])
    return schedule, aug


#: training images whose mean intensity starts the decoder's output (the first ones)
MEAN_INTENSITY_IMAGES = 256


def mean_intensity(data: Any) -> float:
    """Mean pixel of the first :data:`MEAN_INTENSITY_IMAGES` training images."""
    idx = np.arange(min(len(data), MEAN_INTENSITY_IMAGES))
    return float(data.get(idx).mean())


def _should_stop(cfg: VAETrainingConfig, state: _State, warmup_steps: int, per_epoch: int) -> bool:
    """``stop_rel_change``'s rule at an epoch's end after the warm-up."""
    return (
        cfg.stop_rel_change is not None
        and state.step > warmup_steps
        and state.step >= cfg.stop_start_epoch * per_epoch
        and state.step % per_epoch == 0
        and bool(state.val_history)
        and state.val_history[-1]["step"] == state.step
        and converged(state.val_history, cfg.stop_rel_change, cfg.stop_patience)
    )


def _check_resumable(ckpt: Path, cfg: VAETrainingConfig, mcfg: Any) -> None:
    """Refuse a checkpoint of another model, objective or optimizer."""
    saved = json.loads((ckpt / "model" / "config.json").read_text())
    if saved != mcfg.to_dict():
        raise ValueError(
            f"checkpoint {ckpt} has model config {saved}, not {mcfg.to_dict()}; use another "
            "output_dir or resume=False"
        )
    payload = json.loads((ckpt / "trainer_state.json").read_text())
    defaults, ours = VAETrainingConfig().to_dict(), cfg.to_dict()
    theirs = {**defaults, **payload.get("training_config", {})}
    differ = {k: (theirs[k], ours[k]) for k in _RESUME_FIELDS if theirs[k] != ours[k]}
    if differ:
        raise ValueError(
            f"checkpoint {ckpt} was trained with other settings {differ} (saved, now); use "
            "another output_dir or resume=False"
        )


def _validation_batches(n: int, batch_size: int, min_batch: int) -> list[range]:
    batches = [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < min_batch:  # fold a too-small tail in
        batches[-2:] = [range(batches[-2].start, n)]
    return batches


@torch.no_grad()
def _validate(
    model: VAEBase,
    objective: Objective,
    val: ImageSource | PhantomImageSource,
    cfg: VAETrainingConfig,
    crop: int,
    anneal: float,
    device: str | torch.device,
) -> dict[str, float]:
    """Mean validation terms. Objectives that use z sample it with noise keyed by the
    batch's index, the same at every validation, so the values compare across steps."""
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    for i, idx in enumerate(_validation_batches(len(val), cfg.batch_size, objective.min_batch)):
        x = val.get(idx)
        x = (augment_batch(x, crop, None, train=False) if cfg.augment else x).to(device)
        generators = (None, None)
        if objective.uses_samples:
            generators = (
                _step_generator(cfg.seed, "vae_val/eps", i),
                _step_generator(cfg.seed, "vae_val/prior", i),
            )
        terms = loss_terms(model, objective, x, len(val), anneal, *generators)
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
        count += len(idx)
    model.train()
    return {f"val_{k}": v / count for k, v in totals.items()}
