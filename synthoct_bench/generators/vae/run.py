"""A VAE run folder end to end: train on phantom or folder images, evaluate, select η dims.

What ``synthoct vae train|evaluate|select`` call. A run folder ``DIR`` holds

- ``run.json``: the :class:`VAERunSpec` (which images, how many, at what size), the
  :class:`~synthoct_bench.generators.vae.training.VAETrainingConfig` and the model
  config, so evaluation knows which phantom subjects training saw;
- ``model/``: the weights (``config.json`` + ``model.safetensors``, :func:`load_vae`),
  and after :func:`select_run` its ``selection.json`` (the η dims
  ``synthoct build --generator vae --weights DIR`` decodes with);
- ``checkpoints/`` and ``loss_curves.png`` from :func:`train_vae`.

Evaluation renders held-out phantom images (subjects after the training ones) and
reports reconstruction MSE, KL per latent dim, active units (Burda et al. 2016:
dims whose encoder mean varies over the data, Cov_x E[z|x] > 0.01), MIG / DCI / SAP
of μ against the phantom's 21 factors and the η-probe: a ridge regression from μ to
the three factors the η dims drive (vertical position, tilt, luminance), R² on a
held-out quarter.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthoct_bench.atomic import finite_or_none, save_figure, to_jsonable, write_json, write_text
from synthoct_bench.devices import resolve_device
from synthoct_bench.generators.metrics.disentanglement import r2_columns
from synthoct_bench.generators.vae.base import VAEBase, get_architecture, load_vae
from synthoct_bench.generators.vae.generator import SELECTION_NAME
from synthoct_bench.run_folder import check_run_folder

__all__ = [
    "RUN_NAME",
    "ETA_FACTORS",
    "ACTIVE_UNIT_THRESHOLD",
    "COLLAPSE_MSE_RATIO",
    "run_likelihood",
    "VAERunSpec",
    "train_run",
    "run_model_dir",
    "load_run_spec",
    "held_out_source",
    "EtaProbe",
    "eta_probe",
    "VAEEvaluation",
    "evaluate_run",
    "VAESelection",
    "select_run",
]

RUN_NAME = "run.json"
#: The phantom factors the three η dims drive, in the phantom's η order.
ETA_FACTORS: tuple[str, str, str] = ("vertical_position", "tilt", "luminance")
#: Burda et al.'s threshold on Cov_x(E[z|x]) for an active unit.
ACTIVE_UNIT_THRESHOLD = 0.01
#: a reconstruction MSE above this fraction of the mean image's counts as collapsed
COLLAPSE_MSE_RATIO = 0.9


@dataclass(frozen=True)
class VAERunSpec:
    """What a run trains on. ``images``: ``"phantom"`` (``n`` phantom subjects 0..n-1 of
    dataset seed ``seed``, rendered at ``image_size``) or a folder of images, searched
    recursively (one sub-folder per class, as the paper's data come).

    ``val_n`` images are held out for validation (the loss curves and the
    ``stop_rel_change`` stop): phantom subjects n..n+val_n-1, or for a folder
    ``val_n`` of its files drawn by ``seed``. Evaluation uses phantom subjects after
    both."""

    images: str = "phantom"
    n: int = 512
    image_size: int = 64
    latent_dim: int = 32
    arch: str = "small"
    seed: int = 0
    val_n: int = 0

    def __post_init__(self) -> None:
        for name in ("n", "image_size", "latent_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.val_n, bool) or not isinstance(self.val_n, int) or self.val_n < 0:
            raise ValueError(f"val_n must be an int >= 0, got {self.val_n!r}")
        get_architecture(self.arch)
        if not self.is_phantom and not Path(self.images).is_dir():
            raise ValueError(
                f"--images must be 'phantom' or a folder of images, got {self.images!r}"
            )

    @property
    def is_phantom(self) -> bool:
        return self.images == "phantom"

    def model_config(self) -> Any:
        cls = get_architecture(self.arch).config_class
        return cls(image_size=self.image_size, latent_dim=self.latent_dim)

    def sources(self) -> tuple[Any, Any]:
        """(training, validation) images: PhantomImageSources, or ImageSources splitting
        the folder's files; validation is None when ``val_n`` is 0."""
        from synthoct_bench import rng
        from synthoct_bench.generators.vae.training import (
            ImageSource,
            PhantomImageSource,
            load_image_source,
        )

        if self.is_phantom:
            train = PhantomImageSource(self.n, self.image_size, seed=self.seed)
            if self.val_n == 0:
                return train, None
            val = PhantomImageSource(self.val_n, self.image_size, seed=self.seed, offset=self.n)
            return train, val
        folder = load_image_source(str(self.images), self.image_size)
        if self.val_n == 0:
            return folder, None
        files = list(folder.items)
        if self.val_n >= len(files):
            raise ValueError(
                f"--val-n {self.val_n} leaves no training images of the {len(files)} in "
                f"{self.images}; lower --val-n"
            )
        keys = rng.uniform(self.seed, rng.stream_id("vae_run/val_split"), np.arange(len(files)), 1)
        is_val = np.zeros(len(files), dtype=bool)
        is_val[np.argsort(keys[:, 0], kind="stable")[: self.val_n]] = True
        pick = [f for f, v in zip(files, is_val, strict=True) if not v]
        held = [f for f, v in zip(files, is_val, strict=True) if v]
        return (
            ImageSource(pick, "files", self.image_size),
            ImageSource(held, "files", self.image_size),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAERunSpec:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown VAERunSpec keys {unknown}")
        return cls(**d)


def train_run(
    out: str | os.PathLike,
    spec: VAERunSpec,
    training: Any = None,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``spec``'s model with ``training`` (a VAETrainingConfig; its ``arch`` is
    set from the spec) into ``out``; ``resume`` continues the run already there (same
    spec), otherwise an existing run folder is an error. Returns train_vae's history."""
    from dataclasses import replace

    from synthoct_bench.generators.vae.training import VAETrainingConfig, train_vae

    device = str(resolve_device(device))
    out = Path(out)
    cfg = replace(training or VAETrainingConfig(), arch=spec.arch)
    existing = out / RUN_NAME
    check_run_folder(
        out, RUN_NAME, spec, load_run_spec, resume,
        "--images, --n, --image-size, --latent-dim, --arch and --seed",
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        existing,
        {
            "spec": spec.to_dict(),
            "training": to_jsonable(cfg.to_dict()),
            "model": spec.model_config().to_dict(),
        },
    )
    train, val = spec.sources()
    return train_vae(
        train, out, cfg, spec.model_config(), val_source=val, device=device, resume=resume,
        progress=progress,
    )  # fmt: skip


def run_model_dir(path: str | os.PathLike) -> Path:
    """The model folder of a run folder (``DIR/model``), or ``path`` itself when it holds
    the weights."""
    path = Path(path)
    for folder in (path / "model", path):
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    raise ValueError(f"{path} holds no trained VAE (model/config.json); run `synthoct vae train`")


def _run_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """``run.json`` of the run in ``path`` (or its parent, for a model folder), or None."""
    path = Path(path)
    for folder in (path, path.parent):
        if (folder / RUN_NAME).is_file():
            return json.loads((folder / RUN_NAME).read_text())
    return None


def load_run_spec(path: str | os.PathLike) -> VAERunSpec | None:
    """The run's :class:`VAERunSpec` from ``run.json`` in ``path`` (or its parent, for a
    model folder); None if there is none."""
    record = _run_record(path)
    return None if record is None else VAERunSpec.from_dict(record["spec"])


def run_likelihood(path: str | os.PathLike) -> str:
    """The reconstruction likelihood the run's objective was trained with, in words
    (from ``run.json`` in ``path`` or its parent)."""
    from synthoct_bench.generators.vae.training import VAETrainingConfig

    record = _run_record(path)
    if record is None:
        return "unknown (no run.json)"
    try:
        cfg = VAETrainingConfig.from_dict(record["training"])
    except (TypeError, ValueError) as exc:
        return f"not stated (run.json of an older version: {exc})"
    return f"{cfg.objective}: {cfg.objective_settings().describe_likelihood()}"


def held_out_source(spec: VAERunSpec | None, image_size: int, n: int) -> Any:
    """``n`` phantom subjects after a run's training and validation ones (the run's
    seed), at ``image_size``: the images ``evaluate_run`` and ``select_run`` score."""
    from synthoct_bench.generators.vae.training import PhantomImageSource

    offset = spec.n + spec.val_n if spec is not None and spec.is_phantom else 0
    seed = spec.seed if spec is not None else 0
    return PhantomImageSource(n, image_size, seed=seed, offset=offset)


@torch.no_grad()
def _encode(vae: VAEBase, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, ...]:
    """(μ, log σ², reconstruction of μ) for uint8 images (N, S, S), as float64 numpy."""
    vae.eval()
    mus, logvars, recons = [], [], []
    for i in range(0, len(images), batch_size):
        x = vae.images_to_tensor(images[i : i + batch_size])
        mu, logvar = vae.encode(x)
        mus.append(mu.double().cpu())
        logvars.append(logvar.double().cpu())
        recons.append(vae.decode(mu)[:, 0].double().cpu())
    return tuple(torch.cat(t).numpy() for t in (mus, logvars, recons))


@dataclass(frozen=True, eq=False)
class EtaProbe:
    """Ridge regression from standardised μ to the η-driving factors; R² on held-out rows."""

    factors: tuple[str, ...]
    r2: np.ndarray  # (k,) test R²
    alpha: float
    n_train: int
    n_test: int

    @property
    def mean_r2(self) -> float:
        return float(np.mean(self.r2))

    def to_dict(self) -> dict[str, Any]:
        return {
            "factors": list(self.factors),
            "r2": dict(zip(self.factors, self.r2.tolist(), strict=True)),
            "mean_r2": self.mean_r2,
            "alpha": self.alpha,
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


def eta_probe(
    codes: np.ndarray,
    factors: np.ndarray,
    names: tuple[str, ...] = ETA_FACTORS,
    alpha: float = 1.0,
    test_fraction: float = 0.25,
) -> EtaProbe:
    """Fit ridge (penalty ``alpha`` on the mean squared error, standardised variables) on
    the first rows and report R² per factor on the last ``test_fraction`` of them."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors, np.float64)
    n = len(codes)
    n_test = int(round(test_fraction * n))
    if n_test < 2 or n - n_test < 2:
        raise ValueError(f"the η-probe needs at least 8 images, got {n}")
    tr, te = slice(0, n - n_test), slice(n - n_test, n)
    cm, cs = codes[tr].mean(0), codes[tr].std(0)
    fm, fs = factors[tr].mean(0), factors[tr].std(0)
    cs, fs = np.where(cs > 0, cs, 1.0), np.where(fs > 0, fs, 1.0)
    x, y = (codes[tr] - cm) / cs, (factors[tr] - fm) / fs
    w = np.linalg.solve(x.T @ x / len(x) + alpha * np.eye(x.shape[1]), x.T @ y / len(x))
    y_test = (factors[te] - fm) / fs
    pred = (codes[te] - cm) / cs @ w
    r2 = r2_columns(y_test, pred)
    return EtaProbe(tuple(names), r2, float(alpha), n - n_test, n_test)


@dataclass(frozen=True, eq=False)
class VAEEvaluation:
    """What :func:`evaluate_run` measures on held-out phantom images."""

    n: int
    offset: int
    reconstruction_mse: float
    #: the trivial answer: the held-out images' own mean image, scored the same way
    mean_image_mse: float
    kl_per_dim: np.ndarray  # (d,) nats, mean over images
    mu_variance: np.ndarray  # (d,) Cov_x(E[z|x]) diagonal
    factor_names: tuple[str, ...]
    mig: Any
    dci: Any
    sap: Any
    eta_probe: EtaProbe
    #: the training objective's reconstruction likelihood, as its config states it
    likelihood: str = "unknown (no run.json)"
    plots: dict[str, str] = field(default_factory=dict)

    @property
    def mse_ratio(self) -> float:
        """Reconstruction MSE over the mean image's: 1 means the model learned nothing."""
        return self.reconstruction_mse / self.mean_image_mse if self.mean_image_mse else np.nan

    @property
    def collapsed(self) -> str | None:
        """Why the model counts as not having learned, or None: no active unit, or a
        reconstruction no better than 0.9 × the mean image's."""
        if self.active_units == 0:
            return "no active latent unit (posterior collapse)"
        if self.mse_ratio > COLLAPSE_MSE_RATIO:
            return (
                f"reconstruction MSE is {self.mse_ratio:.2f} x the mean image's: it learned "
                "(almost) nothing"
            )
        return None

    @property
    def active_dims(self) -> tuple[int, ...]:
        return tuple(int(d) for d in np.flatnonzero(self.mu_variance > ACTIVE_UNIT_THRESHOLD))

    @property
    def active_units(self) -> int:
        return len(self.active_dims)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; undefined scores (NaN, inf) as None."""
        return finite_or_none(
            {
                "n": self.n,
                "offset": self.offset,
                "reconstruction_mse": self.reconstruction_mse,
                "mean_image_mse": self.mean_image_mse,
                "mse_ratio": self.mse_ratio,
                "collapsed": self.collapsed,
                "likelihood": self.likelihood,
                "kl_total": float(self.kl_per_dim.sum()),
                "kl_per_dim": self.kl_per_dim.tolist(),
                "active_units": self.active_units,
                "active_dims": list(self.active_dims),
                "mu_variance": self.mu_variance.tolist(),
                "factor_names": list(self.factor_names),
                "mig": self.mig.to_dict(),
                "dci": self.dci.to_dict(),
                "sap": self.sap.to_dict(),
                "eta_probe": self.eta_probe.to_dict(),
                "plots": dict(self.plots),
            }
        )

    def summary(self) -> str:
        probe = ", ".join(f"{k} {v:.3f}" for k, v in self.eta_probe.to_dict()["r2"].items())
        lines = [
            f"held-out phantom images: {self.n} (subjects from {self.offset})",
            f"likelihood: {self.likelihood}",
            f"reconstruction MSE: {self.reconstruction_mse:.5g} (the mean image: "
            f"{self.mean_image_mse:.5g}; ratio {self.mse_ratio:.3f})",
            f"KL: {self.kl_per_dim.sum():.4g} nats; active units {self.active_units}/"
            f"{len(self.kl_per_dim)} (Cov_x E[z|x] > {ACTIVE_UNIT_THRESHOLD})",
            f"MIG {self.mig.score:.3f}  DCI D {self.dci.disentanglement:.3f} "
            f"C {self.dci.completeness:.3f} I {self.dci.informativeness:.3f}  "
            f"SAP {self.sap.score:.3f}",
            f"η-probe R² (ridge, held-out {self.eta_probe.n_test}): {probe}",
        ]
        if self.collapsed:
            lines.insert(0, f"COLLAPSED: {self.collapsed}; the figures below describe a failure")
        lines += [f"plot: {p}" for p in self.plots.values()]
        return "\n".join(lines)


def evaluate_run(
    path: str | os.PathLike,
    n: int = 512,
    plots_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 64,
) -> VAEEvaluation:
    """Evaluate the VAE of run folder (or model folder) ``path`` on ``n`` held-out
    phantom images; with ``plots_dir``, write the four plots there."""
    from synthoct_bench.generators.metrics.disentanglement import dci, mig, sap

    if isinstance(n, bool) or not isinstance(n, int) or n < 8:
        raise ValueError(f"--n must be an int >= 8, got {n!r}")
    vae = load_vae(run_model_dir(path), device=resolve_device(device))
    source = held_out_source(load_run_spec(path), vae.config.image_size, n)
    idx = np.arange(n)
    images = source.images(idx)
    mu, logvar, recon = _encode(vae, images, batch_size)
    x = images.astype(np.float64) / 255.0
    factors, names = source.factors(idx)
    eta_cols = [names.index(f) for f in ETA_FACTORS]
    result = VAEEvaluation(
        n=n,
        offset=source.offset,
        reconstruction_mse=float(np.mean((recon - x) ** 2)),
        mean_image_mse=float(np.mean((x - x.mean(axis=0)) ** 2)),
        kl_per_dim=np.mean(0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar), axis=0),
        mu_variance=mu.var(axis=0, ddof=1),
        factor_names=names,
        mig=mig(mu, factors),
        dci=dci(mu, factors),
        sap=sap(mu, factors),
        eta_probe=eta_probe(mu, factors[:, eta_cols]),
        likelihood=run_likelihood(path),
    )
    if plots_dir is not None:
        result.plots.update(_evaluation_plots(result, vae, images, recon, Path(plots_dir)))
    return result


def _evaluation_plots(
    result: VAEEvaluation, vae: VAEBase, images: np.ndarray, recon: np.ndarray, out: Path
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthoct_bench.generators.traversal import traversal_latents

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}

    k = min(8, len(images))
    fig, axes = plt.subplots(2, k, figsize=(1.4 * k, 3.0), squeeze=False)
    for i in range(k):
        for r, img in enumerate((images[i] / 255.0, recon[i])):
            axes[r, i].imshow(img, cmap="gray", vmin=0, vmax=1)
            axes[r, i].axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction of μ", fontsize=8, loc="left")
    paths["reconstructions"] = str(save_figure(fig, out / "reconstructions.png", dpi=90))

    dims = [int(d) for d in np.argsort(-result.kl_per_dim, kind="stable")[:5]]
    values = np.linspace(-3.0, 3.0, 7)
    z = traversal_latents(dims, values, base_z=np.zeros(vae.config.latent_dim),
                          latent_dim=vae.config.latent_dim)  # fmt: skip
    decoded = vae.decode_latents(z)
    fig, axes = plt.subplots(len(dims), len(values), figsize=(1.3 * len(values), 1.3 * len(dims)),
                             squeeze=False)  # fmt: skip
    for i, img in enumerate(decoded):
        r, c = divmod(i, len(values))
        axes[r, c].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if c == 0:
            axes[r, c].set_ylabel(f"dim {dims[r]}", fontsize=8)
        if r == len(dims) - 1:
            axes[r, c].set_xlabel(f"{values[c]:+.0f}", fontsize=8)
    fig.suptitle("traversals of the dims with the largest KL", fontsize=9)
    paths["traversals"] = str(save_figure(fig, out / "traversals.png", dpi=90))

    d = len(result.kl_per_dim)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.18 * d + 1), 2.6))
    colors = ["C3" if v > ACTIVE_UNIT_THRESHOLD else "C0" for v in result.mu_variance]
    ax.bar(np.arange(d), result.kl_per_dim, color=colors)
    ax.set_xlabel("latent dim (red: active unit)")
    ax.set_ylabel("KL (nats)")
    fig.tight_layout()
    paths["kl_per_dim"] = str(save_figure(fig, out / "kl_per_dim.png", dpi=90))

    mi = result.mig.mutual_info.T  # (factors, latent dims)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.2 * d + 3), 0.25 * len(result.factor_names) + 1.2))
    im = ax.imshow(mi, aspect="auto", cmap="viridis")
    ax.set_yticks(np.arange(len(result.factor_names)), result.factor_names, fontsize=7)
    ax.set_xlabel("latent dim")
    fig.colorbar(im, ax=ax, label="MI (nats)")
    fig.tight_layout()
    paths["mutual_info"] = str(save_figure(fig, out / "mutual_info.png", dpi=90))
    return paths


# ---- η dims selection ---------------------------------------------------------------------


def _top_overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return len(set(a) & set(b)) / len(a)


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Rank correlation of two score vectors; None when one is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True, eq=False)
class VAESelection:
    """The paper's Methods 1 and 2 on a VAE, how they agree, and with a phantom run the
    phantom's own ranking: latent dims by how much of an η-driving factor their μ
    explains (largest single-dim R², the SAP score matrix, over the three factors)."""

    selection: Any  # latent_selection.SelectionResult
    phantom_score: np.ndarray | None  # (d,) max R² with an η factor; None without phantom

    @property
    def k(self) -> int:
        return int(self.selection.k)

    @property
    def eta_dims(self) -> tuple[int, ...]:
        """Method 2's top dims: those the decoder, hence a dataset, shows most."""
        return self.selection.top_method2

    @property
    def phantom_top(self) -> tuple[int, ...] | None:
        if self.phantom_score is None:
            return None
        return tuple(int(d) for d in np.argsort(-self.phantom_score, kind="stable")[: self.k])

    def agreement(self) -> dict[str, Any]:
        s = self.selection
        m1_score, m2_score = -s.method1_mse, s.method2_mse  # larger = more influential
        out: dict[str, Any] = {
            "top_overlap_method1_method2": _top_overlap(s.top_method1, s.top_method2),
            "spearman_method1_method2": _spearman(m1_score, m2_score),
        }
        if self.phantom_score is not None:
            for name, top, score in (("method1", s.top_method1, m1_score),
                                     ("method2", s.top_method2, m2_score)):  # fmt: skip
                out[f"top_overlap_{name}_phantom"] = _top_overlap(top, self.phantom_top)
                out[f"spearman_{name}_phantom"] = _spearman(score, self.phantom_score)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "eta_dims": list(self.eta_dims),
            "eta_dims_from": "method2",
            "k": self.k,
            "method1_ranking": self.selection.method1_ranking.tolist(),
            "method2_ranking": self.selection.method2_ranking.tolist(),
            "phantom_top": None if self.phantom_top is None else list(self.phantom_top),
            "phantom_score": None if self.phantom_score is None else self.phantom_score.tolist(),
            "agreement": self.agreement(),
            **{k: v for k, v in self.selection.to_dict().items() if k != "k"},
        }

    def summary(self) -> str:
        lines = [self.selection.summary(show=min(10, len(self.selection.method2_mse)))]
        if self.phantom_top is not None:
            lines.append(f"phantom's own top {self.k} (μ dims best explaining an η factor): "
                         f"{list(self.phantom_top)}")  # fmt: skip
        lines += [
            f"{k}: {'undefined' if v is None else f'{v:.3f}'}" for k, v in self.agreement().items()
        ]
        lines.append(f"eta_dims (Method 2's top {self.k}): {list(self.eta_dims)}")
        return "\n".join(lines)


def select_run(
    path: str | os.PathLike,
    n_method1: int = 10_000,
    n_method2: int = 1_000,
    n_phantom: int = 512,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool = False,
    save: bool = True,
) -> VAESelection:
    """Rank the VAE's latent dims by Methods 1 and 2 (``k`` = 3), compare them with each
    other and, for a phantom run, with the phantom's own ranking on ``n_phantom``
    held-out images; ``save`` writes ``selection.json`` into the model folder."""
    from synthoct_bench.generators.metrics.disentanglement import sap
    from synthoct_bench.generators.metrics.latent_selection import (
        select_latent_dims,
        vae_decode_fn,
        vae_encode_fn,
    )

    model_dir = run_model_dir(path)
    vae = load_vae(model_dir, device=resolve_device(device))
    d = int(vae.config.latent_dim)
    if d < 3:
        raise ValueError(f"the VAE has {d} latent dims; selecting 3 η dims needs >= 3")
    result = select_latent_dims(
        vae_decode_fn(vae, batch_size), vae_encode_fn(vae, batch_size), k=3,
        n_method1=n_method1, n_method2=n_method2, seed=seed, latent_dim=d,
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    spec = load_run_spec(path)
    phantom_score = None
    if spec is None or spec.is_phantom:
        source = held_out_source(spec, vae.config.image_size, n_phantom)
        idx = np.arange(n_phantom)
        mu = vae.encode_images(source.images(idx))
        factors, _ = source.factors(idx, ETA_FACTORS)
        phantom_score = sap(mu, factors).score_matrix.max(axis=1)
    selection = VAESelection(result, phantom_score)
    if save:
        write_text(model_dir / SELECTION_NAME, json.dumps(to_jsonable(selection.to_dict()),
                                                          indent=2) + "\n")  # fmt: skip
    return selection
