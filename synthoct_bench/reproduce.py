"""The image-independent cells of the paper's Tables 1 and 2, from the NLME model alone.

Table 2 reports the conditional NLL, evaluated at the noise-free η, of
longitudinal data simulated (with residual error) from different random
effects. Four of its columns need no image model:

* ``true``: data simulated from η_noisy = (η + r)/√(1+σ²) (the dataset's observations);
* ``approximate``: data simulated from the EBEs (η_ebe) of the true data, at
  population parameters fitted to them (needs an :class:`Encoder`);
* ``average``: data simulated from η = 0;
* ``random``: data simulated from fresh N(0, I) draws (independent of η).

Table 1's (η_noisy, η_ebe) row needs the encoder too. Means come with
percentile bootstrap 95% intervals over subjects, paired across columns (same
resamples), next to the paper's values (:mod:`synthoct_bench.paper`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthoct_bench import latent, rng
from synthoct_bench.paper import PAPER_TABLE1, PAPER_TABLE2
from synthoct_bench.scoring import metrics as M
from synthoct_bench.stats import Estimate, bootstrap

__all__ = [
    "Level",
    "Column",
    "COLUMNS",
    "Encoder",
    "EncodedLevel",
    "make_level",
    "column_nll",
    "reproduce_table2",
    "table1_row",
    "reproduce_table1",
    "z_vs_paper",
]

#: Population-fit estimators the encoder can use.
ESTIMATORS: tuple[str, ...] = ("foce", "importance")


@dataclass(frozen=True)
class Level:
    """Everything a column needs at one noise level."""

    noise: float
    seed: int
    subject_ids: np.ndarray
    eta: np.ndarray  # noise-free η (N, 3): the NLL is evaluated here
    eta_noisy: np.ndarray  # η_noisy at this level (paper eq. 10)


def make_level(noise: float, n: int, seed: int) -> Level:
    """Subjects 0..n-1 of ``seed`` at noise level ``noise``: the dataset's own draws."""
    ids = np.arange(n)
    eta = latent.select_eta(latent.sample_z(ids, seed))
    return Level(float(noise), seed, ids, eta, latent.add_noise(eta, noise, ids, seed))


@dataclass(frozen=True)
class EncodedLevel:
    """The encoder's output at one level: the population fit and the EBEs it gives."""

    eta_ebe: np.ndarray
    fit: Any  # nlme PopulationFit
    ebe: Any  # nlme EBEResult


@dataclass
class Encoder:
    """The NLME encoder of the true data: a population fit on ``fit_subjects`` subjects,
    then EBEs for every subject; results are kept per level so Tables 1 and 2 share them.

    ``estimator`` is ``"foce"`` (the paper's) or ``"importance"`` (importance sampling,
    without FOCE's Laplace bias on this model). The data are the released observations
    (stream :func:`~synthoct_bench.latent.residual_stream`); the fit starts from the
    reference's initial values, as the paper's Pumas fit did.
    """

    fit_subjects: int = 2000
    estimator: str = "foce"
    _cache: dict[tuple, EncodedLevel] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(
                f"estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}"
            )
        if self.fit_subjects < 1:
            raise ValueError(f"fit_subjects must be >= 1, got {self.fit_subjects}")

    def encode(self, level: Level) -> EncodedLevel:
        from synthoct_bench.nlme import ebe, fit_foce, fit_importance, simulate

        key = (level.noise, level.seed, level.eta.shape[0])
        if key not in self._cache:
            stream = latent.residual_stream(_level_key(level.noise))
            y = simulate(level.eta_noisy, level.seed, subject_ids=level.subject_ids, stream=stream)
            fitter = fit_importance if self.estimator == "importance" else fit_foce
            fit = fitter(y, max_subjects=self.fit_subjects, seed=level.seed, compute_se=False)
            res = ebe(y, fit.params)
            self._cache[key] = EncodedLevel(eta_ebe=res.eta, fit=fit, ebe=res)
        return self._cache[key]


@dataclass(frozen=True)
class Column:
    """A Table 2 column: data are simulated from ``eta_for(level, encoder)``."""

    name: str
    eta_for: Callable[[Level, Encoder | None], np.ndarray]
    #: residual-error stream; "{k}" is replaced by the noise level
    stream: str
    description: str
    needs_encoder: bool = False


def _true(level: Level, encoder: Encoder | None) -> np.ndarray:
    return level.eta_noisy


def _approximate(level: Level, encoder: Encoder | None) -> np.ndarray:
    if encoder is None:
        raise ValueError("the approximate column needs an Encoder (encoder=Encoder())")
    return encoder.encode(level).eta_ebe


def _average(level: Level, encoder: Encoder | None) -> np.ndarray:
    return np.zeros_like(level.eta)


def _random(level: Level, encoder: Encoder | None) -> np.ndarray:
    # fresh N(0, I) per level, independent of η: the paper's Random varies by level
    sid = rng.stream_id("reproduce/random_eta", float(level.noise))
    return rng.standard_normal(level.seed, sid, level.subject_ids, level.eta.shape[1])


#: Columns computed here, in display order. The ``true`` residuals use the dataset's
#: stream, so its NLL is that of the released observations.
COLUMNS: tuple[Column, ...] = (
    Column("true", _true, latent.residual_stream("{k}"), "simulated from eta_noisy (the data)"),
    Column(
        "approximate",
        _approximate,
        "reproduce/approximate/s{k}",
        "simulated from the EBEs of the true data at fitted parameters",
        needs_encoder=True,
    ),
    Column("average", _average, "reproduce/average", "simulated from eta = 0"),
    Column("random", _random, "reproduce/random/s{k}", "simulated from fresh N(0, I) draws"),
)


def _level_key(noise: float) -> int | float:
    return int(noise) if float(noise).is_integer() else float(noise)


def column_nll(
    column: Column, level: Level, pred_at_eta: np.ndarray, encoder: Encoder | None = None
) -> np.ndarray:
    """Per-subject conditional NLL (N,) of data simulated for ``column`` at ``level``."""
    from synthoct_bench.nlme import PAPER_MODEL, gaussian_loglik, simulate

    stream = column.stream.replace("{k}", str(_level_key(level.noise)))
    eta = column.eta_for(level, encoder)
    y = simulate(eta, level.seed, subject_ids=level.subject_ids, stream=stream)
    return -gaussian_loglik(y, pred_at_eta, PAPER_MODEL.default_params.sigma)


def z_vs_paper(ours: Estimate, value: float, low: float, high: float) -> float:
    """Difference of two independent sample means in units of its standard error.

    The paper's interval describes ITS sample of 100k subjects; ours is another
    sample, so even an exact reimplementation falls outside that interval about
    a third of the time when both intervals have similar width. Two means are
    inconsistent only if |z| > 1.96, with SEs read off the 95% intervals (the
    paper's are rounded to integers, hence the 0.5 floor).
    """
    se_ours = (ours.high - ours.low) / (2 * 1.96)
    se_paper = max(high - low, 1.0) / (2 * 1.96)
    return float((ours.value - value) / math.hypot(se_ours, se_paper))


#: peak memory per subject, measured: 2.5 KB without the EBE cells, 4.8 KB with them
#: at two levels (20,000 and 60,000 subjects); rounded up
SUBJECT_BYTES = 6_000


def reproduce_table2(
    n: int = 100_000,
    seed: int = 0,
    noise_levels: Sequence[float] = latent.NOISE_LEVELS,
    n_bootstrap: int = 1000,
    columns: Sequence[Column] | None = None,
    encoder: Encoder | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Table 2's columns at every noise level, next to the paper's; a JSON-ready dict.

    ``columns`` defaults to every column the ``encoder`` allows (without an encoder,
    ``approximate`` is left out).
    """
    from tqdm.auto import tqdm

    from synthoct_bench.nlme import predict

    if columns is None:
        columns = [c for c in COLUMNS if encoder is not None or not c.needs_encoder]
    columns = list(columns)
    if n < 2:
        raise ValueError(f"n must be >= 2 subjects, got {n}")
    from synthoct_bench.resources import require_memory

    require_memory(
        n * SUBJECT_BYTES,
        f"reproducing with {n:,} subjects",
        "give a smaller --n (the paper: 100,000)",
    )
    ids = np.arange(n)
    eta = latent.select_eta(latent.sample_z(ids, seed))
    pred_at_eta = predict(eta)
    out: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "columns": [c.name for c in columns],
        "levels": {},
    }
    for noise in tqdm(noise_levels, desc="noise levels", disable=not progress):
        level = Level(float(noise), seed, ids, eta, latent.add_noise(eta, noise, ids, seed))
        stats = np.stack([column_nll(c, level, pred_at_eta, encoder) for c in columns], axis=1)
        ests = bootstrap(stats, lambda t, m: t / m, n_resamples=n_bootstrap, seed=seed)
        ests = ests if isinstance(ests, list) else [ests]
        paper = PAPER_TABLE2.get(_level_key(noise), {})
        table = {}
        for col, est in zip(columns, ests, strict=True):
            cell: dict[str, Any] = {
                "ours": est.as_dict(),
                "paper": None,
                "inside_paper_interval": None,
                "z_vs_paper": None,
            }
            if col.name in paper:
                value, low, high = paper[col.name]
                cell["paper"] = {"value": value, "low": low, "high": high}
                cell["inside_paper_interval"] = bool(low - 0.5 <= est.value <= high + 0.5)
                cell["z_vs_paper"] = z_vs_paper(est, value, low, high)
            table[col.name] = cell
        out["levels"][str(_level_key(noise))] = table
    return out


def table1_row(level: Level, encoder: Encoder, n_bootstrap: int = 1000) -> dict[str, Any]:
    """Table 1's (η_noisy, η_ebe) MSE and R² with bootstrap intervals (the scorer's
    metrics), and the population fit behind the EBEs."""
    enc = encoder.encode(level)
    stats = M.StatMatrix(level.eta.shape[0])
    M.add_r2_stats(stats, "noisy_ebe", level.eta_noisy, enc.eta_ebe)
    est = M.evaluate(
        stats,
        {"mse": M.mse_metric("noisy_ebe", 3), "r2": M.r2_metric("noisy_ebe", 3)},
        n_resamples=n_bootstrap,
        seed=level.seed,
    )
    paper = PAPER_TABLE1.get(_level_key(level.noise), {}).get(("eta_noisy", "eta_ebe"))
    fit = enc.fit
    return {
        "mse": est["mse"].as_dict(),
        "r2": est["r2"].as_dict(),
        "paper": {"mse": list(paper[0]), "r2": list(paper[1])} if paper else None,
        "fitted_params": fit.params.to_dict(),
        "fit_ofv": fit.ofv,
        "fit_subjects": fit.n_subjects_used,
        "fit_converged": fit.converged,
        "estimator": fit.method,
        "ebe_convergence_rate": enc.ebe.convergence_rate,
    }


def reproduce_table1(
    n: int, seed: int, noise_levels: Sequence[float], encoder: Encoder, n_bootstrap: int = 1000
) -> dict[str, dict[str, Any]]:
    """Table 1's (η_noisy, η_ebe) row at every noise level, keyed like Table 2's levels."""
    return {
        str(_level_key(noise)): table1_row(make_level(noise, n, seed), encoder, n_bootstrap)
        for noise in noise_levels
    }


def estimator_label(method: str) -> str:
    """Short name of a population fit from its ``method`` text."""
    return "importance sampling" if method.startswith("importance") else "FOCE"


def format_table1(table1: dict[str, dict[str, Any]]) -> str:
    """Plain-text Table 1 rows (η_noisy, η_ebe) with the paper's values and fitted parameters."""
    lines = ["Table 1, (eta_hat, eta_approx): ours / paper, mean [95% bootstrap CI]"]
    for key, row in table1.items():
        paper = row["paper"] or {}
        cells = []
        for m in ("mse", "r2"):
            ours = Estimate(**row[m])
            ref = paper.get(m)
            ref_text = f" / {ref[0]:.4f} [{ref[1]:.4f}, {ref[2]:.4f}]" if ref else ""
            cells.append(f"{m.upper()} {ours:.4f}{ref_text}")
        fp = row["fitted_params"]
        lines.append(f"sigma2={key:>3}: " + "; ".join(cells))
        lines.append(
            f"    {estimator_label(row.get('estimator', ''))} on {row['fit_subjects']} subjects "
            f"(converged={row['fit_converged']}): "
            f"theta={np.round(fp['theta'], 4).tolist()} omega={np.round(fp['omega'], 4).tolist()} "
            f"sigma={fp['sigma']:.5f}; EBE convergence {row['ebe_convergence_rate']:.4%}"
        )
    return "\n".join(lines)


def format_table2(result: dict[str, Any]) -> str:
    """Plain-text Table 2: one row per noise level, ours next to the paper's, per column."""
    cols = result["columns"]
    head = f"{'sigma2':>6} | " + " | ".join(
        f"{c.capitalize() + ' (ours / paper)':^40}" for c in cols
    )
    lines = [
        f"Conditional NLL at the noise-free eta, mean [95% bootstrap CI], "
        f"n={result['n']}, seed={result['seed']}, {result['n_bootstrap']} resamples",
        head,
        "-" * len(head),
    ]
    for key, table in result["levels"].items():
        cells = []
        for c in cols:
            cell = table[c]
            ours = Estimate(**cell["ours"])
            text = f"{ours:.0f}"
            if cell["paper"] is not None:
                p = cell["paper"]
                mark = "" if cell["inside_paper_interval"] else " *"
                mark += " !" if abs(cell["z_vs_paper"]) > 1.96 else ""
                text += f" / {p['value']:.0f} [{p['low']:.0f}, {p['high']:.0f}]{mark}"
            cells.append(f"{text:^40}")
        lines.append(f"{key:>6} | " + " | ".join(cells))
    lines.append(
        "* = our mean lies outside the paper's 95% interval (expected for some cells: that "
        "interval is for the paper's own sample);\n! = the two means differ by more than 1.96 "
        "standard errors of their difference (|z| > 1.96)"
    )
    return "\n".join(lines)


def plot_table2(result: dict[str, Any], path: str) -> None:
    """PNG: NLL per noise level, ours (with intervals) against the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthoct_bench.atomic import save_figure

    keys = list(result["levels"])
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, c in enumerate(result["columns"]):
        cells = [result["levels"][k][c] for k in keys]
        ours = np.array([[d["ours"]["value"], d["ours"]["low"], d["ours"]["high"]] for d in cells])
        line = ax.errorbar(
            x + 0.05 * i,
            ours[:, 0],
            yerr=[ours[:, 0] - ours[:, 1], ours[:, 2] - ours[:, 0]],
            marker="o",
            capsize=3,
            label=f"{c.capitalize()} (ours)",
        )
        paper = [d["paper"]["value"] if d["paper"] else np.nan for d in cells]
        ax.plot(x, paper, "x--", color=line[0].get_color(), label=f"{c.capitalize()} (paper)")
    ax.set_xticks(x, [f"σ²={k}" for k in keys])
    ax.set_ylabel("conditional NLL (mean over subjects)")
    ax.set_title(f"Table 2, NLME-only columns (n={result['n']})")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
