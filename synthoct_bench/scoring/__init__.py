"""The scorer: checks a submission of predicted random effects and reports the paper's
Tables 1 and 2 (with bootstrap intervals), extra NLLs and paired comparisons.

    from synthoct_bench.scoring import score, write_submission
    write_submission("pred_s9.parquet", ids, eta_pred, noise=9, split="test",
                     dataset="path/to/dataset", model="resnet18")
    report = score("pred_s9.parquet", "path/to/dataset", noise=9, split="test")
    print(report); report.to_dict()

Several training seeds of one model: ``score([f_seed0, f_seed1, f_seed2], data, noise=9)``;
many files and levels: ``score_files``; the JSON schema, summary table, leaderboard entry
and model-card ``model-index``: :mod:`synthoct_bench.scoring.leaderboard`.
"""

from synthoct_bench.scoring.batch import score_files
from synthoct_bench.scoring.core import score, score_arrays
from synthoct_bench.scoring.leaderboard import (
    SCHEMA_VERSION,
    format_summary,
    leaderboard_entry,
    model_index_yaml,
    reports_payload,
)
from synthoct_bench.scoring.report import METRIC_DOC, ScoreReport, SeedSpread
from synthoct_bench.scoring.submission import (
    Submission,
    SubmissionError,
    align_submission,
    read_submission,
    write_submission,
)

__all__ = [
    "score",
    "score_arrays",
    "score_files",
    "compare",
    "ScoreReport",
    "SeedSpread",
    "SCHEMA_VERSION",
    "reports_payload",
    "format_summary",
    "leaderboard_entry",
    "model_index_yaml",
    "METRIC_DOC",
    "Submission",
    "SubmissionError",
    "read_submission",
    "write_submission",
    "align_submission",
]


def compare(predictions, other, data, noise, split="test", **kwargs) -> ScoreReport:
    """Paired comparison of two submissions on the same subjects and bootstrap resamples:
    ``score(predictions, data, noise, split, compare=other, ...)``; see ScoreReport.difference."""
    return score(predictions, data, noise, split, compare=other, **kwargs)
