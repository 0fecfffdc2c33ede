"""Plot R² and fraction of the theoretical max across noise levels, one line per model.

The theoretical max curve 1/(1+σ²) and the paper's ResNet18 values are drawn as
references, so a new model's curve reads against both at a glance.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthoct_bench.atomic import save_figure
from synthoct_bench.scoring.report import PAPER_FRACTION_OF_MAX, PAPER_TABLE1, ScoreReport

__all__ = ["plot_reports"]


def _label(report: ScoreReport, index: int) -> str:
    label = report.label
    return f"submission {index + 1}" if label == "submission" else label


def plot_reports(
    reports: Sequence[ScoreReport], path: str | os.PathLike, *, paper: bool = True
) -> Path:
    """Write a PNG with R² (left) and fraction of max (right) against σ², with 95% intervals.

    Reports are grouped into lines by model name (or submission file stem). Written
    atomically; returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not reports:
        raise ValueError("nothing to plot: pass at least one ScoreReport")
    groups: dict[str, list[ScoreReport]] = defaultdict(list)
    for i, rep in enumerate(reports):
        groups[_label(rep, i)].append(rep)

    levels = sorted({float(r.noise) for r in reports} | ({0, 1, 9, 18, 49} if paper else set()))

    # σ² spans 0..49: plot against log(1 + σ²) with σ² tick labels.
    def xpos(s2):
        return np.log1p(np.asarray(s2, dtype=float))

    fig, (ax_r2, ax_frac) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    grid = np.linspace(0, max(levels), 400)
    ax_r2.plot(xpos(grid), 1 / (1 + grid), color="black", lw=1.2, label="theoretical max 1/(1+σ²)")
    ax_frac.axhline(1.0, color="black", lw=1.2, label="theoretical max")
    if paper:
        s2 = sorted(PAPER_TABLE1)
        ax_r2.plot(
            xpos(s2),
            [PAPER_TABLE1[k][("eta_noisy", "eta_pred")][1][0] for k in s2],
            ls="--",
            color="grey",
            marker="x",
            label="paper (ResNet18)",
        )
        ax_frac.plot(
            xpos(s2),
            [PAPER_FRACTION_OF_MAX[k] for k in s2],
            ls="--",
            color="grey",
            marker="x",
            label="paper (ResNet18)",
        )
    for name, reps in groups.items():
        reps = sorted(reps, key=lambda r: r.noise)
        x = xpos([r.noise for r in reps])
        for ax, key in ((ax_r2, "r2"), (ax_frac, "fraction_of_max")):
            est = [r.estimates[key] for r in reps]
            val = np.array([e.value for e in est])
            err = np.array([[e.value - e.low for e in est], [e.high - e.value for e in est]])
            ax.errorbar(x, val, yerr=err, marker="o", capsize=3, label=name)
    for ax, title in ((ax_r2, "R² (η̂ vs η_pred)"), (ax_frac, "fraction of theoretical max")):
        ax.set_xticks(xpos(levels))
        ax.set_xticklabels([f"{s:g}" for s in levels])
        ax.set_xlabel("noise level σ²")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_r2.set_ylim(bottom=min(0.0, ax_r2.get_ylim()[0]))
    n_boot = {r.n_bootstrap for r in reports}
    fig.suptitle(
        f"synthoct-bench scores (95% bootstrap intervals, {'/'.join(map(str, n_boot))} resamples)"
    )
    return save_figure(fig, path)
