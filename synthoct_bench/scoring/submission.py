"""Submission files: what a model hands to the scorer, and the checks run before scoring.

A submission holds a model's predicted random effects for one split at one
noise level, one row per subject:

    subject_id, eta_pred_1, eta_pred_2, eta_pred_3
    [eta_sd_1, eta_sd_2, eta_sd_3]                       optional: predictive SDs
    [eta_cov_11, eta_cov_12, eta_cov_13,
     eta_cov_22, eta_cov_23, eta_cov_33]                 optional: full covariance

Parquet (``.parquet``) records the noise level, split, model name and the
fingerprint of the dataset the predictions were made on in the file's
key-value metadata (``synthoct.noise``, ``synthoct.split``, ``synthoct.model``,
``synthoct.dataset_fingerprint``); CSV (``.csv``) records them as constant
columns of those names. The scorer refuses a file made for another level,
split or dataset. A file written by hand without them is accepted: the scorer
then cannot check what is missing and says so in the first lines of its report.

Predictive SDs must lie in [``MIN_SD``, ``MAX_SD``] and covariances' eigenvalues
in the squares of that range: random effects are standard normal, so anything
outside is a unit or scale mistake, and would turn the NLLs into inf or NaN.

Every check raises :class:`SubmissionError` (a ``ValueError``) whose message
names the problem and the fix, in the spirit of the OGB evaluator.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "SubmissionError",
    "Submission",
    "PRED_COLUMNS",
    "SD_COLUMNS",
    "COV_COLUMNS",
    "MAX_ABS_ETA",
    "MIN_SD",
    "MAX_SD",
    "write_submission",
    "read_submission",
    "align_submission",
    "max_submission_bytes",
]

N_DIMS = 3
PRED_COLUMNS: tuple[str, ...] = tuple(f"eta_pred_{d + 1}" for d in range(N_DIMS))
SD_COLUMNS: tuple[str, ...] = tuple(f"eta_sd_{d + 1}" for d in range(N_DIMS))
_COV_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i in range(N_DIMS) for j in range(i, N_DIMS)
)
COV_COLUMNS: tuple[str, ...] = tuple(f"eta_cov_{i + 1}{j + 1}" for i, j in _COV_PAIRS)
_META_COLUMNS = ("noise", "split", "model", "dataset_fingerprint")
_META_PREFIX = "synthoct."
FORMAT_VERSION = "1"
#: Random effects are standard normal; |η| beyond this has probability < 1e-23 and
#: would only push the NLME solver into overflow. Predictions outside are rejected.
MAX_ABS_ETA = 10.0
#: Bounds on predictive SDs of η (standard normal): below, a Gaussian NLL is dominated by
#: rounding (and SD² underflows); above, the prediction says nothing at 100 prior SDs.
MIN_SD = 1e-4
MAX_SD = 100.0
#: Bytes allowed per expected row (a CSV row with covariance and metadata is ~400 B).
_BYTES_PER_ROW = 2048
_BYTES_SLACK = 1 << 20
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class SubmissionError(ValueError):
    """A submission that cannot be scored; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Submission:
    """A parsed submission, rows in file order (see :func:`align_submission`)."""

    subject_id: np.ndarray  # (N,) int64
    eta_pred: np.ndarray  # (N, 3) float64
    eta_sd: np.ndarray | None = None  # (N, 3)
    eta_cov: np.ndarray | None = None  # (N, 3, 3)
    noise: int | None = None
    split: str | None = None
    model: str | None = None
    dataset_fingerprint: str | None = None
    sha256: str | None = None
    source: str = "<in-memory>"

    def __len__(self) -> int:
        return int(self.subject_id.shape[0])

    @property
    def eta_cov_full(self) -> np.ndarray | None:
        """The predictive covariance (N, 3, 3), from eta_cov or diag(eta_sd²); None if neither."""
        if self.eta_cov is not None:
            return self.eta_cov
        if self.eta_sd is not None:
            cov = np.zeros((len(self), N_DIMS, N_DIMS))
            idx = np.arange(N_DIMS)
            cov[:, idx, idx] = self.eta_sd**2
            return cov
        return None


def max_submission_bytes(n_expected: int) -> int:
    """Largest file accepted for a split of ``n_expected`` subjects."""
    return _BYTES_SLACK + _BYTES_PER_ROW * max(int(n_expected), 1)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise SubmissionError(
            f"{path}: unknown submission format {suffix!r}; "
            "name the file *.parquet or *.csv (see synthoct_bench.scoring.write_submission)"
        )
    return _SUFFIXES[suffix]


def _few(values: np.ndarray, k: int = 5) -> str:
    values = np.asarray(values).ravel()
    shown = ", ".join(str(v) for v in values[:k].tolist())
    return shown + (", ..." if values.size > k else "")


def _as_2d(name: str, value: Any, n: int, width: int = N_DIMS) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape != (n, width):
        raise SubmissionError(
            f"{name} must have shape ({n}, {width}) (one row per subject, {width} random "
            f"effects), got {arr.shape}; the NLME model has exactly {width} random effects"
        )
    return arr


def write_submission(
    path: str | os.PathLike,
    subject_id: np.ndarray,
    eta_pred: np.ndarray,
    *,
    noise: int,
    split: str,
    dataset: str | os.PathLike | None = None,
    revision: str | None = None,
    eta_sd: np.ndarray | None = None,
    eta_cov: np.ndarray | None = None,
    model: str | None = None,
) -> Path:
    """Write a submission atomically (temp file, then ``os.replace``); format by suffix.

    ``dataset`` (the folder or Hub repo id the predictions were made on, at
    ``revision``) records its fingerprint, so the scorer refuses the file for any other
    dataset; without it the report says the dataset could not be checked.
    ``eta_sd`` (N, 3) or ``eta_cov`` (N, 3, 3) make it probabilistic (give at most one).
    The content is validated exactly as the scorer will read it, so a file this writes
    never fails the scorer's format checks.
    """
    from synthoct_bench.atomic import write_via_temp
    from synthoct_bench.dataset.layout import check_level

    path = Path(path)
    fmt = _format_of(path)
    level = check_level(noise)
    ids = np.asarray(subject_id)
    if ids.ndim != 1:
        raise SubmissionError(f"subject_id must be 1-D, got shape {ids.shape}")
    n = ids.shape[0]
    columns: dict[str, np.ndarray] = {"subject_id": ids}
    pred = _as_2d("eta_pred", eta_pred, n)
    columns.update({c: pred[:, d] for d, c in enumerate(PRED_COLUMNS)})
    if eta_sd is not None and eta_cov is not None:
        raise SubmissionError("give eta_sd or eta_cov, not both (eta_sd is the diagonal case)")
    if eta_sd is not None:
        sd = _as_2d("eta_sd", eta_sd, n)
        columns.update({c: sd[:, d] for d, c in enumerate(SD_COLUMNS)})
    if eta_cov is not None:
        cov = np.asarray(eta_cov, dtype=np.float64)
        if cov.shape != (n, N_DIMS, N_DIMS):
            raise SubmissionError(f"eta_cov must have shape ({n}, 3, 3), got {cov.shape}")
        columns.update({c: cov[:, i, j] for c, (i, j) in zip(COV_COLUMNS, _COV_PAIRS, strict=True)})
    fingerprint = None
    if dataset is not None:
        from synthoct_bench.dataset.load import dataset_fingerprint

        fingerprint = dataset_fingerprint(dataset, revision)
    meta = {
        "noise": level,
        "split": str(split),
        "model": model,
        "dataset_fingerprint": fingerprint,
    }
    # Round-trip through the reader's checks so a bad array fails here, not at scoring time.
    _parse_table(pa.table(columns), source=str(path), meta=meta)

    if fmt == "csv":
        for key, value in meta.items():
            if value is not None:
                columns[key] = np.full(n, value if key == "noise" else str(value))
    table = pa.table(columns)
    if fmt == "parquet":
        kv = {f"{_META_PREFIX}{k}": str(v) for k, v in meta.items() if v is not None}
        kv[f"{_META_PREFIX}format_version"] = FORMAT_VERSION
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **kv})
        return write_via_temp(path, ".tmp", lambda tmp: pq.write_table(table, tmp))
    return write_via_temp(path, ".tmp", lambda tmp: pacsv.write_csv(table, tmp))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_file(
    path: Path, max_bytes: int | None, max_rows: int | None
) -> tuple[pa.Table, dict[str, Any]]:
    fmt = _format_of(path)
    if not path.exists():
        raise SubmissionError(f"{path}: no such submission file; check the path")
    if not path.is_file():
        raise SubmissionError(f"{path}: not a file; pass the submission file itself")
    size = path.stat().st_size
    if size == 0:
        raise SubmissionError(
            f"{path}: the file is empty (0 bytes); rewrite it with "
            "synthoct_bench.scoring.write_submission"
        )
    if max_bytes is not None and size > max_bytes:
        raise SubmissionError(
            f"{path}: {size:,} bytes is too large to be a submission for this split "
            f"(limit {max_bytes:,} bytes); a submission holds only subject_id, eta_pred_1..3 "
            "and optional eta_sd/eta_cov columns, one row per subject: drop other columns"
        )
    meta: dict[str, Any] = {}
    try:
        if fmt == "parquet":
            footer = pq.read_metadata(path)  # rows and columns, before any data is read
            if max_rows is not None and footer.num_rows > max_rows:
                raise SubmissionError(
                    f"{path}: the file declares {footer.num_rows:,} rows, more than the "
                    f"{max_rows:,} subjects of the split; write one row per subject"
                )
            if footer.num_columns > 64:
                raise SubmissionError(
                    f"{path}: {footer.num_columns} columns is not a submission; keep "
                    "subject_id, eta_pred_1..3 and optional eta_sd/eta_cov columns"
                )
            table = pq.read_table(path)
            kv = table.schema.metadata or {}
            for key in _META_COLUMNS:
                raw = kv.get(f"{_META_PREFIX}{key}".encode())
                if raw is not None:
                    meta[key] = raw.decode()
        else:
            table = pacsv.read_csv(path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError, UnicodeDecodeError) as err:
        raise SubmissionError(
            f"{path}: cannot be read as {fmt.upper()} ({err}); rewrite it with "
            "synthoct_bench.scoring.write_submission"
        ) from err
    return table, meta


def _table_from_object(obj: Any) -> pa.Table:
    """A pyarrow Table from a DataFrame, a pyarrow Table, or a dict of arrays."""
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, dict):
        cols: dict[str, Any] = {}
        for key, value in obj.items():
            arr = np.asarray(value)
            if key in ("eta_pred", "eta_sd") and arr.ndim == 2:
                prefix = "eta_pred" if key == "eta_pred" else "eta_sd"
                if arr.shape[1] != N_DIMS:
                    raise SubmissionError(
                        f"{key} has {arr.shape[1]} columns; the NLME model has exactly "
                        f"{N_DIMS} random effects: give an (N, {N_DIMS}) array"
                    )
                cols.update({f"{prefix}_{d + 1}": arr[:, d] for d in range(N_DIMS)})
            elif key == "eta_cov" and arr.ndim == 3:
                if arr.shape[1:] != (N_DIMS, N_DIMS):
                    raise SubmissionError(f"eta_cov must be (N, 3, 3), got {arr.shape}")
                cols.update(
                    {c: arr[:, i, j] for c, (i, j) in zip(COV_COLUMNS, _COV_PAIRS, strict=True)}
                )
            elif arr.ndim == 1:
                cols[key] = arr
            else:
                raise SubmissionError(
                    f"column {key!r} has shape {arr.shape}; give one value per subject "
                    "(or eta_pred as an (N, 3) array)"
                )
        try:
            return pa.table(cols)
        except (pa.ArrowInvalid, ValueError) as err:
            raise SubmissionError(f"cannot build a table from the given columns: {err}") from err
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas-like DataFrame
        try:
            return pa.Table.from_pandas(obj, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
            raise SubmissionError(f"cannot convert the DataFrame: {err}") from err
    raise SubmissionError(
        f"cannot read a submission from {type(obj).__name__}; pass a .parquet/.csv path, "
        "a pandas DataFrame, a pyarrow Table or a dict of column arrays"
    )


def _numeric(table: pa.Table, name: str, source: str) -> np.ndarray:
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise SubmissionError(
            f"{source}: column {name!r} has type {col.type}, expected numbers; "
            "write plain floats (no quotes, no text such as 'nan?' or '')"
        )
    if col.null_count:
        raise SubmissionError(
            f"{source}: column {name!r} has {col.null_count} empty (null) values; "
            "every subject needs a value in every column"
        )
    return col.to_numpy(zero_copy_only=False).astype(np.float64)


def _meta_value(table: pa.Table, key: str, source: str) -> str | None:
    if key not in table.column_names:
        return None
    values = table.column(key).unique().to_pylist()
    if len(values) != 1:
        raise SubmissionError(
            f"{source}: column {key!r} holds several values {values[:5]}; a submission is for "
            "one noise level and one split: write one file per level"
        )
    return None if values[0] is None else str(values[0])


def _parse_table(table: pa.Table, source: str, meta: dict[str, Any]) -> Submission:
    names = list(table.column_names)
    if table.num_rows == 0:
        raise SubmissionError(
            f"{source}: the submission has no rows; write one row per subject of the split"
        )
    if "subject_id" not in names:
        raise SubmissionError(
            f"{source}: missing column 'subject_id' (found {names[:8]}); "
            "add the dataset's subject_id for each row"
        )
    pred_like = sorted(c for c in names if c.startswith("eta_pred"))
    if tuple(pred_like) != PRED_COLUMNS:
        raise SubmissionError(
            f"{source}: expected the {N_DIMS} predicted random effects as columns "
            f"{', '.join(PRED_COLUMNS)}, found {pred_like or 'none'} "
            f"({len(pred_like)} dims); give exactly {N_DIMS} dims, one column each"
        )
    sd_like = sorted(c for c in names if c.startswith("eta_sd"))
    cov_like = sorted(c for c in names if c.startswith("eta_cov"))
    if sd_like and tuple(sd_like) != SD_COLUMNS:
        raise SubmissionError(
            f"{source}: predictive SDs need all of {', '.join(SD_COLUMNS)}, found {sd_like}"
        )
    if cov_like and tuple(cov_like) != tuple(sorted(COV_COLUMNS)):
        raise SubmissionError(
            f"{source}: a predictive covariance needs the upper triangle "
            f"{', '.join(COV_COLUMNS)}, found {cov_like}"
        )
    if sd_like and cov_like:
        raise SubmissionError(
            f"{source}: give eta_sd_* or eta_cov_* columns, not both "
            "(eta_sd is the diagonal case of eta_cov)"
        )
    known = {"subject_id", *PRED_COLUMNS, *SD_COLUMNS, *COV_COLUMNS, *_META_COLUMNS}
    extra = [c for c in names if c not in known]
    if extra:
        raise SubmissionError(
            f"{source}: unexpected columns {extra[:8]}; a submission holds subject_id, "
            "eta_pred_1..3 and optionally eta_sd_1..3 or eta_cov_11..33: drop the others"
        )

    ids_col = table.column("subject_id")
    if not pa.types.is_integer(ids_col.type):
        raise SubmissionError(
            f"{source}: subject_id has type {ids_col.type}, expected integers; "
            "copy subject_id from the dataset unchanged"
        )
    if ids_col.null_count:
        raise SubmissionError(f"{source}: subject_id has {ids_col.null_count} empty values")
    ids = ids_col.to_numpy(zero_copy_only=False).astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        raise SubmissionError(
            f"{source}: {dup.size} subject ids appear more than once (e.g. {_few(dup)}); "
            "give exactly one row per subject"
        )

    def finite(name: str, arr: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
            raise SubmissionError(
                f"{source}: {rows.size} rows have NaN or infinite {name} "
                f"(subject ids {_few(ids[rows])}); replace them with finite numbers "
                "(e.g. predict 0, the population mean, where the model has no answer)"
            )
        return arr

    pred = finite("eta_pred", np.stack([_numeric(table, c, source) for c in PRED_COLUMNS], 1))
    far = np.flatnonzero(np.abs(pred).max(axis=1) > MAX_ABS_ETA)
    if far.size:
        raise SubmissionError(
            f"{source}: {far.size} rows have |eta_pred| > {MAX_ABS_ETA:g} (subject ids "
            f"{_few(ids[far])}); random effects are standard normal: check the scale of "
            f"the predictions, or clip them to [-{MAX_ABS_ETA:g}, {MAX_ABS_ETA:g}]"
        )
    sd = cov = None
    if sd_like:
        sd = finite("eta_sd", np.stack([_numeric(table, c, source) for c in SD_COLUMNS], 1))
        bad = np.flatnonzero((sd <= 0).any(axis=1))
        if bad.size:
            raise SubmissionError(
                f"{source}: {bad.size} rows have eta_sd <= 0 (subject ids {_few(ids[bad])}); "
                "predictive standard deviations must be positive"
            )
        bad = np.flatnonzero(((sd < MIN_SD) | (sd > MAX_SD)).any(axis=1))
        if bad.size:
            raise SubmissionError(
                f"{source}: {bad.size} rows have eta_sd outside [{MIN_SD:g}, {MAX_SD:g}] "
                f"(subject ids {_few(ids[bad])}); eta is standard normal, so check the "
                f"units, or clip the SDs to [{MIN_SD:g}, {MAX_SD:g}]"
            )
    if cov_like:
        tri = np.stack([_numeric(table, c, source) for c in COV_COLUMNS], 1)
        tri = finite("eta_cov", tri)
        cov = np.empty((ids.size, N_DIMS, N_DIMS))
        for k, (i, j) in enumerate(_COV_PAIRS):
            cov[:, i, j] = cov[:, j, i] = tri[:, k]
        eig = np.linalg.eigvalsh(cov)
        bad = np.flatnonzero(eig[:, 0] <= 0)
        if bad.size:
            raise SubmissionError(
                f"{source}: {bad.size} rows have a covariance that is not positive definite "
                f"(subject ids {_few(ids[bad])}); give a symmetric positive definite matrix "
                "(e.g. add a small multiple of the identity)"
            )
        bad = np.flatnonzero((eig[:, 0] < MIN_SD**2) | (eig[:, -1] > MAX_SD**2))
        if bad.size:
            raise SubmissionError(
                f"{source}: {bad.size} rows have a covariance with eigenvalues outside "
                f"[{MIN_SD**2:g}, {MAX_SD**2:g}] (subject ids {_few(ids[bad])}); eta is "
                "standard normal, so check the units, or add a small multiple of the identity"
            )

    declared = {k: _meta_value(table, k, source) for k in _META_COLUMNS}
    for key, value in meta.items():
        if value is not None:
            declared[key] = str(value)
    noise = None
    if declared["noise"] is not None:
        try:
            value = float(declared["noise"])
        except ValueError:
            value = float("nan")
        if not (np.isfinite(value) and value >= 0 and value == int(value)):
            raise SubmissionError(
                f"{source}: recorded noise level {declared['noise']!r} is not a noise level "
                "(a non-negative integer such as 9); rewrite the file with write_submission"
            )
        noise = int(value)
    return Submission(
        subject_id=ids,
        eta_pred=pred,
        eta_sd=sd,
        eta_cov=cov,
        noise=noise,
        split=declared["split"],
        model=declared["model"],
        dataset_fingerprint=declared["dataset_fingerprint"],
        source=source,
    )


def read_submission(
    predictions: str | os.PathLike | Any,
    *,
    max_bytes: int | None = None,
    max_rows: int | None = None,
) -> Submission:
    """Read and check a submission: a .parquet/.csv path, a DataFrame, a pyarrow Table or a
    dict of columns (``eta_pred`` may be given as one (N, 3) array).

    Checks the format only (columns, types, finite values, unique ids, positive SDs,
    positive definite covariances); :func:`align_submission` checks it against a split.
    ``max_bytes`` and ``max_rows`` reject files too large to be a submission before
    reading their data (the row count comes from the Parquet footer).
    """
    if isinstance(predictions, (str, os.PathLike)):
        path = Path(predictions)
        table, meta = _read_file(path, max_bytes, max_rows)
        sub = _parse_table(table, source=str(path), meta=meta)
        return Submission(**{**sub.__dict__, "sha256": _sha256(path)})
    sub = _parse_table(_table_from_object(predictions), source="<in-memory>", meta={})
    # No file to hash: hash the parsed content instead, so a report still pins what it scored.
    h = hashlib.sha256()
    for arr in (sub.subject_id, sub.eta_pred, sub.eta_sd, sub.eta_cov):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return Submission(**{**sub.__dict__, "sha256": h.hexdigest()})


def align_submission(
    sub: Submission,
    subject_ids: np.ndarray,
    *,
    noise: int | None = None,
    split: str | None = None,
    dataset_fingerprint: str | None = None,
) -> Submission:
    """Check ``sub`` against a split's ``subject_ids`` and put its rows in that order.

    Raises SubmissionError for a recorded noise level, split or dataset fingerprint
    that differs from the one scored, and for subject ids that are unknown to the split
    or missing from it.
    """
    src = sub.source
    if noise is not None and sub.noise is not None and sub.noise != noise:
        raise SubmissionError(
            f"{src}: the file is for noise level {sub.noise}, but noise level {noise} is "
            f"being scored; pass --noise {sub.noise}, or the file for level {noise}"
        )
    if (
        dataset_fingerprint is not None
        and sub.dataset_fingerprint is not None
        and sub.dataset_fingerprint != dataset_fingerprint
    ):
        raise SubmissionError(
            f"{src}: the file was made on dataset {sub.dataset_fingerprint[:16]}..., but "
            f"dataset {dataset_fingerprint[:16]}... is being scored (another build, seed or "
            "version); predict the subjects of the dataset you score against"
        )
    if split is not None and sub.split is not None and sub.split != split:
        raise SubmissionError(
            f"{src}: the file is for split {sub.split!r}, but split {split!r} is being "
            f"scored; pass --split {sub.split}, or predict the {split!r} subjects"
        )
    expected = np.asarray(subject_ids).astype(np.int64)
    order = np.argsort(expected, kind="stable")
    sorted_expected = expected[order]
    pos = np.searchsorted(sorted_expected, sub.subject_id)
    pos_c = np.minimum(pos, sorted_expected.size - 1)
    known = sorted_expected[pos_c] == sub.subject_id
    if not known.all():
        unknown = sub.subject_id[~known]
        hint = (
            f"none of them are in split {split!r}: is this a submission for another split?"
            if not known.any()
            else "submit only subjects of this split, with the dataset's subject_id"
        )
        raise SubmissionError(
            f"{src}: {unknown.size} of {len(sub)} subject ids are not in split "
            f"{split or 'being scored'!r} (e.g. {_few(np.sort(unknown))}); {hint}"
        )
    if len(sub) != expected.size:
        seen = np.zeros(expected.size, dtype=bool)
        seen[order[pos]] = True
        missing = expected[~seen]
        raise SubmissionError(
            f"{src}: {missing.size} of {expected.size} subjects of the split have no "
            f"prediction (e.g. subject ids {_few(np.sort(missing))}); predict every subject "
            "of the split (partial submissions would bias the metrics)"
        )
    # Every expected id appears exactly once: row r of the split is row inv[r] of the file.
    inv = np.empty(expected.size, dtype=np.int64)
    inv[order[pos]] = np.arange(len(sub))

    def take(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[inv]

    return Submission(
        subject_id=expected.copy(),
        eta_pred=sub.eta_pred[inv],
        eta_sd=take(sub.eta_sd),
        eta_cov=take(sub.eta_cov),
        noise=sub.noise,
        split=sub.split,
        model=sub.model,
        dataset_fingerprint=sub.dataset_fingerprint,
        sha256=sub.sha256,
        source=sub.source,
    )
