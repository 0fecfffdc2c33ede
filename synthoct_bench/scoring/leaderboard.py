"""What a score hands to a leaderboard: one JSON schema, a summary table, an entry, a card.

    payload = reports_payload(reports)       # {"schema_version": 1, "reports": [...]}
    print(format_summary(reports))           # one row per noise level, per model
    entry = leaderboard_entry(reports)       # one model: one JSON line for a leaderboard
    text = model_index_yaml(reports, dataset_id="ORG/NAME")   # a model card's model-index

Reports come from :func:`synthoct_bench.scoring.score` (one per noise level; a report may
average several training seeds of one model). Everything here sorts levels numerically
and reads only :class:`~synthoct_bench.scoring.report.ScoreReport` fields, so the JSON
the CLI writes, the summary it prints and the entry it saves always agree.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthoct_bench.paper import paper_symbol
from synthoct_bench.scoring.report import ScoreReport, SeedSpread

__all__ = [
    "SCHEMA_VERSION",
    "RECOMMENDED_SEEDS",
    "sort_reports",
    "reports_payload",
    "format_summary",
    "leaderboard_entry",
    "entry_line",
    "model_index",
    "model_index_yaml",
]

#: Version of the score JSON (``reports_payload``) and of a leaderboard entry. Raise it
#: when a key is renamed or removed; adding keys keeps it.
SCHEMA_VERSION = 1
#: Training seeds a result should average (RULES.md); fewer is flagged, not refused.
RECOMMENDED_SEEDS = 3
#: The model-index task: the dataset card's task category, and what the model does.
MODEL_INDEX_TASK = ("image-feature-extraction", "Random effects from OCT images (synthoct-bench)")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def sort_reports(reports: Sequence[ScoreReport]) -> list[ScoreReport]:
    """Reports by model label, then noise level in numeric order (0, 1, 9, 18, 49)."""
    return sorted(reports, key=lambda r: (r.label, float(r.noise)))


def reports_payload(reports: Sequence[ScoreReport]) -> dict[str, Any]:
    """The score JSON, the same shape for one report or many:
    ``{"schema_version": 1, "reports": [ScoreReport.to_dict(), ...]}``, sorted."""
    return {
        "schema_version": SCHEMA_VERSION,
        "reports": [r.to_dict() for r in sort_reports(reports)],
    }


def _cell(report: ScoreReport, name: str, spec: str) -> str:
    est = report.estimates.get(name)
    return "-" if est is None else format(est, spec)


def format_summary(reports: Sequence[ScoreReport]) -> str:
    """One table per model, one row per noise level in numeric order: σ², R² with its
    interval, fraction of max, Table 2's Predicted NLL (and mean ± SD over training seeds
    when a report averages several)."""
    if not reports:
        raise ValueError("nothing to summarise: no score reports")
    groups: dict[str, list[ScoreReport]] = {}
    for rep in sort_reports(reports):
        groups.setdefault(rep.label, []).append(rep)
    blocks = []
    for label, reps in groups.items():
        first = reps[0]
        pct = int(round(first.level * 100))
        seeded = any(r.across_seeds for r in reps)
        head = f"synthoct-bench summary: model {label}, split {first.split or '?'}"
        lines = [head, "=" * len(head)]
        cols = [
            (paper_symbol("noise"), 7),
            (f"R2 (eta_hat, eta_pred) [{pct}% CI]", 34),
            (f"fraction of max [{pct}% CI]", 30),
            (f"Table 2 Predicted NLL [{pct}% CI]", 34),
        ]
        if seeded:
            cols.append(("R2 over seeds (mean ± sd, n)", 30))
        lines.append("".join(f"{name:<{width}}" for name, width in cols).rstrip())
        for rep in reps:
            cells = [
                f"{rep.noise:g}",
                _cell(rep, "r2", ".4f"),
                _cell(rep, "fraction_of_max", ".4f"),
                _cell(rep, "table2/predicted", ".1f"),
            ]
            if seeded:
                spread = rep.across_seeds.get("r2")
                cells.append(f"{spread:.4f}, {rep.n_seeds}" if spread else "1 seed")
            lines.append(
                "".join(f"{c:<{w}}" for c, (_, w) in zip(cells, cols, strict=True)).rstrip()
            )
        fingerprints = {r.provenance.get("dataset_fingerprint") for r in reps} - {None}
        for fp in sorted(fingerprints):
            lines.append(f"dataset fingerprint {fp}")
        revisions = {r.provenance.get("revision") for r in reps} - {None}
        if revisions:
            lines.append(f"dataset revision {', '.join(sorted(map(str, revisions)))}")
        lines.append(
            f"intervals: {first.n_bootstrap} bootstrap resamples of subjects, seed {first.seed}; "
            f"scorer {first.provenance.get('scorer_version', '?')}"
        )
        few = sorted({r.n_seeds for r in reps if r.n_seeds < RECOMMENDED_SEEDS})
        if few:
            lines.append(
                f"note: {'/'.join(map(str, few))} training seed(s) at some level; RULES.md "
                f"asks for at least {RECOMMENDED_SEEDS} (synthoct score --seeds-of MODEL)"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _one_model(reports: Sequence[ScoreReport]) -> list[ScoreReport]:
    """Check that ``reports`` are one recorded model on one dataset, one per level."""
    if not reports:
        raise ValueError("a leaderboard entry needs at least one score report")
    reps = sort_reports(reports)
    models = sorted({r.model or f"<unnamed: {r.label}>" for r in reps})
    if len(models) > 1:
        raise ValueError(
            f"a leaderboard entry is one model, but the reports are of {', '.join(models)}; "
            "score one model's submissions (or pass --seeds-of MODEL)"
        )
    if reps[0].model is None:
        raise ValueError(
            "the submissions record no model name; write them with "
            "write_submission(..., model=NAME)"
        )
    for key, what in (("dataset_fingerprint", "dataset"), ("revision", "dataset revision")):
        values = {r.provenance.get(key) for r in reps}
        if len(values) > 1:
            raise ValueError(f"the reports were scored on more than one {what}: {values}")
    if reps[0].provenance.get("dataset_fingerprint") is None:
        raise ValueError("a leaderboard entry needs reports from score() on a dataset")
    splits = {r.split for r in reps}
    if len(splits) > 1:
        raise ValueError(f"the reports score different splits: {sorted(map(str, splits))}")
    levels = [float(r.noise) for r in reps]
    if len(set(levels)) != len(levels):
        raise ValueError(
            "two reports of this model share a noise level; score its training seeds "
            "together (--seeds-of MODEL) so each level has one report"
        )
    for r in reps:
        if r.unchecked:
            raise ValueError(
                f"noise {r.noise:g}: a leaderboard takes only fully checked scores, but "
                f"{r.unchecked[0]}"
            )
    return reps


def _spread(rep: ScoreReport, name: str) -> dict[str, Any] | None:
    spread: SeedSpread | None = rep.across_seeds.get(name)
    return spread.as_dict() if spread is not None else None


def leaderboard_entry(reports: Sequence[ScoreReport], *, date: str | None = None) -> dict[str, Any]:
    """One model's leaderboard entry (a JSON-able dict): model, dataset fingerprint and
    revision, per level R² and fraction of max with intervals (and over training seeds),
    Table 2's Predicted NLL, scorer version and date (UTC today unless given)."""
    reps = _one_model(reports)
    first = reps[0]
    prov = first.provenance
    levels = []
    for r in reps:
        t2 = r.estimates.get("table2/predicted")
        levels.append(
            {
                "noise": int(r.noise) if float(r.noise).is_integer() else r.noise,
                "n_subjects": r.n_subjects,
                "theoretical_max": r.theoretical_max,
                "r2": r.r2.as_dict(),
                "fraction_of_max": r.fraction_of_max.as_dict(),
                "table2_predicted_nll": t2.as_dict() if t2 is not None else None,
                "n_seeds": r.n_seeds,
                "seeds": {
                    "r2": _spread(r, "r2"),
                    "fraction_of_max": _spread(r, "fraction_of_max"),
                    "table2_predicted_nll": _spread(r, "table2/predicted"),
                }
                if r.across_seeds
                else None,
                "submissions_sha256": [s.get("sha256") for s in r.submissions],
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "model": first.model,
        "split": first.split,
        "dataset": {
            "source": prov.get("dataset"),
            "fingerprint": prov.get("dataset_fingerprint"),
            "revision": prov.get("revision"),
        },
        "levels": levels,
        "interval": {
            "level": first.level,
            "n_bootstrap": first.n_bootstrap,
            "seed": first.seed,
            "method": "percentile bootstrap over test subjects",
        },
        "scorer_version": prov.get("scorer_version"),
        "date": date or _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
    }


def entry_line(entry: dict[str, Any]) -> str:
    """A leaderboard entry as one JSON line (keys sorted, no newline inside)."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _dataset_id(reports: list[ScoreReport], dataset_id: str | None) -> str:
    if dataset_id is None:
        source = str(reports[0].provenance.get("dataset") or "")
        if _HUB_ID.fullmatch(source) and not Path(source).exists():
            return source
        raise ValueError(
            f"the reports scored a local folder ({source}); pass the Hub dataset id it was "
            "pushed to: dataset_id='ORG/NAME' (--dataset-id ORG/NAME)"
        )
    if not _HUB_ID.fullmatch(dataset_id):
        raise ValueError(f"dataset_id must be a Hub dataset id like 'org/name', got {dataset_id!r}")
    return dataset_id


def model_index(reports: Sequence[ScoreReport], *, dataset_id: str | None = None) -> Any:
    """The model's scores as ``huggingface_hub.ModelCardData`` with ``eval_results``: per
    noise level (config ``sigma2_{k}``) R², fraction of max and, if scored, Table 2's
    Predicted NLL; intervals and seed counts go in each metric's name."""
    from huggingface_hub import EvalResult, ModelCardData

    reps = _one_model(reports)
    repo = _dataset_id(reps, dataset_id)
    revision = reps[0].provenance.get("revision")
    pct = int(round(reps[0].level * 100))
    results = []
    for r in reps:
        common = {
            "task_type": MODEL_INDEX_TASK[0],
            "task_name": MODEL_INDEX_TASK[1],
            "dataset_type": repo,
            "dataset_name": f"synthoct-bench sigma2={r.noise:g}",
            "dataset_config": f"sigma2_{r.noise:g}",
            "dataset_split": r.split,
            "dataset_revision": revision,
        }
        seeds = f", mean of {r.n_seeds} training seeds" if r.across_seeds else ""
        metrics = [
            ("r_squared", "r2", "R2 (eta_hat, eta_pred)", ".4f"),
            ("fraction_of_max", "fraction_of_max", "fraction of max R2", ".4f"),
            ("nll", "table2/predicted", "Table 2 Predicted NLL", ".1f"),
        ]
        for metric_type, key, name, spec in metrics:
            est = r.estimates.get(key)
            if est is None:
                continue
            spread = r.across_seeds.get(key)
            sd = f", sd {spread.sd:{spec}}" if spread is not None else ""
            results.append(
                EvalResult(
                    metric_type=metric_type,
                    metric_value=round(est.value, 6),
                    metric_name=(
                        f"{name} ({pct}% CI {est.low:{spec}} to {est.high:{spec}}{seeds}{sd})"
                    ),
                    **common,
                )
            )
    return ModelCardData(model_name=reps[0].model, eval_results=results)


def model_index_yaml(reports: Sequence[ScoreReport], *, dataset_id: str | None = None) -> str:
    """The ``model-index`` YAML for a model card's metadata, checked offline by parsing it
    back with ``huggingface_hub.ModelCard``; comment lines give the dataset fingerprint
    and scorer version."""
    from huggingface_hub import ModelCard

    data = model_index(reports, dataset_id=dataset_id)
    text = data.to_yaml()
    parsed = ModelCard(f"---\n{text}\n---\n").data
    if parsed.model_name != data.model_name or len(parsed.eval_results or []) != len(
        data.eval_results
    ):
        raise ValueError("the model-index does not parse back into the same results")
    prov = sort_reports(reports)[0].provenance
    header = (
        f"# synthoct-bench scores: dataset fingerprint {prov.get('dataset_fingerprint')}, "
        f"scorer {prov.get('scorer_version')}\n"
    )
    return header + text + "\n"
