"""Submission format: round trips, and every validation error with its message."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthoct_bench.scoring import (
    SubmissionError,
    align_submission,
    read_submission,
    write_submission,
)
from synthoct_bench.scoring.submission import max_submission_bytes

N = 40


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    ids = np.arange(100, 100 + N)
    return ids, rng.standard_normal((N, 3))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_records_noise_split_model(tmp_path, arrays, suffix):
    ids, pred = arrays
    sd = np.full((N, 3), 0.5)
    path = write_submission(
        tmp_path / f"sub{suffix}", ids, pred, noise=9, split="test", eta_sd=sd, model="m1"
    )
    sub = read_submission(path)
    np.testing.assert_array_equal(sub.subject_id, ids)
    np.testing.assert_allclose(sub.eta_pred, pred, rtol=1e-15)
    np.testing.assert_allclose(sub.eta_sd, sd)
    assert (sub.noise, sub.split, sub.model) == (9.0, "test", "m1")
    assert len(sub.sha256) == 64
    assert not list(tmp_path.glob("*.tmp"))


def test_covariance_round_trip(tmp_path, arrays):
    ids, pred = arrays
    a = np.random.default_rng(1).standard_normal((N, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(3)
    sub = read_submission(
        write_submission(tmp_path / "c.parquet", ids, pred, noise=1, split="test", eta_cov=cov)
    )
    np.testing.assert_allclose(sub.eta_cov, cov)
    np.testing.assert_allclose(sub.eta_cov_full, cov)


def test_dict_and_dataframe_inputs(arrays):
    import pandas as pd

    ids, pred = arrays
    a = read_submission({"subject_id": ids, "eta_pred": pred})
    df = pd.DataFrame({"subject_id": ids, **{f"eta_pred_{d + 1}": pred[:, d] for d in range(3)}})
    b = read_submission(df)
    np.testing.assert_array_equal(a.eta_pred, b.eta_pred)
    assert a.noise is None and a.sha256 == b.sha256 and len(a.sha256) == 64


def test_align_reorders_to_split_order(arrays):
    ids, pred = arrays
    perm = np.random.default_rng(2).permutation(N)
    sub = read_submission({"subject_id": ids[perm], "eta_pred": pred[perm]})
    aligned = align_submission(sub, ids, noise=9, split="test")
    np.testing.assert_array_equal(aligned.subject_id, ids)
    np.testing.assert_array_equal(aligned.eta_pred, pred)


def _write_table(path, cols, metadata=None):
    table = pa.table(cols)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


def _cols(ids, pred):
    return {"subject_id": ids, **{f"eta_pred_{d + 1}": pred[:, d] for d in range(3)}}


def test_unknown_missing_duplicate_ids(arrays):
    ids, pred = arrays
    sub = read_submission({"subject_id": ids + 1000, "eta_pred": pred})
    with pytest.raises(SubmissionError, match=r"40 of 40 subject ids are not in split 'test'.*"):
        align_submission(sub, ids, split="test")
    with pytest.raises(SubmissionError, match="another split"):
        align_submission(sub, ids, split="test")
    some = ids.copy()
    some[:3] += 1000
    with pytest.raises(SubmissionError, match=r"3 of 40 subject ids are not in split.*1100"):
        align_submission(read_submission({"subject_id": some, "eta_pred": pred}), ids)
    short = read_submission({"subject_id": ids[5:], "eta_pred": pred[5:]})
    with pytest.raises(SubmissionError, match=r"5 of 40 subjects .* no prediction.*100, 101"):
        align_submission(short, ids)
    dup = ids.copy()
    dup[1] = dup[0]
    with pytest.raises(SubmissionError, match=r"1 subject ids appear more than once.*100"):
        read_submission({"subject_id": dup, "eta_pred": pred})


def test_nan_inf_and_out_of_range(arrays):
    ids, pred = arrays
    bad = pred.copy()
    bad[3, 1] = np.nan
    bad[7, 0] = np.inf
    with pytest.raises(SubmissionError, match=r"2 rows have NaN or infinite eta_pred.*103, 107"):
        read_submission({"subject_id": ids, "eta_pred": bad})
    far = pred.copy()
    far[0, 0] = 1e6
    with pytest.raises(SubmissionError, match=r"\|eta_pred\| > 10"):
        read_submission({"subject_id": ids, "eta_pred": far})
    with pytest.raises(SubmissionError, match="eta_sd <= 0"):
        read_submission({"subject_id": ids, "eta_pred": pred, "eta_sd": np.zeros((N, 3))})
    cov = np.tile(-np.eye(3), (N, 1, 1))
    with pytest.raises(SubmissionError, match="not positive definite"):
        read_submission({"subject_id": ids, "eta_pred": pred, "eta_cov": cov})


def test_wrong_number_of_dims(tmp_path, arrays):
    ids, pred = arrays
    with pytest.raises(SubmissionError, match="exactly 3 random effects"):
        read_submission({"subject_id": ids, "eta_pred": pred[:, :2]})
    cols = _cols(ids, pred)
    cols["eta_pred_4"] = pred[:, 0]
    with pytest.raises(SubmissionError, match=r"found .*eta_pred_4.* \(4 dims\)"):
        read_submission(_write_table(tmp_path / "four.parquet", cols))
    del cols["eta_pred_4"], cols["eta_pred_3"]
    with pytest.raises(SubmissionError, match=r"\(2 dims\)"):
        read_submission(_write_table(tmp_path / "two.parquet", cols))
    with pytest.raises(SubmissionError, match="shape"):
        write_submission(tmp_path / "w.parquet", ids, pred[:, :2], noise=9, split="test")


def test_wrong_noise_or_split(tmp_path, arrays):
    ids, pred = arrays
    for suffix in (".parquet", ".csv"):
        path = write_submission(tmp_path / f"s{suffix}", ids, pred, noise=1, split="validation")
        sub = read_submission(path)
        with pytest.raises(SubmissionError, match=r"noise level 1, but noise level 9"):
            align_submission(sub, ids, noise=9, split="validation")
        with pytest.raises(SubmissionError, match=r"split 'validation', but split 'test'"):
            align_submission(sub, ids, noise=1, split="test")


def test_empty_unreadable_too_large_and_missing_columns(tmp_path, arrays):
    ids, pred = arrays
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(SubmissionError, match="empty"):
        read_submission(empty)
    junk = tmp_path / "j.parquet"
    junk.write_bytes(b"not a parquet file at all")
    with pytest.raises(SubmissionError, match="cannot be read as PARQUET"):
        read_submission(junk)
    header_only = tmp_path / "h.csv"
    header_only.write_text("subject_id,eta_pred_1,eta_pred_2,eta_pred_3\n")
    with pytest.raises(SubmissionError, match="no rows"):
        read_submission(header_only)
    path = write_submission(tmp_path / "big.csv", ids, pred, noise=9, split="test")
    with pytest.raises(SubmissionError, match="too large to be a submission"):
        read_submission(path, max_bytes=100)
    assert path.stat().st_size < max_submission_bytes(N)
    with pytest.raises(SubmissionError, match="missing column 'subject_id'"):
        read_submission({"id": ids, "eta_pred": pred})
    with pytest.raises(SubmissionError, match="no such submission file"):
        read_submission(tmp_path / "nope.parquet")
    with pytest.raises(SubmissionError, match=r"name the file \*.parquet or \*.csv"):
        read_submission(tmp_path / "x.json")
    text = tmp_path / "t.csv"
    text.write_text("subject_id,eta_pred_1,eta_pred_2,eta_pred_3\n1,a,0.1,0.2\n")
    with pytest.raises(SubmissionError, match="expected numbers"):
        read_submission(text)
    cols = _cols(ids, pred)
    cols["image"] = pred[:, 0]
    with pytest.raises(SubmissionError, match=r"unexpected columns \['image'\]"):
        read_submission(cols)


def test_errors_are_value_errors():
    assert issubclass(SubmissionError, ValueError)
