"""The score report: tables like the paper's (with its values beside ours) and a JSON dict.

``ScoreReport.estimates`` holds every metric under a flat name (see
:data:`METRIC_DOC`); ``to_dict()`` nests them into the JSON the CLI writes and
``str(report)`` prints the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthoct_bench.stats import Estimate

__all__ = ["ScoreReport", "PAPER_TABLE1", "PAPER_TABLE2", "METRIC_DOC"]

# Deltadahl et al., Table 1: sigma2 -> (term1, term2) -> ((MSE, low, high), (R2, low, high)).
PAPER_TABLE1: dict[float, dict[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...]]]] = {
    0: {
        ("eta_hat", "eta_pred"): ((0.3993, 0.3973, 0.4014), (0.6007, 0.5990, 0.6025)),
        ("eta_hat", "eta_approx"): ((0.3048, 0.3023, 0.3075), (0.6952, 0.6927, 0.6975)),
        ("eta_approx", "eta_pred"): ((0.2383, 0.2370, 0.2397), (0.6465, 0.6444, 0.6488)),
    },
    1: {
        ("eta_hat", "eta_pred"): ((0.6983, 0.6948, 0.7018), (0.3017, 0.2993, 0.3038)),
        ("eta_hat", "eta_approx"): ((0.3044, 0.3020, 0.3069), (0.6956, 0.6932, 0.6980)),
        ("eta_approx", "eta_pred"): ((0.4691, 0.4667, 0.4716), (0.3042, 0.3012, 0.3072)),
    },
    9: {
        ("eta_hat", "eta_pred"): ((0.9456, 0.9409, 0.9503), (0.0544, 0.0530, 0.0557)),
        ("eta_hat", "eta_approx"): ((0.3052, 0.3027, 0.3075), (0.6948, 0.6927, 0.6972)),
        ("eta_approx", "eta_pred"): ((0.5720, 0.5692, 0.5750), (0.0599, 0.0580, 0.0617)),
    },
    18: {
        ("eta_hat", "eta_pred"): ((0.9729, 0.9680, 0.9775), (0.0271, 0.0261, 0.0281)),
        ("eta_hat", "eta_approx"): ((0.3035, 0.3009, 0.3060), (0.6965, 0.6942, 0.6989)),
        ("eta_approx", "eta_pred"): ((0.6520, 0.6489, 0.6550), (0.0312, 0.0301, 0.0325)),
    },
    49: {
        ("eta_hat", "eta_pred"): ((0.9936, 0.9888, 0.9985), (0.0064, 0.0056, 0.0072)),
        ("eta_hat", "eta_approx"): ((0.3049, 0.3022, 0.3077), (0.6951, 0.6927, 0.6975)),
        ("eta_approx", "eta_pred"): ((0.6657, 0.6623, 0.6688), (0.0124, 0.0116, 0.0132)),
    },
}
#: The paper's fraction of max (ResNet18, η̂ vs η_pred) per σ².
PAPER_FRACTION_OF_MAX: dict[float, float] = {
    0: 0.6007,
    1: 0.6035,
    9: 0.5436,
    18: 0.5149,
    49: 0.3201,
}
# Deltadahl et al., Table 2: sigma2 -> column -> (NLL, low, high).
PAPER_TABLE2: dict[float, dict[str, tuple[float, float, float]]] = {
    0: {
        "true": (-67, -67, -67),
        "predicted": (-59, -60, -59),
        "approximate": (-63, -63, -63),
        "average": (1616, 1587, 1647),
        "random": (2896, 2861, 2934),
    },
    1: {
        "true": (1178, 1159, 1200),
        "predicted": (372, 363, 380),
        "approximate": (1159, 1140, 1178),
        "average": (1616, 1587, 1647),
        "random": (2915, 2874, 2954),
    },
    9: {
        "true": (2299, 2270, 2333),
        "predicted": (1170, 1145, 1194),
        "approximate": (2249, 2214, 2282),
        "average": (1616, 1586, 1645),
        "random": (2899, 2863, 2935),
    },
    18: {
        "true": (2478, 2444, 2510),
        "predicted": (1287, 1260, 1313),
        "approximate": (2430, 2395, 2466),
        "average": (1616, 1586, 1647),
        "random": (2926, 2886, 2968),
    },
    49: {
        "true": (2622, 2586, 2658),
        "predicted": (1410, 1381, 1438),
        "approximate": (2584, 2546, 2620),
        "average": (1616, 1583, 1647),
        "random": (2906, 2868, 2946),
    },
}

#: Flat metric names in ScoreReport.estimates and what they mean.
METRIC_DOC: dict[str, str] = {
    "r2": "R² of eta_pred against eta_hat (the noisy random effects), all dims, one scalar mean",
    "mse": "mean squared error of eta_pred against eta_hat over subjects and dims",
    "fraction_of_max": "r2 / (1/(1+sigma2))",
    "table1/<t1>/<t2>/mse|r2": "Table 1 rows: (eta_hat, eta_pred), (eta_hat, eta_approx), "
    "(eta_approx, eta_pred)",
    "r2_dim<d>": "R² of eta_pred against eta_hat for dim d alone",
    "table2/<column>": "Table 2: mean conditional NLL at the noise-free eta of data simulated "
    "from eta_hat (true), eta_pred (predicted), eta_approx (approximate), 0 (average), "
    "N(0, I) draws (random)",
    "heldout_nll/<column>": "mean conditional NLL of the subject's observations obs_s{k} "
    "under eta_pred (predicted), eta_hat (true), eta_approx (approximate; fitted to these "
    "very observations, so optimistic), 0 (average)",
    "marginal_nll": "probabilistic submissions: mean -log N(obs; f(mu), J S J' + sigma² I), "
    "first-order linearisation at the predicted mean mu",
    "eta_hat_nll": "probabilistic submissions: mean -log N(eta_hat; mu, S)",
}
_TABLE2_ORDER = ("true", "predicted", "approximate", "average", "random")
_HELDOUT_ORDER = ("predicted", "true", "approximate", "average")
_PRED_DEPENDENT = (
    "r2",
    "mse",
    "fraction_of_max",
    "r2_dim",
    "table1/eta_hat/eta_pred",
    "table1/eta_approx/eta_pred",
    "table2/predicted",
    "heldout_nll/predicted",
    "marginal_nll",
    "eta_hat_nll",
)


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

    # -- access ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Estimate:
        return self.estimates[name]

    @property
    def r2(self) -> Estimate:
        return self.estimates["r2"]

    @property
    def fraction_of_max(self) -> Estimate:
        return self.estimates["fraction_of_max"]

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
        t2 = {c: est[f"table2/{c}"].as_dict() for c in _TABLE2_ORDER if f"table2/{c}" in est}
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
        for key in ("marginal_nll", "eta_hat_nll"):
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
                "r2": _est(PAPER_TABLE1[key][("eta_hat", "eta_pred")][1]),
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
            f"{self.n_subjects:,} subjects" + (f", model {self.model}" if self.model else "")
        )
        lines = [head, "=" * len(head)]
        lines.append(
            f"Table 1 ({pct}% bootstrap intervals, {self.n_bootstrap} resamples, seed {self.seed})"
        )
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
                f"{a:<11}{b:<11}{format(e[f'table1/{a}/{b}/mse'], '.4f'):<26}"
                f"{format(e[f'table1/{a}/{b}/r2'], '.4f'):<26}{pm:>10}{pr:>10}"
            )
        paper_frac = f"  (paper {PAPER_FRACTION_OF_MAX[key]:.4f})" if key is not None else ""
        lines.append(
            f"theoretical max 1/(1+sigma2) = {self.theoretical_max:.4f};  fraction of max = "
            f"{e['fraction_of_max']:.4f}{paper_frac}"
        )
        if any(f"table2/{c}" in e for c in _TABLE2_ORDER):
            lines.append("")
            lines.append(
                "Table 2: mean conditional NLL at the noise-free eta of data simulated from"
            )
            lines.append(f"{'column':<13}{'ours':<30}{'paper':<24}")
            for c in _TABLE2_ORDER:
                if f"table2/{c}" not in e:
                    continue
                paper = PAPER_TABLE2[key][c] if key is not None else None
                ptxt = f"{paper[0]:.0f} [{paper[1]:.0f}, {paper[2]:.0f}]" if paper else "-"
                lines.append(f"{c.capitalize():<13}{format(e[f'table2/{c}'], '.1f'):<30}{ptxt:<24}")
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
        if "eta_hat_nll" in e:
            beyond.append(f"Gaussian NLL of eta_hat under N(mu, S): {e['eta_hat_nll']:.3f}")
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
        prov = self.provenance
        if prov:
            lines += [
                "",
                "provenance: "
                + ", ".join(f"{k}={str(v)[:16]}" for k, v in prov.items() if v is not None),
            ]
        return "\n".join(lines)


def pred_dependent(name: str) -> bool:
    """Whether metric ``name`` depends on the submission (a paired difference is meaningful)."""
    return name.startswith(_PRED_DEPENDENT)
