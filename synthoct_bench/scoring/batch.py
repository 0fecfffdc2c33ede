"""Score many submission files at once: each at the level it records, training seeds of
one model grouped into one report per level.

    reports = score_files(["subs/"], "oct-mini", seeds_of=["resnet18"], n_bootstrap=1000)

A model named in ``seeds_of`` has its files grouped by noise level, each group scored
as several training seeds (:func:`synthoct_bench.scoring.score` with a list). Every
other file is scored alone; two files of the same recorded model at one level are
refused unless that model is in ``seeds_of``, since a summary could not say which one
is the model's score.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthoct_bench.scoring.core import score
from synthoct_bench.scoring.leaderboard import sort_reports
from synthoct_bench.scoring.report import ScoreReport
from synthoct_bench.scoring.submission import max_submission_bytes, read_submission

__all__ = ["SUBMISSION_SUFFIXES", "expand_predictions", "group_submissions", "score_files"]

SUBMISSION_SUFFIXES = (".parquet", ".pq", ".csv")


def expand_predictions(entries: Sequence[str | os.PathLike]) -> list[Path]:
    """Files and folders -> files: a folder gives every submission file in it, sorted."""
    files: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUBMISSION_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: directory holds no *.parquet or *.csv submissions")
            files.extend(found)
        else:
            files.append(path)
    return files


def group_submissions(
    files: Sequence[Path], noise: int | None = None, seeds_of: Sequence[str] = ()
) -> list[tuple[int, list[Path]]]:
    """(noise level, files) per report: one file, or the training seeds of a model in
    ``seeds_of`` at that level. ``noise`` overrides what the files record."""
    wanted = set(seeds_of)
    keyed: dict[tuple[str, int], list[Path]] = {}
    singles: list[tuple[int, list[Path]]] = []
    seen: dict[tuple[str, int], Path] = {}
    for path in files:
        # Peek at the declared level and model; size is re-checked against the split later.
        sub = read_submission(path, max_bytes=max_submission_bytes(10**7))
        level = noise if noise is not None else sub.noise
        if level is None:
            raise ValueError(f"{path}: the file records no noise level; pass --noise")
        if sub.model in wanted:
            keyed.setdefault((sub.model, level), []).append(path)
            continue
        if sub.model is not None:
            if (sub.model, level) in seen:
                raise ValueError(
                    f"{seen[(sub.model, level)]} and {path} are both model {sub.model!r} at "
                    f"noise {level}; score them as training seeds with seeds_of="
                    f"[{sub.model!r}] (--seeds-of {sub.model}), or give one"
                )
            seen[(sub.model, level)] = path
        singles.append((level, [path]))
    missing = sorted(wanted - {model for model, _ in keyed})
    if missing:
        raise ValueError(f"no submission records model {missing[0]!r} (from --seeds-of)")
    for (name, level), paths in sorted(keyed.items()):
        if len(paths) < 2:
            raise ValueError(
                f"model {name!r} has one submission at noise {level} ({paths[0]}); "
                "training seeds need at least two files per level"
            )
    return [(level, paths) for (_, level), paths in sorted(keyed.items())] + singles


def score_files(
    entries: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    *,
    noise: int | None = None,
    split: str = "test",
    seeds_of: Sequence[str] = (),
    **score_kwargs: Any,
) -> list[ScoreReport]:
    """Score submission files and folders (see the module docstring); reports sorted by
    model, then noise level in numeric order. ``score_kwargs`` go to ``score``."""
    groups = group_submissions(expand_predictions(entries), noise, seeds_of)
    reports = []
    for level, paths in groups:
        predictions = paths if len(paths) > 1 else paths[0]
        reports.append(score(predictions, data, level, split, **score_kwargs))
    return sort_reports(reports)
