"""The main job: the whole benchmark end to end on a CPU in minutes.

:func:`run_demo` builds a small phantom dataset (``mini``'s 1,900 training
subjects, with larger validation and test splits: :data:`DEMO_SPLITS`) (images, NLME observations
and their empirical Bayes targets at every noise level), trains the paper's
ResNet18 briefly at every level, writes a submission for every baseline
(average, random, oracle upper bound, resnet18) and level, scores them all
with the benchmark's scorer, and returns one :class:`DemoResult` that prints
the paper's Tables 1 and 2 for this run beside the paper's figures, and plots
R² and fraction of max across noise levels.

Everything lands under ``out``: ``data/`` (the dataset), ``submissions/``,
``resnet18/s{k}/`` (checkpoints and model), ``scores/`` (one JSON report per
submission), ``results.json`` and ``results.png``.

The CPU run trains at a reduced input resolution and for a few epochs, so its
ResNet18 is far from the paper's (950k images, full resolution, a GPU); the
printout says so. The ordering oracle > ResNet18 > average > random in R² and
the fall of R² with noise are checked and reported, not assumed.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from synthoct_bench.atomic import save_figure, to_jsonable, write_json
from synthoct_bench.latent import NOISE_LEVELS, theoretical_max_r2
from synthoct_bench.paper import paper_symbol

__all__ = ["DemoConfig", "DemoResult", "run_demo", "DEMO_PHANTOM", "DEMO_SPLITS"]

#: Baselines in the order the tables list them.
DEMO_BASELINES: tuple[str, ...] = ("oracle", "resnet18", "average", "random")

#: Phantom settings of the demo (passed to the build as generator_kwargs). The
#: phantom's defaults: η drives vertical position, tilt and luminance, partly
#: masked by nuisance jitter of the same features.
DEMO_PHANTOM: dict[str, Any] = {}

#: Split sizes of the demo's dataset when neither ``n`` nor ``preset`` is given: the
#: ``mini`` training split, with validation and test splits large enough to resolve
#: R² of a few hundredths (the oracle's ceiling at σ² = 49 is 0.02; with the 100 / 200
#: subjects of ``mini`` even the oracle's interval includes 0 there). Extra validation
#: and test subjects cost rendering and EBEs, not training time.
DEMO_SPLITS: dict[str, int] = {"train": 1900, "validation": 1000, "test": 4000}


@dataclass
class DemoConfig:
    """Settings of the demo; the defaults run in well under 10 minutes on 2 CPU cores."""

    out: str = "runs/demo"
    preset: str | None = None  # a dataset preset (mini, small, ...) instead of ``splits``
    n: int | None = None  # subjects in all, 950:50:100 (overrides the preset)
    splits: dict[str, int] = field(default_factory=lambda: dict(DEMO_SPLITS))  # if no n/preset
    fit_subjects: int = 1000  # training subjects in each level's FOCE fit
    data: str | None = None  # an existing dataset (folder or Hub id): skip the build
    noise_levels: tuple[int, ...] = NOISE_LEVELS
    epochs: int = 3
    input_size: int = 48  # ResNet18 input side for this run
    image_size: int = 224  # side of the images the dataset stores
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    n_bootstrap: int = 1000
    workers: int = 2  # dataset build worker processes (this machine has 2 cores)
    device: str = "auto"
    amp: bool | None = None  # ResNet18 mixed precision (None: bf16 where native)
    resume: bool = False
    progress: bool = True
    generator_kwargs: dict[str, Any] = field(default_factory=lambda: dict(DEMO_PHANTOM))


@dataclass
class DemoResult:
    """Scores of every baseline at every level, with the run's settings and timings."""

    config: DemoConfig
    rows: list[dict[str, Any]]
    reports: dict[tuple[int, str], dict[str, Any]]
    timings: dict[str, float]
    checks: dict[str, Any]
    dataset: dict[str, Any]
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["noise_levels"] = list(cfg["noise_levels"])
        return {
            "results": self.rows,
            "checks": self.checks,
            "timings_s": self.timings,
            "config": cfg,
            "dataset": self.dataset,
            "plot": self.plot,
        }

    # ------------------------------------------------------------------ text
    def format_tables(self) -> str:
        """Table 1 (ResNet18) and Table 2 of this run beside the paper's, plus all baselines."""
        c = self.config
        levels = list(c.noise_levels)
        lines: list[str] = []
        head = (
            f"synthoct demo: {self.dataset.get('n_test', '?')} test subjects, "
            f"{self.dataset.get('generator', '?')} images, "
            f"ResNet18 trained {c.epochs} epoch(s) at {c.input_size}x{c.input_size} px on "
            f"{self.dataset.get('n_train', '?')} images per level"
        )
        lines += [head, "=" * len(head)]
        lines.append(
            "A CPU demo: the paper trained at 224 px on 950k images with a GPU; expect its "
            "ResNet18 to be weaker here. Intervals: 95% bootstrap over test subjects, "
            f"{c.n_bootstrap} resamples."
        )
        lines += ["", "R2 of eta_pred against eta_hat (all baselines)"]
        lines.append(
            f"{'sigma2':>6}  {'max':>6}  "
            + "".join(f"{b:>28}" for b in DEMO_BASELINES)
            + f"{'paper ResNet18':>16}"
        )
        for k in levels:
            cells = []
            for b in DEMO_BASELINES:
                rep = self.reports.get((k, b))
                cells.append(f"{_fmt(rep['r2']) if rep else '-':>28}")
            paper = _paper(self.reports, k, "r2")
            lines.append(
                f"{k:>6}  {theoretical_max_r2(k):>6.4f}  " + "".join(cells) + f"{paper:>16}"
            )
        lines += ["", "Table 1 (ResNet18): this run | paper"]
        lines.append(
            f"{'sigma2':>6}  {'Term 1':<11}{'Term 2':<11}{'MSE':<26}{'R2':<26}"
            f"{'max':>7}{'frac':>8}  {'paper MSE':>9}{'paper R2':>9}{'frac':>8}"
        )
        for k in levels:
            rep = self.reports.get((k, "resnet18"))
            if not rep:
                continue
            paper = rep.get("paper") or {}
            prow = {(r["term1"], r["term2"]): r for r in paper.get("table1", [])}
            for i, row in enumerate(rep.get("table1", [])):
                pr = prow.get((row["term1"], row["term2"]))
                first = i == 0
                tmax = f"{rep['theoretical_max']['value']:.4f}" if first else ""
                frac = f"{rep['fraction_of_max']['value']:.4f}" if first else ""
                pfrac = f"{paper['fraction_of_max']:.4f}" if first and paper else ""
                pmse = f"{pr['mse']['value']:.4f}" if pr else "-"
                pr2 = f"{pr['r2']['value']:.4f}" if pr else "-"
                lines.append(
                    f"{(str(k) if first else ''):>6}  "
                    f"{paper_symbol(row['term1']):<11}{paper_symbol(row['term2']):<11}"
                    f"{_fmt(row['mse']):<26}{_fmt(row['r2']):<26}{tmax:>7}{frac:>8}  "
                    f"{pmse:>9}{pr2:>9}{pfrac:>8}"
                )
        cols = ("true", "predicted", "approximate", "average", "random")
        lines += [
            "",
            "Table 2: mean conditional NLL at the noise-free eta of data simulated from "
            "eta_hat (True), the ResNet18's eta_pred (Predicted), eta_approx, 0, N(0, I)",
        ]
        lines.append(f"{'sigma2':>6}  " + "".join(f"{x.capitalize():>24}" for x in cols))
        for k in levels:
            rep = self.reports.get((k, "resnet18"))
            if not rep or "table2" not in rep:
                continue
            ours = "".join(f"{_fmt(rep['table2'][x], '.0f'):>24}" for x in cols)
            lines.append(f"{k:>6}  {ours}")
            paper = (rep.get("paper") or {}).get("table2")
            if paper:
                lines.append(
                    f"{'paper':>6}  " + "".join(f"{_fmt(paper[x], '.0f'):>24}" for x in cols)
                )
        lines += ["", "Checks"]
        for name, value in self.checks.items():
            if isinstance(value, dict) and "ok" in value:
                lines.append(f"  {'ok  ' if value['ok'] else 'FAIL'} {name}: {value['detail']}")
        t = self.timings
        lines += [
            "",
            "Time: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in t.items())
            + (f"\nPlot: {self.plot}" if self.plot else ""),
        ]
        return "\n".join(lines)


def _fmt(est: dict[str, float] | None, spec: str = ".4f") -> str:
    if not est:
        return "-"
    return f"{est['value']:{spec}} [{est['low']:{spec}}, {est['high']:{spec}}]"


def _paper(reports: dict, k: int, key: str) -> str:
    rep = reports.get((k, "resnet18")) or reports.get((k, "oracle")) or {}
    paper = rep.get("paper")
    if not paper:
        return "-"
    return f"{paper[key]['value']:.4f}"


# ---------------------------------------------------------------------- pipeline
def _log(stream: TextIO | None, msg: str) -> None:
    if stream is not None:
        print(msg, file=stream, flush=True)


def run_demo(config: DemoConfig | None = None, log: TextIO | None = sys.stderr) -> DemoResult:
    """Build, train, predict, score and plot; see the module docstring."""
    from synthoct_bench.baselines.run import predict_trivial, read_images, read_targets
    from synthoct_bench.baselines.training import ResNet18Baseline
    from synthoct_bench.dataset import build
    from synthoct_bench.devices import resolve_device
    from synthoct_bench.scoring import score, write_submission

    c = config or DemoConfig()
    resolve_device(c.device)  # before the build, not after it
    levels = tuple(int(k) for k in c.noise_levels)
    if not levels:
        raise ValueError("give at least one noise level, e.g. --noise-levels 0,9,49")
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    # 1. the dataset: phantom images, NLME observations and EBE targets per level
    t0 = time.perf_counter()
    if c.data is not None:
        from synthoct_bench.dataset import read_metadata

        data = c.data  # a folder or a Hub repo id: read_metadata tells which, and checks it
        meta = read_metadata(data)
        for k in levels:
            meta.check_noise(k)
    if c.data is None:  # a build that cannot fit: refused before anything is removed
        from synthoct_bench.dataset.build import check_build_fits
        from synthoct_bench.dataset.layout import explicit_split_sizes, resolve_splits

        if c.n is None and c.preset is None:
            sizes = explicit_split_sizes(c.splits)
        else:
            sizes = resolve_splits(c.preset, c.n)
        check_build_fits(data, sum(sizes.values()), c.image_size)
    if not c.resume:
        stale = [out / "resnet18", out / "submissions", out / "scores"]
        for path in stale + ([data] if c.data is None else []):
            if path.exists():
                shutil.rmtree(path)
    if c.data is not None:
        _log(log, f"[1/4] using the existing dataset in {data}")
        summary = None
    else:
        _log(log, f"[1/4] building the dataset in {data} ...")
        summary = build(
            data,
            preset=c.preset,
            n=c.n,
            splits=c.splits if c.n is None and c.preset is None else None,
            fit_subjects=c.fit_subjects,
            generator="phantom",
            generator_kwargs=dict(c.generator_kwargs) or None,
            image_size=c.image_size,
            noise_levels=levels,
            seed=c.seed,
            workers=c.workers,
            resume=c.resume,
            progress=c.progress,
        )
    timings["build"] = time.perf_counter() - t0

    # 2. images once (shared by every level), at the training resolution
    t0 = time.perf_counter()
    X_train = read_images(data, "train", c.input_size)
    X_val = read_images(data, "validation", c.input_size)
    X_test = read_images(data, "test", c.input_size)
    timings["load"] = time.perf_counter() - t0
    from synthoct_bench.dataset import read_metadata

    meta = read_metadata(data)  # what was built (an existing --data may be any generator)
    dataset = {
        "path": str(data),
        "n_train": int(X_train["image"].shape[0]),
        "n_validation": int(X_val["image"].shape[0]),
        "n_test": int(X_test["image"].shape[0]),
        "image_size": meta.image_size,
        "input_size": c.input_size,
        "generator": meta.generator.name,
        "generator_kwargs": to_jsonable(dict(meta.generator.kwargs)),
        "build": to_jsonable(asdict(summary)) if summary is not None else {},
    }

    # 3. every baseline at every level -> submissions
    t0 = time.perf_counter()
    subs = out / "submissions"
    submissions: dict[tuple[int, str], Path] = {}
    histories: dict[int, Any] = {}
    for i, k in enumerate(levels):
        _log(log, f"[2/4] sigma2={k} ({i + 1}/{len(levels)}): training ResNet18 ...")
        y_train = read_targets(data, "train", k, X_train["subject_id"])
        y_val = read_targets(data, "validation", k, X_val["subject_id"])
        work = out / "resnet18" / f"s{k}"
        model = ResNet18Baseline(
            epochs=c.epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            input_size=c.input_size,
            seed=c.seed,
            device=c.device,
            amp=c.amp,
            progress=c.progress,
            checkpoint_dir=work / "checkpoints",
        )
        model.fit(X_train, y_train, eval_set=(X_val, y_val), resume=True)
        model.save_pretrained(work / "model")
        histories[k] = {"history": model.history_, "calibration": model.calibration_}
        path = subs / f"resnet18_s{k}.parquet"
        pred = model.predict(X_test)
        write_submission(
            path, X_test["subject_id"], pred, noise=k, split="test", dataset=data, model="resnet18"
        )
        submissions[(k, "resnet18")] = path
        for name in ("oracle", "average", "random"):
            ids, pred = predict_trivial(name, data, k, "test", seed=c.seed)
            path = subs / f"{name}_s{k}.parquet"
            write_submission(path, ids, pred, noise=k, split="test", dataset=data, model=name)
            submissions[(k, name)] = path
    timings["train_predict"] = time.perf_counter() - t0

    # 4. score everything with the benchmark's scorer
    t0 = time.perf_counter()
    _log(log, f"[3/4] scoring {len(submissions)} submissions ...")
    reports: dict[tuple[int, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for k in levels:
        for name in DEMO_BASELINES:
            report = score(
                submissions[(k, name)], data, k, "test", n_bootstrap=c.n_bootstrap, seed=c.seed
            )
            d = report.to_dict()
            reports[(k, name)] = d
            write_json(out / "scores" / f"{name}_s{k}.json", d)
            rows.append(
                {
                    "noise": k,
                    "baseline": name,
                    "r2": d["r2"]["value"],
                    "r2_low": d["r2"]["low"],
                    "r2_high": d["r2"]["high"],
                    "fraction_of_max": d["fraction_of_max"]["value"],
                    "theoretical_max": d["theoretical_max"]["value"],
                    "mse": d["mse"]["value"],
                    "upper_bound": name == "oracle",
                    "paper_r2": (d.get("paper") or {}).get("r2", {}).get("value")
                    if name == "resnet18"
                    else None,
                }
            )
    timings["score"] = time.perf_counter() - t0

    checks = check_ordering(rows, levels)
    checks["resnet18_training"] = {str(k): v for k, v in histories.items()}
    _log(log, "[4/4] plotting ...")
    result = DemoResult(c, rows, reports, timings, checks, dataset)
    result.plot = str(plot_results(rows, levels, out / "results.png", c))
    timings["total"] = time.perf_counter() - t_all
    write_json(out / "results.json", result.to_dict())
    (out / "results.txt").write_text(result.format_tables() + "\n")
    return result


def check_ordering(rows: list[dict[str, Any]], levels: tuple[int, ...]) -> dict[str, Any]:
    """oracle > resnet18 > average > random in R² at every level; R² falls with noise."""
    r2 = {(r["noise"], r["baseline"]): r["r2"] for r in rows}
    bad = []
    for k in levels:
        chain = [r2[(k, b)] for b in DEMO_BASELINES]
        if not all(a > b for a, b in zip(chain, chain[1:], strict=False)):
            bad.append(f"sigma2={k}: " + " > ".join(f"{v:.4f}" for v in chain))
    ordering = {
        "ok": not bad,
        "detail": "oracle > resnet18 > average > random in R2 at every level"
        + ("" if not bad else "; violated at " + "; ".join(bad)),
    }
    falls = {}
    ordered = sorted(levels)
    for b in ("oracle", "resnet18"):
        seq = [r2[(k, b)] for k in ordered]
        falls[b] = all(a > c for a, c in zip(seq, seq[1:], strict=False))
    falling = {
        "ok": all(falls.values()),
        "detail": "R2 falls as sigma2 grows: "
        + ", ".join(f"{b} {'yes' if v else 'NO'}" for b, v in falls.items()),
    }
    return {"ordering": ordering, "r2_falls_with_noise": falling}


def plot_results(
    rows: list[dict[str, Any]], levels: tuple[int, ...], path: Path, config: DemoConfig
) -> Path:
    """Two panels across noise levels: R² (with 1/(1+σ²)) and fraction of max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(levels)
    xs = np.arange(len(ordered))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(
        xs,
        [theoretical_max_r2(k) for k in ordered],
        "k--",
        lw=1.5,
        label="theoretical max 1/(1+σ²)",
    )
    styles = {"oracle": "C2", "resnet18": "C0", "average": "C7", "random": "C3"}
    for b in DEMO_BASELINES:
        sel = {r["noise"]: r for r in rows if r["baseline"] == b}
        ys = np.array([sel[k]["r2"] for k in ordered])
        lo = np.array([sel[k]["r2_low"] for k in ordered])
        hi = np.array([sel[k]["r2_high"] for k in ordered])
        label = b + (" (upper bound)" if b == "oracle" else "")
        ax1.errorbar(
            xs, ys, yerr=[ys - lo, hi - ys], marker="o", capsize=3, color=styles[b], label=label
        )
        if b == "random":  # fraction of max = -(1+sigma2): off any useful scale
            continue
        ax2.plot(
            xs,
            [sel[k]["fraction_of_max"] for k in ordered],
            marker="o",
            color=styles[b],
            label=label,
        )
    paper = {r["noise"]: r["paper_r2"] for r in rows if r["baseline"] == "resnet18"}
    if all(paper.get(k) is not None for k in ordered):
        ax1.plot(xs, [paper[k] for k in ordered], "x:", color="C0", label="paper ResNet18")
        ax2.plot(
            xs,
            [paper[k] / theoretical_max_r2(k) for k in ordered],
            "x:",
            color="C0",
            label="paper ResNet18",
        )
    for ax, title in ((ax1, "R² against η̂ (test)"), (ax2, "fraction of max")):
        ax.set_xticks(xs, [str(k) for k in ordered])
        ax.set_xlabel("noise level σ²")
        ax.set_title(title)
        ax.axhline(0, color="0.8", lw=0.8)
        ax.grid(alpha=0.3)
    ax1.set_ylim(-1.15, 1.05)
    # the oracle's fraction of max scatters around 1 by sampling (above it at high noise)
    fractions = [r["fraction_of_max"] for r in rows if r["baseline"] != "random"]
    ax2.set_ylim(-1.15, max(1.15, max(fractions, default=1.0) + 0.1))
    ax1.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 0.3))
    fig.suptitle(
        f"synthoct demo: phantom, {config.input_size} px, {config.epochs} epoch(s) per level",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)
