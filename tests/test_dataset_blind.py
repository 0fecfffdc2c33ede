"""A blind build: the public test split without references, the private references file,
and scoring, loading, verifying and pushing around them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TINY_BUILD

import synthoct_bench
from synthoct_bench.cli import main
from synthoct_bench.dataset import build, dataset_fingerprint, read_columns, read_metadata, verify
from synthoct_bench.dataset.layout import BLIND_COLUMNS, reference_columns
from synthoct_bench.dataset.push import plan_push
from synthoct_bench.scoring import write_submission

REFS = "references/test.parquet"


@pytest.fixture(scope="module")
def blind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("blind") / "dataset"
    build(out, **TINY_BUILD, blind_test=True)
    return out


@pytest.fixture(scope="module")
def public(blind: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public release: the folder without references/ and build state."""
    out = tmp_path_factory.mktemp("public") / "dataset"
    shutil.copytree(blind, out, ignore=shutil.ignore_patterns("references", "_build"))
    return out


def _oracle(data: Path, folder: Path, noise: int = 9) -> Path:
    ids = read_columns(data, "test", ["subject_id"])["subject_id"]
    eta = read_columns(data, "test", ["eta"], references=data / REFS)["eta"]
    pred = eta.astype(np.float64) / np.sqrt(1 + noise)
    return write_submission(
        folder / "pred.parquet", ids, pred, noise=noise, split="test", dataset=data
    )


def test_test_shards_hold_images_and_ids_only_and_references_stay_private(blind: Path):
    meta = read_metadata(blind)
    assert meta.blind_split == "test" and meta.references.path == REFS
    (test_shard,) = [s.path for s in meta.shards if s.split == "test"]
    assert pq.read_schema(blind / test_shard).names == list(BLIND_COLUMNS)
    train = [s.path for s in meta.shards if s.split == "train"][0]
    assert "eta_ebe_s9" in pq.read_schema(blind / train).names
    refs = pq.read_table(blind / REFS)
    assert refs.column_names == list(reference_columns(meta.noise_levels))
    assert refs.column("subject_id").to_pylist() == list(range(55, 60))
    private = json.loads((blind / "references" / "manifest.json").read_text())
    assert private["dataset_fingerprint"] == dataset_fingerprint(blind)
    assert private["references"]["sha256"] == meta.references.sha256
    rels = [rel for _, rel, _ in plan_push(blind, "org/name").files]
    assert not any(r.startswith("references") for r in rels)
    card = (blind / "README.md").read_text(encoding="utf-8")
    assert "## Releases" in card and "blind" in card and meta.references.sha256 in card


def test_a_plain_build_records_no_references_and_the_same_values(tiny_dataset, blind):
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    assert "references" not in manifest and read_metadata(tiny_dataset).blind_split is None
    cols = ["subject_id", "image", "eta", "eta_ebe_s9", "obs_s49", "z"]
    plain = read_columns(tiny_dataset, "test", cols)
    hidden = read_columns(blind, "test", cols, references=blind / REFS)
    for c in cols:
        np.testing.assert_array_equal(hidden[c], plain[c])


def test_reference_columns_of_the_blind_split_are_refused_with_a_reason(public: Path):
    with pytest.raises(ValueError, match="test split of .* is blind: it holds only subject_id"):
        read_columns(public, "test", ["subject_id", "eta_ebe_s9"])
    ds = synthoct_bench.load(public, noise=9, split="test")
    assert ds.column_names == ["image", "subject_id"] and len(ds) == 5
    assert synthoct_bench.load(public, noise=9, split="train").column_names[-1] == "subject_id"
    import datasets

    assert datasets.load_dataset(str(public), "blind_test", split="test").num_rows == 5
    assert set(datasets.load_dataset(str(public), "sigma2_9")) == {"train", "validation"}


def test_score_needs_and_checks_the_references(blind: Path, public: Path, tmp_path: Path):
    pred = _oracle(blind, tmp_path)
    with pytest.raises(ValueError, match="blind"):
        synthoct_bench.score(pred, public, noise=9, nll=False, n_bootstrap=20)
    report = synthoct_bench.score(
        pred, public, noise=9, nll=False, n_bootstrap=20, references=blind / REFS
    )
    assert np.isfinite(report.estimates["r2"].value) and report.split == "test"
    assert report.provenance["references"] == str(blind / REFS)
    # an edited references file, and one of another dataset, are refused
    edited = tmp_path / "edited"
    shutil.copytree(blind / "references", edited)
    table = pq.read_table(edited / "test.parquet")
    pq.write_table(table.slice(0, 4), edited / "test.parquet")
    with pytest.raises(ValueError, match="not the references file"):
        synthoct_bench.score(pred, public, noise=9, nll=False, n_bootstrap=20, references=edited)
    other = tmp_path / "other"
    shutil.copytree(blind / "references", other)
    (other / "manifest.json").write_text(
        (other / "manifest.json").read_text().replace(dataset_fingerprint(blind), "0" * 64)
    )
    with pytest.raises(ValueError, match="belongs to the dataset with fingerprint 000000000000"):
        read_columns(public, "test", ["eta"], references=other / "test.parquet")
    with pytest.raises(ValueError, match="not blind"):
        read_columns(public, "train", ["eta"], references=blind / REFS)


def test_cli_blind_score_and_verify(blind: Path, public: Path, tmp_path: Path, capsys):
    pred = _oracle(blind, tmp_path)
    base = ["score", "--data", str(public), "--predictions", str(pred), "--no-nll"]
    base += ["--n-bootstrap", "20", "--summary"]
    assert main(base) == 2
    assert "blind" in capsys.readouterr().err
    assert main([*base, "--references", str(blind / REFS)]) == 0
    assert verify(public).ok and verify(blind).ok
    assert any("checked by image only" in c for c in verify(public).checked)
    broken = tmp_path / "broken"
    shutil.copytree(blind, broken, ignore=shutil.ignore_patterns("_build"))
    with open(broken / REFS, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    assert any("references/test.parquet: corrupt" in p for p in verify(broken).problems)
