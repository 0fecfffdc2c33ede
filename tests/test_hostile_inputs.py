"""A corpus of hostile and mistaken inputs: corrupted and tampered datasets, malformed
manifests and bad submissions. Each is refused with a message that names the problem,
or, where nothing can be checked, the output says so."""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import synthoct_bench
from synthoct_bench.dataset import dataset_fingerprint, read_columns, read_metadata, verify
from synthoct_bench.dataset.integrity import CorruptShardError
from synthoct_bench.scoring import SubmissionError, score, write_submission

TEST_SHARD = "data/test-00000-of-00001.parquet"


@pytest.fixture
def copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(tiny_dataset, out)
    return out


def _oracle(data: Path, noise: int = 9) -> tuple[np.ndarray, np.ndarray]:
    cols = read_columns(data, "test", ["subject_id", "eta"])
    return cols["subject_id"], cols["eta"] / np.sqrt(1 + noise)


def _flip_byte_in_column(path: Path, column: str) -> None:
    """Flip one byte in the middle of ``column``'s data in the first row group."""
    meta = pq.read_metadata(path).row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.column(next(i for i, n in enumerate(names) if n.startswith(column)))
    offset = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _set_manifest(root: Path, edit) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


# -- corrupted and tampered datasets ------------------------------------------------------


def test_a_flipped_byte_in_a_target_column_is_refused_by_every_reader(copy: Path, tmp_path):
    ids, pred = _oracle(copy)
    sub = write_submission(tmp_path / "s.parquet", ids, pred, noise=9, split="test", dataset=copy)
    _flip_byte_in_column(copy / TEST_SHARD, "eta_ebe_s9")
    for read in (
        lambda: read_columns(copy, "test", ["eta_ebe_s9"]),
        lambda: synthoct_bench.load(copy, noise=9, split="test"),
        lambda: score(sub, copy, noise=9, n_bootstrap=10),
    ):
        with pytest.raises(CorruptShardError, match=f"{TEST_SHARD}.*synthoct verify"):
            read()
    assert not verify(copy).ok
    # verify=False reads it, and the report says the data were not checked
    with pytest.warns(UserWarning, match="not checked"):
        report = score(sub, copy, noise=9, n_bootstrap=10, verify=False, nll=False)
    assert "verify=False" in report.unchecked[0] and "NOT CHECKED" in str(report)
    assert report.to_dict()["provenance"]["data_verified"] is False


def test_verified_shards_are_not_hashed_twice(copy: Path, monkeypatch):
    from synthoct_bench.dataset import integrity

    read_columns(copy, "train", ["subject_id"])
    calls = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    read_columns(copy, "train", ["subject_id"])
    assert calls == []  # both shards come from the cache
    os.utime(copy / "data/train-00000-of-00002.parquet")  # touched: hashed again
    read_columns(copy, "train", ["subject_id"])
    assert len(calls) == 1


def test_a_deleted_shard_is_named(copy: Path):
    (copy / TEST_SHARD).unlink()
    with pytest.raises(CorruptShardError, match=f"{TEST_SHARD} of .* is missing"):
        synthoct_bench.load(copy, noise=9, split="test")


def test_edited_simulation_sigma_or_seed_fail_verify_and_change_the_fingerprint(copy: Path):
    before = dataset_fingerprint(copy)

    def sigma(m):
        m["nlme"]["simulation_params"]["sigma"] = 0.5

    _set_manifest(copy, sigma)
    report = verify(copy, check_sha=False)
    assert not report.ok and any("obs_s9" in p for p in report.problems)
    assert dataset_fingerprint(copy) != before

    def seed(m):
        m["nlme"]["simulation_params"]["sigma"] = 0.01
        m["seed"] = 99

    _set_manifest(copy, seed)
    report = verify(copy)
    assert not report.ok and any(p.startswith("z of") for p in report.problems)


def test_a_manifest_that_disagrees_with_itself_or_the_card(copy: Path):
    _set_manifest(copy, lambda m: m["splits"]["test"].update(n=6))
    problems = " ".join(verify(copy, content=False).problems)
    assert "splits hold" in problems and "README.md's YAML" in problems


@pytest.mark.parametrize(
    ("text", "phrase"),
    [("[]", "JSON object"), ("{oops", "not valid JSON"), ('{"seed": 1}', "missing the key")],
)
def test_malformed_manifests_are_named(copy: Path, text: str, phrase: str):
    (copy / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match=phrase):
        read_metadata(copy)
    assert phrase in verify(copy).problems[0]


def test_corrupt_image_bytes_name_the_subject():
    from synthoct_bench.dataset.writer import decode_png, encode_png

    blobs = encode_png(np.zeros((2, 8, 8), np.uint8))
    blobs[1] = blobs[1][:20]
    with pytest.raises(ValueError, match="image of subject 57 .*synthoct verify"):
        decode_png(blobs, np.array([56, 57]))


# -- submissions -------------------------------------------------------------------------


def test_a_submission_made_on_another_dataset_is_refused(copy: Path, tiny_dataset, tmp_path):
    _set_manifest(copy, lambda m: m.update(seed=3))  # same ids and sizes, another dataset
    ids, pred = _oracle(tiny_dataset)
    sub = write_submission(tmp_path / "s.parquet", ids, pred, noise=9, split="test", dataset=copy)
    with pytest.raises(SubmissionError, match="made on dataset .* but dataset .* is being scored"):
        score(sub, tiny_dataset, noise=9, n_bootstrap=10)


def test_what_a_submission_does_not_record_is_said_first(tiny_dataset: Path, tmp_path):
    ids, pred = _oracle(tiny_dataset, noise=9)
    bare = tmp_path / "bare.parquet"
    pq.write_table(
        pa.table({"subject_id": ids, **{f"eta_pred_{d + 1}": pred[:, d] for d in range(3)}}),
        bare,
    )
    report = score(bare, tiny_dataset, noise=1, n_bootstrap=10, nll=False)
    first = str(report).splitlines()[2:5]
    assert any("no noise level" in line and "noise 1" in line for line in first)
    assert any("no dataset fingerprint" in line for line in first)
    assert len(report.to_dict()["unchecked"]) == 3
    tied = write_submission(
        tmp_path / "tied.parquet", ids, pred, noise=9, split="test", dataset=tiny_dataset
    )
    assert score(tied, tiny_dataset, noise=9, n_bootstrap=10, nll=False).unchecked == []


@pytest.mark.parametrize(
    ("sd", "phrase"),
    [(1e300, "outside"), (1e-200, "outside"), (0.0, "<= 0"), (np.inf, "NaN or infinite")],
)
def test_absurd_predictive_sds_are_refused_with_the_row(tiny_dataset, tmp_path, sd, phrase):
    ids, pred = _oracle(tiny_dataset)
    sds = np.full_like(pred, 0.5)
    sds[2, 1] = sd
    with pytest.raises(SubmissionError, match=f"{phrase}.*subject ids {ids[2]}"):
        write_submission(tmp_path / "p.parquet", ids, pred, noise=9, split="test", eta_sd=sds)


def test_a_degenerate_covariance_is_refused(tiny_dataset, tmp_path):
    ids, pred = _oracle(tiny_dataset)
    cov = np.tile(np.eye(3), (ids.size, 1, 1))
    cov[0] *= 1e-12
    with pytest.raises(SubmissionError, match="eigenvalues outside.*identity"):
        write_submission(tmp_path / "p.parquet", ids, pred, noise=9, split="test", eta_cov=cov)


def test_a_file_declaring_too_many_rows_is_refused_before_reading(tiny_dataset, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    from synthoct_bench.scoring import read_submission

    n = 1000
    columns = {"subject_id": np.arange(n), **{f"eta_pred_{d}": np.zeros(n) for d in (1, 2, 3)}}
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(SubmissionError, match="declares 1,000 rows, more than the 5 subjects"):
        score(path, tiny_dataset, noise=9, n_bootstrap=10)

    def no_read(*args, **kwargs):
        raise AssertionError("the data were read")

    monkeypatch.setattr(pq, "read_table", no_read)
    with pytest.raises(SubmissionError, match="declares 1,000 rows"):
        read_submission(path, max_rows=5)


def test_a_score_is_never_nan(tiny_dataset):
    from synthoct_bench.scoring import score_arrays

    eta = np.zeros((6, 3))  # a constant reference: R² is 0/0
    with pytest.raises(ValueError, match="not finite"):
        score_arrays(eta, eta, eta, eta + 0.1, 9, nll=False, n_bootstrap=10)


# -- loader arguments --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["./missing", "~/missing-synthoct", "a/b/c", "tests/nothing"])
def test_a_path_that_looks_local_never_goes_to_the_hub(where: str, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("asked the Hub")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(ValueError, match="no dataset folder"):
        synthoct_bench.load(where)


def test_a_hub_id_without_a_network_reads_the_cache_or_says_so_at_once(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    load_module = importlib.import_module("synthoct_bench.dataset.load")
    asked = {}

    def cache_only(*args, **kwargs):
        asked.update(kwargs)
        raise LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(load_module, "_hub_reachable", lambda: False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cache_only)
    with pytest.raises(ValueError, match="the Hub cannot be reached.*not in the local cache"):
        synthoct_bench.load("org/name")
    assert asked["local_files_only"] is True


@pytest.mark.parametrize("noise", [True, 9.5, -1, "9"])
def test_a_level_must_be_one_of_the_dataset_integers(tiny_dataset: Path, noise):
    with pytest.raises(ValueError, match="noise level"):
        synthoct_bench.load(tiny_dataset, noise=noise)


def test_seeds_must_be_integers():
    from synthoct_bench import nlme

    with pytest.raises(ValueError, match="seed must be a non-negative integer, got 1.5"):
        nlme.simulate(np.zeros((2, 3)), seed=1.5)


# -- files -------------------------------------------------------------------------------


def test_written_files_get_the_usual_permissions(tiny_dataset: Path, tmp_path: Path):
    from synthoct_bench.atomic import write_json

    old = os.umask(0o022)
    try:
        ids, pred = _oracle(tiny_dataset)
        sub = write_submission(tmp_path / "s.parquet", ids, pred, noise=9, split="test")
        js = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    for path in (sub, js):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    expected = 0o666 & ~old
    for name in ("manifest.json", "README.md", TEST_SHARD):
        assert stat.S_IMODE((tiny_dataset / name).stat().st_mode) == expected, name


def test_the_card_states_how_many_subjects_each_fit_used(tiny_dataset: Path):
    card = (tiny_dataset / "README.md").read_text()
    used = {fit.n_subjects_used for fit in read_metadata(tiny_dataset).nlme.fits.values()}
    assert used == {52}
    assert "52 (of the 1,000 requested) training subjects" in card


def test_the_batched_png_writer_is_lossless_and_deterministic():
    from PIL import Image

    from synthoct_bench.dataset.writer import encode_png

    rng = np.random.default_rng(3)
    for shape in [(3, 1, 1), (2, 7, 5), (2, 32, 32), (1, 3, 300)]:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        blobs = encode_png(images)
        assert blobs == encode_png(images)
        for blob, image in zip(blobs, images, strict=True):
            with Image.open(io.BytesIO(blob)) as img:
                assert img.mode == "L" and img.size == image.shape[::-1]
                np.testing.assert_array_equal(np.asarray(img), image)
    assert encode_png(np.zeros((0, 8, 8), np.uint8)) == []
