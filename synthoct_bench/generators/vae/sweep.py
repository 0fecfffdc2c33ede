"""Korkic's (2021) sensitivity study on phantom images: a grid of VAE training runs.

Korkic 2021 trained VAE, IWAE, InfoVAE and LogCosh VAE at every learning rate
(1e-5 … 1e-1), latent size (10 … 200) and optimizer (Adam, SGD, RMSprop), up to
100 epochs with a stop at < 1% change of the validation reconstruction loss, and
plotted the converged loss and the epochs to converge. Here every cell of such a grid
(:class:`SweepGrid`, one :class:`SweepCell` per objective × optimizer × learning
rate × latent size × seed) trains Soelistyo & Lowe's (2024) small conv VAE on phantom images and
records, beside the thesis's two outcomes, what matters to this benchmark: MIG, the
η-probe R² and whether Methods 1 and 2 agree on the top three latent dims.

A cell's result is one JSON file written atomically once the cell is done, and a
cell's training checkpoints every epoch, so a sweep killed at any point resumes
(``resume=True``) without losing or repeating a cell. A loss that turns NaN or
infinite, or an out-of-memory, is the cell's recorded ``outcome``, not a crash.
Cells spread over worker processes and over machines (cell i goes to rank
i mod world, as the dataset build spreads shards). :func:`sweep_report` turns the
cells into a table (Parquet and CSV), the thesis's dot plots, an outcome map and a
variance decomposition of the converged loss.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench.atomic import save_figure, to_jsonable, write_json, write_text

__all__ = [
    "SweepGrid",
    "SweepCell",
    "SWEEP_PRESETS",
    "OUTCOMES",
    "TRAINED",
    "LEARNT_FRACTION",
    "FACTORS",
    "run_cell",
    "run_sweep",
    "read_cells",
    "variance_shares",
    "decompose_variance",
    "shares_over_seeds",
    "held_out_images",
    "mean_image_mse",
    "SweepReport",
    "sweep_report",
    "grid_from_options",
]

#: What a cell can end as: stopped by the rule, spent its budget (``epochs`` or
#: ``max_steps``, whichever ends first), diverged, out of memory.
OUTCOMES: tuple[str, ...] = ("converged", "budget", "diverged", "oom")
#: The outcomes of a cell that trained to the end (the rest have no model to score).
TRAINED: tuple[str, ...] = ("converged", "budget")
#: A trained cell *learnt* when its held-out MSE is at most this fraction of the mean
#: image's (beats the best input-independent output by 2x).
LEARNT_FRACTION = 0.5
#: Older sweep folders' names of an outcome, read as today's.
_FORMER_OUTCOMES = {"max_epochs": "budget"}
#: The grid's factors, in the order cell ids name them.
FACTORS: tuple[str, ...] = ("objective", "optimizer", "lr", "latent_dim", "seed")
GRID_NAME = "sweep.json"
#: What the report compares across cells: log10 of the held-out reconstruction MSE with
#: μ decoded, measured the same way for every objective (their own validation MSE, which
#: the stop rule uses, decodes sampled z for iwae and infovae).
LOSS = "log10_reconstruction_mse"
CELLS_DIR = "cells"
RUNS_DIR = "runs"


@dataclass(frozen=True)
class SweepCell:
    """One training run of the grid."""

    objective: str
    optimizer: str
    lr: float
    latent_dim: int
    seed: int

    @property
    def cell_id(self) -> str:
        return f"{self.objective}-{self.optimizer}-lr{self.lr:.0e}-d{self.latent_dim}-s{self.seed}"


@dataclass(frozen=True)
class SweepGrid:
    """The factors swept and the settings every cell shares.

    Defaults are the reduced grid, meant for a 2-core CPU: Korkic's (2021) four objectives ×
    three optimizers × its five learning rates × latent {10, 32, 128}, one training
    seed, at 32 px on 1,000 phantom images (250 more for validation), up to 450
    optimizer steps (30 epochs) a cell: on a 2-core CPU a median 14 s a cell, up to
    104 s (IWAE at latent 128), about an hour a seed (``--seeds 0,1,2`` for intervals
    over seeds, three times as long).
    At the former budget of 12 epochs the stop rule ended most cells after 75 steps,
    before any had left the mean image. ``SWEEP_PRESETS["korkic2021"]`` is
    the thesis's full grid with its literal stop. ``stop_rel_change``, ``stop_patience`` and
    ``stop_start_epoch`` set the convergence rule as in
    :class:`~synthoct_bench.generators.vae.training.VAETrainingConfig`. The thesis's rule
    (< 1% change in one epoch, from the first epoch on) stops phantom runs on the
    plateau of the mean image after two epochs, so the reduced grid asks for 3 epochs
    in a row from epoch 10 on.
    """

    objectives: tuple[str, ...] = ("vae", "iwae", "infovae", "logcosh")
    optimizers: tuple[str, ...] = ("adam", "sgd", "rmsprop")
    lrs: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    latent_dims: tuple[int, ...] = (10, 32, 128)
    seeds: tuple[int, ...] = (0,)
    images: str = "phantom"
    n: int = 1_000
    val_n: int = 250
    image_size: int = 32
    arch: str = "small"
    epochs: int = 100
    #: each cell's budget in optimizer steps (None: ``epochs`` alone)
    max_steps: int | None = 450
    batch_size: int = 64
    stop_rel_change: float = 0.01
    stop_patience: int = 3
    stop_start_epoch: int = 10
    #: the reconstruction likelihood of every objective: None keeps each objective's
    #: own (a log-likelihood summed over pixels, the KL at weight 1); "korkic2021" the
    #: thesis's pixel-mean scale with the KL × batch/N, to reproduce it as published.
    likelihood: str | None = None
    #: held-out phantom images for MIG and the η-probe
    eval_n: int = 500
    #: draws of Methods 1 and 2 (fewer than ``synthoct vae select``'s defaults: a cell
    #: only asks whether the two agree on the top three)
    n_method1: int = 1_000
    n_method2: int = 200

    def __post_init__(self) -> None:
        from synthoct_bench.generators.vae.base import get_architecture
        from synthoct_bench.generators.vae.objectives import OBJECTIVES
        from synthoct_bench.generators.vae.training import OPTIMIZERS, check_max_steps

        set_ = object.__setattr__
        for name, kind in (("objectives", str), ("optimizers", str), ("lrs", float),
                           ("latent_dims", int), ("seeds", int)):  # fmt: skip
            values = tuple(kind(v) for v in getattr(self, name))
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be non-empty and without repeats, got {values}")
            set_(self, name, values)
        unknown = sorted(set(self.objectives) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"unknown objectives {unknown}; choose from {list(OBJECTIVES)}")
        unknown = sorted(set(self.optimizers) - set(OPTIMIZERS))
        if unknown:
            raise ValueError(f"unknown optimizers {unknown}; choose from {list(OPTIMIZERS)}")
        if any(not lr > 0 for lr in self.lrs) or any(d < 3 for d in self.latent_dims):
            raise ValueError("learning rates must be > 0 and latent dims >= 3")
        check_max_steps(self.max_steps)
        if self.val_n < 1:
            raise ValueError("val_n must be >= 1: the convergence rule reads validation losses")
        if self.likelihood not in (None, "korkic2021"):
            raise ValueError(
                f"likelihood must be None (each objective's own) or 'korkic2021', got "
                f"{self.likelihood!r}"
            )
        if self.likelihood is not None and "beta" in self.objectives:
            raise ValueError("the beta objective is the paper's own loss: use likelihood=None")
        get_architecture(self.arch)

    @property
    def cells(self) -> list[SweepCell]:
        """Every cell, in a fixed order (seed outermost, then objective, optimizer, lr,
        latent size), so cell i is the same on every machine."""
        return [
            SweepCell(o, opt, lr, d, s)
            for s in self.seeds
            for o in self.objectives
            for opt in self.optimizers
            for lr in self.lrs
            for d in self.latent_dims
        ]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepGrid:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown SweepGrid keys {unknown}")
        return cls(**d)


#: Named grids: ``reduced`` (the default, for a 2-core CPU) and ``korkic2021`` (the thesis's
#: 360 runs: latent 10-200, up to 100 epochs, its one-epoch stop; 64 px on 10,000 images).
SWEEP_PRESETS: dict[str, SweepGrid] = {
    "reduced": SweepGrid(),
    "korkic2021": SweepGrid(
        latent_dims=(10, 20, 30, 50, 100, 200),
        seeds=(0,),
        n=10_000,
        val_n=1_000,
        image_size=64,
        epochs=100,
        max_steps=None,
        stop_patience=1,
        stop_start_epoch=0,
        eval_n=2_000,
        n_method1=10_000,
        n_method2=1_000,
    ),  # fmt: skip
}


# ---- one cell -----------------------------------------------------------------------------


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, (MemoryError, oom)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def run_cell(
    grid: SweepGrid, cell: SweepCell, out: str | os.PathLike, device: str = "cpu"
) -> dict[str, Any]:
    """Train, evaluate and rank one cell; writes and returns its result. A run folder
    already there (a killed sweep) is resumed from its last epoch."""
    from synthoct_bench.generators.vae.run import VAERunSpec, train_run
    from synthoct_bench.generators.vae.training import TrainingDiverged, VAETrainingConfig

    out = Path(out)
    run_dir = out / RUNS_DIR / cell.cell_id
    spec = VAERunSpec(
        images=grid.images, n=grid.n, image_size=grid.image_size, latent_dim=cell.latent_dim,
        arch=grid.arch, seed=cell.seed, val_n=grid.val_n,
    )  # fmt: skip
    steps_per_epoch = max(1, grid.n // grid.batch_size)
    config = VAETrainingConfig(
        objective=cell.objective, arch=grid.arch, optimizer=cell.optimizer,
        learning_rate=cell.lr, batch_size=grid.batch_size, epochs=grid.epochs,
        max_steps=None if grid.max_steps is None
        else min(grid.max_steps, grid.epochs * steps_per_epoch),
        augment=False, perceptual=False, seed=cell.seed, checkpoint_every=steps_per_epoch,
        log_every=steps_per_epoch, stop_rel_change=grid.stop_rel_change,
        stop_patience=grid.stop_patience, stop_start_epoch=grid.stop_start_epoch,
        keep_checkpoints=1,
        objective_config=None if grid.likelihood is None else {"likelihood": grid.likelihood},
    )  # fmt: skip
    result: dict[str, Any] = {**asdict(cell), "cell_id": cell.cell_id}
    t = time.perf_counter()
    try:
        trained = train_run(run_dir, spec, config, device=device, resume=run_dir.exists(),
                            progress=False)  # fmt: skip
    except TrainingDiverged as exc:
        result.update(outcome="diverged", error=str(exc), epochs=exc.step / steps_per_epoch)
    except Exception as exc:  # noqa: BLE001 - an out-of-memory is an outcome; others raise
        if not _is_oom(exc):
            raise
        result.update(outcome="oom", error=" ".join(str(exc).split())[:300])
    else:
        val_mse = trained["val_history"][-1]["val_mse"]
        result["epochs"] = trained["epochs"]
        result["val_mse"] = val_mse
        if not math.isfinite(val_mse):
            result.update(outcome="diverged", error=f"validation MSE {val_mse}")
        else:
            result["outcome"] = "converged" if trained["converged_step"] else "budget"
            result.update(_outcomes_for_the_benchmark(run_dir, grid, device))
    result["wall_s"] = time.perf_counter() - t
    write_json(out / CELLS_DIR / f"{cell.cell_id}.json", to_jsonable(result))
    return result


def _outcomes_for_the_benchmark(run_dir: Path, grid: SweepGrid, device: str) -> dict[str, Any]:
    """MIG, η-probe R² and whether Methods 1 and 2 agree on the top three dims."""
    from synthoct_bench.generators.vae.run import evaluate_run, select_run

    ev = evaluate_run(run_dir, n=grid.eval_n, device=device)
    selection = select_run(run_dir, n_method1=grid.n_method1, n_method2=grid.n_method2,
                           device=device)  # fmt: skip
    overlap = selection.agreement()["top_overlap_method1_method2"]
    mig = ev.to_dict()["mig"]["score"]
    return {
        "reconstruction_mse": float(ev.reconstruction_mse),
        "mig": None if mig is None or not math.isfinite(mig) else float(mig),
        "eta_probe_r2": float(ev.eta_probe.mean_r2),
        "active_units": int(ev.active_units),
        "methods_agree": bool(overlap == 1.0),
        "top_overlap_method1_method2": float(overlap),
    }


# ---- the grid -----------------------------------------------------------------------------


def _check_out(out: Path, grid: SweepGrid, resume: bool) -> None:
    saved = out / GRID_NAME
    if saved.is_file():
        if not resume:
            raise ValueError(f"{out} already holds a sweep; pass --resume or choose another --out")
        theirs = SweepGrid.from_dict(json.loads(saved.read_text()))
        if theirs == grid:
            return
        if replace(theirs, seeds=grid.seeds) != grid:
            raise ValueError(
                f"{out} holds another sweep grid; resume it with the same settings, or choose "
                "another --out"
            )
        if grid.seeds[: len(theirs.seeds)] != theirs.seeds:
            # the first seed fixes the held-out images every cell is scored on
            old = ",".join(map(str, theirs.seeds))
            raise ValueError(
                f"{out} was swept with seeds {old}: to add seeds, list those first "
                f"(e.g. --seeds {old},{max(theirs.seeds) + 1})"
            )
    elif resume and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} has no {GRID_NAME}: nothing to resume")


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_sweep(
    grid: SweepGrid,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    workers: int = 1,
    rank: int | None = None,
    world: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run this rank's cells of ``grid`` not yet done into ``out``; returns their results.

    A resumed sweep may add seeds after those it was run with (intervals over seeds
    for a finished grid); every other setting must match.

    ``rank``/``world`` as for ``synthoct build`` (flags, else torchrun, else a SLURM
    array); ``workers`` > 1 trains cells in that many processes, each with an equal
    share of the CPU's threads.
    """
    from tqdm.auto import tqdm

    from synthoct_bench.devices import resolve_device
    from synthoct_bench.ranks import resolve_rank_world

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    resolve_device(device)  # a device this machine lacks: one line now, not in a worker
    rank, world = resolve_rank_world(rank, world)
    out = Path(out)
    _check_out(out, grid, resume)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / GRID_NAME, grid.to_dict())
    done = {p.stem for p in (out / CELLS_DIR).glob("*.json")}
    todo = [c for i, c in enumerate(grid.cells) if i % world == rank and c.cell_id not in done]
    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress)
    try:
        if workers == 1 or len(todo) <= 1:
            for cell in todo:
                results.append(run_cell(grid, cell, out, device))
                bar.update(1)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(
                max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                initializer=_init_worker, initargs=(threads,),
            ) as pool:  # fmt: skip
                pending = {pool.submit(run_cell, grid, cell, out, device) for cell in todo}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        results.append(future.result())
                        bar.update(1)
    finally:
        bar.close()
    return results


def read_cells(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished cell's result in ``out``, in the grid's order."""
    out = Path(out)
    if not (out / GRID_NAME).is_file():
        raise ValueError(f"{out} holds no sweep ({GRID_NAME} is missing)")
    grid = SweepGrid.from_dict(json.loads((out / GRID_NAME).read_text()))
    rows = []
    for cell in grid.cells:
        path = out / CELLS_DIR / f"{cell.cell_id}.json"
        if path.is_file():
            row = json.loads(path.read_text())
            row["outcome"] = _FORMER_OUTCOMES.get(row["outcome"], row["outcome"])
            rows.append(row)
    return rows


# ---- the report ---------------------------------------------------------------------------


def variance_shares(
    rows: Sequence[dict[str, Any]], factors: Sequence[str], value: str = LOSS
) -> dict[str, float]:
    """Share of the variance of ``value`` explained by each factor (its group means) and
    by each pair's interaction beyond the two main effects; ``residual`` is the rest.

    On a complete, balanced grid these are the classical two-way ANOVA shares
    (η²); with cells missing (diverged ones) they are the same formulas on the cells
    there are, an approximation that the report says is one.
    """
    y = np.array([r[value] for r in rows], dtype=np.float64)
    total = float(np.sum((y - y.mean()) ** 2))
    if y.size < 2 or total == 0.0:
        return {}

    def explained(keys: Sequence[str]) -> float:
        groups: dict[tuple, list[float]] = {}
        for r, v in zip(rows, y, strict=True):
            groups.setdefault(tuple(r[k] for k in keys), []).append(v)
        return sum(len(g) * (np.mean(g) - y.mean()) ** 2 for g in groups.values()) / total

    shares = {f: explained([f]) for f in factors}
    for a, b in combinations(factors, 2):
        shares[f"{a} x {b}"] = max(0.0, explained([a, b]) - shares[a] - shares[b])
    shares["residual"] = max(0.0, 1.0 - sum(shares.values()))
    return {k: float(v) for k, v in shares.items()}


def shares_over_seeds(
    by_seed: dict[int, dict[str, float]], level: float = 0.95
) -> dict[str, dict[str, float]]:
    """Per factor, the mean of its share over seeds and the Student-t interval of that
    mean at ``level`` (the low end clipped at 0: a share is not negative). A factor's
    interval needs two seeds that report it; with fewer it is left out."""
    from scipy import stats

    out: dict[str, dict[str, float]] = {}
    names = sorted({name for shares in by_seed.values() for name in shares})
    for name in names:
        v = np.array([s[name] for s in by_seed.values() if name in s], dtype=np.float64)
        if v.size < 2:
            continue
        half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
        mean = float(v.mean())
        out[name] = {"mean": mean, "low": max(0.0, mean - half), "high": mean + half,
                     "seeds": int(v.size)}  # fmt: skip
    return out


def _scored(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trained cells of ``rows`` with a held-out MSE to take the log of."""
    return [r for r in rows
            if r["outcome"] in TRAINED and (r.get("reconstruction_mse") or 0) > 0]  # fmt: skip


def decompose_variance(
    rows: Sequence[dict[str, Any]], seeds: Sequence[int]
) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """The report's variance shares of log10 held-out MSE over the trained cells of
    ``rows``: pooled over the factors that vary (seed among them), and, with more than
    one of ``seeds``, per seed over the others (the input of :func:`shares_over_seeds`)."""
    finite = [{**r, LOSS: math.log10(r["reconstruction_mse"])} for r in _scored(rows)]
    varying = [f for f in FACTORS if len({r[f] for r in finite}) > 1]
    shares = variance_shares(finite, varying, LOSS)
    by_seed: dict[int, dict[str, float]] = {}
    if len(seeds) > 1:
        within = [f for f in varying if f != "seed"]
        for seed in seeds:
            mine = [r for r in finite if r["seed"] == seed]
            if len(mine) > 1:
                by_seed[seed] = variance_shares(mine, within, LOSS)
    return shares, by_seed


@dataclass
class SweepReport:
    """What :func:`sweep_report` found and wrote."""

    rows: list[dict[str, Any]]
    cells_total: int
    outcomes: dict[str, int]
    shares: dict[str, float]
    #: the shares per seed (their spread is the interval over seeds); empty with one seed
    shares_by_seed: dict[int, dict[str, float]] = field(default_factory=dict)
    #: MSE of the best image-independent output (the mean image) on held-out phantom
    #: images; None for a folder of images
    mean_image_mse: float | None = None
    #: trained cells whose reconstruction beats the mean image
    cells_below_mean_image: int | None = None
    #: trained cells at most :data:`LEARNT_FRACTION` of the mean image's MSE (learnt)
    cells_below_half_mean_image: int | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cells_total": self.cells_total,
            "cells_done": len(self.rows),
            "outcomes": self.outcomes,
            "variance_shares": self.shares,
            "variance_shares_by_seed": {str(k): v for k, v in self.shares_by_seed.items()},
            "variance_shares_over_seeds": shares_over_seeds(self.shares_by_seed),
            "mean_image_mse": self.mean_image_mse,
            "cells_below_mean_image": self.cells_below_mean_image,
            "cells_below_half_mean_image": self.cells_below_half_mean_image,
            "files": self.files,
        }

    def summary(self) -> str:
        lines = [
            f"{len(self.rows)} of {self.cells_total} cells done: "
            + ", ".join(f"{k} {v}" for k, v in self.outcomes.items())
        ]
        if self.mean_image_mse is not None:
            trained = sum(r["outcome"] in TRAINED for r in self.rows)
            lines.append(
                f"{self.cells_below_mean_image} of {trained} trained cells reconstruct held-out "
                f"images better than the mean image (MSE {self.mean_image_mse:.4f}), "
                f"{self.cells_below_half_mean_image} by at least 2x"
            )
        if self.shares:
            lines.append(
                "share of the variance of log10 held-out reconstruction MSE (trained cells):"
            )
            over = shares_over_seeds(self.shares_by_seed)
            if over:
                lines[-1] += " pooled; per-seed mean [95% interval over seeds]"
            for name, share in sorted(self.shares.items(), key=lambda kv: -kv[1]):
                iv = over.get(name)
                rng = f"  {iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]" if iv else ""
                lines.append(f"  {name:<26} {share:.3f}{rng}")
        lines += [f"wrote {f}" for f in self.files]
        return "\n".join(lines)


def held_out_images(grid: SweepGrid) -> np.ndarray | None:
    """The first seed's held-out phantom images the cells are evaluated on, float64 in
    [0, 1] (eval_n, S, S); None for folder images."""
    if grid.images != "phantom":
        return None
    from synthoct_bench.generators.vae.training import PhantomImageSource

    held = PhantomImageSource(grid.eval_n, grid.image_size, seed=grid.seeds[0],
                              offset=grid.n + grid.val_n)  # fmt: skip
    return held.images(range(grid.eval_n)).astype(np.float64) / 255.0


def mean_image_mse(grid: SweepGrid) -> float | None:
    """The per-pixel variance of :func:`held_out_images` (the MSE of the mean image, the
    best output that ignores its input); None for folder images."""
    x = held_out_images(grid)
    return None if x is None else float(((x - x.mean(0)) ** 2).mean())


def sweep_report(out: str | os.PathLike, plots: bool = True) -> SweepReport:
    """Table (``results.parquet``, ``results.csv``), dot plots, outcome map and variance
    decomposition (``report.json``) of the sweep in ``out``, from its cell files."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    out = Path(out)
    rows = read_cells(out)
    grid = SweepGrid.from_dict(json.loads((out / GRID_NAME).read_text()))
    outcomes = {k: sum(r["outcome"] == k for r in rows) for k in OUTCOMES}
    finite = _scored(rows)
    shares, by_seed = decompose_variance(finite, grid.seeds)
    columns = [
        *FACTORS, "outcome", "epochs", "val_mse", "reconstruction_mse", "mig", "eta_probe_r2",
        "active_units", "methods_agree", "top_overlap_method1_method2", "wall_s", "error",
    ]  # fmt: skip
    table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    files = []
    for name, writer in (("results.parquet", pq.write_table), ("results.csv", pa_csv.write_csv)):
        tmp = out / f".{name}.tmp"
        writer(table, tmp)
        os.replace(tmp, out / name)
        files.append(str(out / name))
    floor = mean_image_mse(grid)
    below = half = None
    if floor is not None:
        below = sum(r["reconstruction_mse"] < floor for r in finite)
        half = sum(r["reconstruction_mse"] <= LEARNT_FRACTION * floor for r in finite)
    report = SweepReport(rows, len(grid.cells), outcomes, shares, by_seed, floor, below, half)
    if plots and rows:
        files.append(str(_dot_plot(rows, grid, out / "loss_vs_lr.png", floor)))
        files.append(str(_outcome_map(rows, grid, out / "outcomes.png")))
    report.files = [*files, str(out / "report.json")]
    write_text(out / "report.json", json.dumps(to_jsonable(report.to_dict()), indent=2) + "\n")
    return report


_OPTIMIZER_COLOURS = {"adam": "tab:blue", "sgd": "tab:orange", "rmsprop": "tab:green"}
_MARKERS = "os^Dvp*hX<>"


def _dot_plot(
    rows: list[dict[str, Any]], grid: SweepGrid, path: Path, floor: float | None = None
) -> Path:
    """The thesis's dot plot, one panel per objective: held-out reconstruction MSE against
    learning rate, a colour per optimizer, a marker per latent size, the size by
    epochs; ``floor`` (the mean image's MSE) as a dashed line and half of it (the bar
    for a cell that learnt) dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    objectives = list(grid.objectives)
    fig, axes = plt.subplots(1, len(objectives), figsize=(3.2 * len(objectives), 3.2),
                             sharey=True, squeeze=False)  # fmt: skip
    markers = {d: _MARKERS[i % len(_MARKERS)] for i, d in enumerate(grid.latent_dims)}
    jitter = {d: 1.0 + 0.08 * (i - (len(grid.latent_dims) - 1) / 2)
              for i, d in enumerate(grid.latent_dims)}  # fmt: skip
    trained = [r for r in rows if r["outcome"] in TRAINED]
    plotted = [r["reconstruction_mse"] for r in trained if r.get("reconstruction_mse")]
    span = max(plotted) / min(plotted) if plotted else 1.0  # the shared y axis's range
    for ax, objective in zip(axes[0], objectives, strict=True):
        for r in trained:
            if r["objective"] != objective:
                continue
            ax.scatter(
                r["lr"] * jitter[r["latent_dim"]], r["reconstruction_mse"],
                c=_OPTIMIZER_COLOURS.get(r["optimizer"], "k"), marker=markers[r["latent_dim"]],
                s=12 + 2.0 * r.get("epochs", 0), alpha=0.75,
                edgecolors="k" if r["outcome"] == "converged" else "none", linewidths=0.4,
            )  # fmt: skip
        if floor is not None:
            ax.axhline(floor, color="k", ls="--", lw=0.8)
            ax.axhline(LEARNT_FRACTION * floor, color="k", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        if span < 10:  # within a decade there may be no major tick to read
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
            ax.tick_params(axis="y", which="minor", labelsize=6)
        else:
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(objective)
        ax.set_xlabel("learning rate")
    axes[0][0].set_ylabel("held-out MSE, μ decoded")
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=o)
               for o, c in _OPTIMIZER_COLOURS.items() if o in grid.optimizers]  # fmt: skip
    handles += [plt.Line2D([], [], ls="", marker=m, color="grey", label=f"latent {d}")
                for d, m in markers.items()]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7)
    note = "; dashed: the mean image's MSE, dotted: half of it" if floor is not None else ""
    fig.suptitle(f"size: epochs; black edge: stopped by the convergence rule{note}", fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.3, top=0.85, wspace=0.08)
    return save_figure(fig, path, dpi=100)


def _outcome_map(rows: list[dict[str, Any]], grid: SweepGrid, path: Path) -> Path:
    """Which cells diverged or ran out of memory: objective × optimizer rows, learning
    rate × latent size columns (the first seed's outcome; later seeds' in the title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    code = {outcome: i for i, outcome in enumerate(OUTCOMES)}
    ys = [(o, opt) for o in grid.objectives for opt in grid.optimizers]
    xs = [(lr, d) for lr in grid.lrs for d in grid.latent_dims]
    img = np.full((len(ys), len(xs)), np.nan)
    found = {(r["objective"], r["optimizer"], r["lr"], r["latent_dim"]): r for r in rows
             if r["seed"] == grid.seeds[0]}  # fmt: skip
    for i, (o, opt) in enumerate(ys):
        for j, (lr, d) in enumerate(xs):
            r = found.get((o, opt, lr, d))
            if r is not None:
                img[i, j] = code[r["outcome"]]
    fig, ax = plt.subplots(figsize=(0.28 * len(xs) + 2.5, 0.28 * len(ys) + 1.6))
    cmap = ListedColormap(["#7fbf7f", "#d9d97f", "#d95f5f", "#5f5fd9"])
    ax.imshow(img, cmap=cmap, vmin=-0.5, vmax=3.5, aspect="auto")
    ax.set_yticks(range(len(ys)), [f"{o} {opt}" for o, opt in ys], fontsize=7)
    ax.set_xticks(range(len(xs)), [f"{lr:.0e} d{d}" for lr, d in xs], fontsize=6, rotation=90)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(4)]
    ax.legend(handles, list(code), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(f"outcome per cell, seed {grid.seeds[0]}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def grid_from_options(preset: str = "reduced", **overrides: Any) -> SweepGrid:
    """A preset with some fields replaced (None values are left as the preset has them)."""
    if preset not in SWEEP_PRESETS:
        raise ValueError(f"unknown sweep preset {preset!r}; choose from {list(SWEEP_PRESETS)}")
    return replace(SWEEP_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
