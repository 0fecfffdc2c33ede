"""The score report: tables like the paper's (with its values beside ours) and a JSON dict.

``ScoreReport.estimates`` holds every metric under a flat name (see
:data:`METRIC_DOC`); ``to_dict()`` nests them into the JSON the CLI writes and
``str(report)`` prints the tables. A report of several training seeds of one model
also holds, per submission-dependent metric, each seed's value with their mean and
sample SD (:class:`SeedSpread`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthoct_bench.paper import (
    PAPER_FRACTION_OF_MAX,
    PAPER_TABLE1,
    PAPER_TABLE2,
    TABLE2_COLUMNS,
    paper_symbol,
)
from synthoct_bench.stats import Estimate

__all__ = ["ScoreReport", "SeedSpread", "METRIC_DOC", "metric_label"]

#: Flat metric names in ScoreReport.estimates and what they mean.
METRIC_DOC: dict[str, str] = {
    "r2": "R² of eta_pred against eta_noisy (the noisy random effects), all dims, one scalar mean",
    "mse": "mean squared error of eta_pred against eta_noisy over subjects and dims",
    "fraction_of_max": "r2 / (1/(1+sigma2))",
    "table1/<t1>/<t2>/mse|r2": "Table 1 rows: (eta_noisy, eta_pred), (eta_noisy, eta_ebe), "
    "(eta_ebe, eta_pred)",
    "r2_dim<d>": "R² of eta_pred against eta_noisy for dim d alone",
    "table2/<column>": "Table 2: mean conditional NLL at the noise-free eta of data simulated "
    "from eta_noisy (true), eta_pred (predicted), eta_ebe (approximate), 0 (average), "
    "N(0, I) draws (random)",
    "heldout_nll/<column>": "mean conditional NLL of the subject's observations obs_s{k} "
    "under eta_pred (predicted), eta_noisy (true), eta_ebe (approximate; fitted to these "
    "very observations, so optimistic), 0 (average)",
    "marginal_nll": "probabilistic submissions: mean -log N(obs; f(mu), J S J' + sigma² I), "
    "first-order linearisation at the predicted mean mu",
    "eta_noisy_nll": "probabilistic submissions: mean -log N(eta_noisy; mu, S)",
}
_HELDOUT_ORDER = ("predicted", "true", "approximate", "average")
_PRED_DEPENDENT = (
    "r2",
    "mse",
    "fraction_of_max",
    "r2_dim",
    "table1/eta_noisy/eta_pred",
    "table1/eta_ebe/eta_pred",
    "table2/predicted",
    "heldout_nll/predicted",
    "marginal_nll",
    "eta_noisy_nll",
)


@dataclass(frozen=True)
class SeedSpread:
    """One metric over training seeds: each seed's value, their mean and sample SD."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def sd(self) -> float:
        """Sample standard deviation (n - 1 in the denominator); 0 for one seed."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "values": list(self.values)}

    def __format__(self, spec: str) -> str:
        spec = spec or ".4f"
        return f"{self.mean:{spec}} ± {self.sd:{spec}}"


def metric_label(name: str) -> str:
    """A flat metric name in the paper's symbols, for printed tables."""
    if name.startswith("table1/"):
        _, a, b, m = name.split("/")
        return f"{m.upper()} ({paper_symbol(a)}, {paper_symbol(b)})"
    if name.startswith("table2/"):
        return f"Table 2 {name.split('/')[1].capitalize()} NLL"
    if name.startswith("heldout_nll/"):
        return f"held-out NLL under {name.split('/')[1]}"
    if name.startswith("r2_dim"):
        return f"R2 dim {name[len('r2_dim') :]} (eta_hat, eta_pred)"
    return {
        "r2": "R2 (eta_hat, eta_pred)",
        "mse": "MSE (eta_hat, eta_pred)",
        "fraction_of_max": "fraction of max",
        "marginal_nll": "marginal NLL of obs",
        "eta_noisy_nll": "Gaussian NLL of eta_hat",
    }.get(name, name)


def _paper_key(noise: float) -> float | None:
    for k in PAPER_TABLE1:
        if abs(float(k) - float(noise)) < 1e-9:
            return k
    return None


def _est(values: tuple[float, ...]) -> dict[str, float]:
    return {"value": values[0], "low": values[1], "high": values[2]}


@dataclass
class ScoreReport:
    """Every metric of one submission at one noise level and split, with 95% intervals."""

    noise: float
    split: str | None
    n_subjects: int
    theoretical_max: float
    estimates: dict[str, Estimate]
    n_bootstrap: int
    seed: int
    level: float = 0.95
    model: str | None = None
    probabilistic: bool = False
    nll_params: str | None = None
    marginal_method: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Paired comparison: the other submission's metrics and (this - other) differences.
    other: dict[str, Estimate] | None = None
    difference: dict[str, Estimate] | None = None
    other_info: dict[str, Any] | None = None
    #: What could not be checked (a submission without level, split or dataset
    #: fingerprint; data read without verification): the report's first lines.
    unchecked: list[str] = field(default_factory=list)
    #: What the figures cannot tell (e.g. an R² interval too wide to separate the model
    #: from the average baseline): printed after the unchecked items.
    warnings: list[str] = field(default_factory=list)
    #: The submission file(s) scored: source, sha256, model and what each records.
    submissions: list[dict[str, Any]] = field(default_factory=list)
    #: Several training seeds of one model: ``estimates`` then bootstrap the seed mean,
    #: and this holds each submission-dependent metric's per-seed values, mean and SD.
    across_seeds: dict[str, SeedSpread] = field(default_factory=dict)

    # -- access ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Estimate:
        return self.estimates[name]

    @property
    def r2(self) -> Estimate:
        return self.estimates["r2"]

    @property
    def fraction_of_max(self) -> Estimate:
        return self.estimates["fraction_of_max"]

    @property
    def n_seeds(self) -> int:
        """Training seeds averaged in this report (1 for a single submission)."""
        spread = next(iter(self.across_seeds.values()), None)
        return len(spread.values) if spread is not None else 1

    @property
    def label(self) -> str:
        """The model name the submission records, else its file's stem."""
        if self.model:
            return self.model
        source = self.submissions[0].get("source") if self.submissions else None
        if source and not str(source).startswith("<"):
            return Path(source).stem
        return "submission"

    # -- JSON -----------------------------------------------------------------------------
    def _nested(self, est: dict[str, Estimate]) -> dict[str, Any]:
        """Nest the flat estimates into the JSON layout."""
        out: dict[str, Any] = {}
        for key in ("r2", "mse", "fraction_of_max"):
            if key in est:
                out[key] = est[key].as_dict()
        t1 = []
        for a, b in PAPER_TABLE1[0]:
            if f"table1/{a}/{b}/r2" in est:
                t1.append(
                    {
                        "term1": a,
                        "term2": b,
                        "mse": est[f"table1/{a}/{b}/mse"].as_dict(),
                        "r2": est[f"table1/{a}/{b}/r2"].as_dict(),
                    }
                )
        if t1:
            out["table1"] = t1
        t2 = {c: est[f"table2/{c}"].as_dict() for c in TABLE2_COLUMNS if f"table2/{c}" in est}
        if t2:
            out["table2"] = t2
        beyond: dict[str, Any] = {}
        dims = [est[f"r2_dim{d}"].as_dict() for d in (1, 2, 3) if f"r2_dim{d}" in est]
        if dims:
            beyond["r2_per_dim"] = dims
        held = {
            c: est[f"heldout_nll/{c}"].as_dict()
            for c in _HELDOUT_ORDER
            if f"heldout_nll/{c}" in est
        }
        if held:
            beyond["heldout_nll"] = held
        for key in ("marginal_nll", "eta_noisy_nll"):
            if key in est:
                beyond[key] = est[key].as_dict()
        if beyond:
            out["beyond_paper"] = beyond
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: headline keys r2, mse, theoretical_max, fraction_of_max first."""
        tmax = {
            "value": self.theoretical_max,
            "low": self.theoretical_max,
            "high": self.theoretical_max,
        }
        body = self._nested(self.estimates)
        out: dict[str, Any] = {
            "noise": self.noise,
            "split": self.split,
            "model": self.model,
            "unchecked": list(self.unchecked),
            "warnings": list(self.warnings),
            "n_subjects": self.n_subjects,
            "r2": body.pop("r2"),
            "mse": body.pop("mse"),
            "theoretical_max": tmax,
            "fraction_of_max": body.pop("fraction_of_max"),
            **body,
            "probabilistic": self.probabilistic,
            "nll_params": self.nll_params,
            "marginal_nll_method": self.marginal_method,
            "bootstrap": {
                "n_resamples": self.n_bootstrap,
                "seed": self.seed,
                "level": self.level,
                "method": "percentile; resamples subjects; all metrics on the same resamples",
            },
            "provenance": dict(self.provenance),
            "submissions": [dict(sub) for sub in self.submissions],
            "seeds": None,
        }
        if self.across_seeds:
            out["seeds"] = {
                "n": self.n_seeds,
                "note": "each seed's score, their mean and sample SD (n - 1); the intervals "
                "above bootstrap the mean over seeds (all seeds on the same resamples)",
                "metrics": {k: v.as_dict() for k, v in self.across_seeds.items()},
            }
        if self.other is not None and self.difference is not None:
            out["comparison"] = {
                "other": dict(self.other_info or {}),
                "other_metrics": self._nested(self.other),
                "difference": {k: v.as_dict() for k, v in self.difference.items()},
                "note": "difference = this submission minus the other, paired bootstrap "
                "(same subjects, same resamples); an interval excluding 0 is a significant "
                "difference at the stated level",
            }
        key = _paper_key(self.noise)
        if key is not None:
            out["paper"] = {
                "r2": _est(PAPER_TABLE1[key][("eta_noisy", "eta_pred")][1]),
                "fraction_of_max": PAPER_FRACTION_OF_MAX[key],
                "table1": [
                    {"term1": a, "term2": b, "mse": _est(v[0]), "r2": _est(v[1])}
                    for (a, b), v in PAPER_TABLE1[key].items()
                ],
                "table2": {c: _est(v) for c, v in PAPER_TABLE2[key].items()},
                "source": "Deltadahl et al., Tables 1 and 2 (ResNet18, 100k test subjects)",
            }
        return out

    # -- text -----------------------------------------------------------------------------
    def __str__(self) -> str:
        e = self.estimates
        key = _paper_key(self.noise)
        pct = int(round(self.level * 100))
        head = (
            f"synthoct-bench score: sigma2={self.noise:g}, split {self.split or '?'}, "
            f"{self.n_subjects:,} subjects"
            + (f", model {self.model}" if self.model else "")
            + (f", {self.n_seeds} training seeds" if self.across_seeds else "")
        )
        lines = [head, "=" * len(head)]
        for item in self.unchecked:
            lines.append(f"NOT CHECKED: {item}")
        for item in self.warnings:
            lines.append(f"WARNING: {item}")
        if self.unchecked or self.warnings:
            lines.append("")
        lines.append(
            f"Table 1 ({pct}% bootstrap intervals, {self.n_bootstrap} resamples, seed {self.seed})"
        )
        if self.across_seeds:
            lines.append(f"  (every value: the mean over {self.n_seeds} training seeds)")
        lines.append("  (the paper's symbols: eta_hat = column eta_noisy, eta_approx = eta_ebe)")
        lines.append(
            f"{'Term 1':<11}{'Term 2':<11}{'MSE':<26}{'R2':<26}{'paper MSE':>10}{'paper R2':>10}"
        )
        for a, b in PAPER_TABLE1[0]:
            if f"table1/{a}/{b}/r2" not in e:
                continue
            paper = PAPER_TABLE1[key][(a, b)] if key is not None else None
            pm = f"{paper[0][0]:.4f}" if paper else "-"
            pr = f"{paper[1][0]:.4f}" if paper else "-"
            lines.append(
                f"{paper_symbol(a):<11}{paper_symbol(b):<11}"
                f"{format(e[f'table1/{a}/{b}/mse'], '.4f'):<26}"
                f"{format(e[f'table1/{a}/{b}/r2'], '.4f'):<26}{pm:>10}{pr:>10}"
            )
        paper_frac = f"  (paper {PAPER_FRACTION_OF_MAX[key]:.4f})" if key is not None else ""
        lines.append(
            f"theoretical max 1/(1+sigma2) = {self.theoretical_max:.4f};  fraction of max = "
            f"{e['fraction_of_max']:.4f}{paper_frac}"
        )
        if any(f"table2/{c}" in e for c in TABLE2_COLUMNS):
            lines.append("")
            lines.append(
                "Table 2: mean conditional NLL at the noise-free eta of data simulated from"
            )
            lines.append(f"{'column':<13}{'ours':<30}{'paper':<24}")
            for c in TABLE2_COLUMNS:
                if f"table2/{c}" not in e:
                    continue
                paper = PAPER_TABLE2[key][c] if key is not None else None
                ptxt = f"{paper[0]:.0f} [{paper[1]:.0f}, {paper[2]:.0f}]" if paper else "-"
                lines.append(f"{c.capitalize():<13}{format(e[f'table2/{c}'], '.1f'):<30}{ptxt:<24}")
        if self.across_seeds:
            lines += [
                "",
                f"Across {self.n_seeds} training seeds: mean ± sample SD of each seed's score "
                "(the intervals above bootstrap the seed mean)",
            ]
            for k, v in self.across_seeds.items():
                spec = ".1f" if k.startswith(("table2/", "heldout_nll/", "marginal_nll")) else ".4f"
                lines.append(f"  {metric_label(k):<32}{format(v, spec)}")
        beyond = []
        dims = [f"{e[f'r2_dim{d}'].value:.4f}" for d in (1, 2, 3) if f"r2_dim{d}" in e]
        if dims:
            beyond.append(f"R2 per dim (eta_hat, eta_pred): {', '.join(dims)}")
        for c in _HELDOUT_ORDER:
            if f"heldout_nll/{c}" in e:
                beyond.append(f"held-out NLL of obs under {c:<12} {e[f'heldout_nll/{c}']:.1f}")
        if self.nll_params and any(k.startswith("heldout") for k in e):
            beyond.append(f"  (NLME parameters: {self.nll_params})")
        if "marginal_nll" in e:
            beyond.append(f"marginal NLL of obs (probabilistic): {e['marginal_nll']:.1f}")
            beyond.append(f"  ({self.marginal_method})")
        if "eta_noisy_nll" in e:
            beyond.append(f"Gaussian NLL of eta_hat under N(mu, S): {e['eta_noisy_nll']:.3f}")
        if beyond:
            lines += ["", "Beyond the paper"] + beyond
        if self.difference:
            label = (self.other_info or {}).get("model") or (self.other_info or {}).get("source")
            lines += ["", f"Paired comparison: this minus {label or 'the other submission'}"]
            for k, v in self.difference.items():
                sig = "" if v.low <= 0 <= v.high else "  *"
                spec = "+.1f" if abs(v.value) >= 100 else "+.4f"
                lines.append(f"  {k:<32}{format(v, spec)}{sig}")
            lines.append("  (* interval excludes 0)")
        prov = {k: v for k, v in self.provenance.items() if v is not None}
        if prov:
            lines += ["", "provenance"]
            lines += [f"  {k}: {v}" for k, v in prov.items()]
        for i, sub in enumerate(self.submissions):
            label = f"submission {i + 1}" if len(self.submissions) > 1 else "submission"
            lines.append(f"  {label}: {sub.get('source')} (sha256 {sub.get('sha256')})")
        return "\n".join(lines)


def pred_dependent(name: str) -> bool:
    """Whether metric ``name`` depends on the submission (a paired difference is meaningful)."""
    return name.startswith(_PRED_DEPENDENT)
