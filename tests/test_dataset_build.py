"""The builder end to end on tiny data: layout, content, determinism, resume, verify, load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from conftest import TINY_BUILD

import synthoct_bench
from synthoct_bench import latent
from synthoct_bench.commands import verify as verify_cmd
from synthoct_bench.dataset import (
    build,
    dataset_fingerprint,
    merge,
    read_columns,
    read_metadata,
    verify,
)
from synthoct_bench.dataset import pipeline as pipeline_module
from synthoct_bench.dataset.records import Manifest
from synthoct_bench.nlme import PopulationParams, simulate
from synthoct_bench.paper import CITATION_BIBTEX

#: A cheaper build for the tests that build several times: one noise level, 5 shards.
SMALL_BUILD = {**TINY_BUILD, "n": 30, "shard_size": 10, "noise_levels": (9,)}


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "reference"
    build(out, **SMALL_BUILD)
    return out


def _shard_hashes(root: Path) -> dict[str, str]:
    return {e.path: e.sha256 for e in read_metadata(root).shards}


def test_layout_and_manifest(tiny_dataset: Path):
    files = sorted(p.name for p in (tiny_dataset / "data").iterdir())
    assert files == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
        "validation-00000-of-00001.parquet",
    ]
    meta = read_metadata(tiny_dataset)
    assert {k: v.to_dict() for k, v in meta.splits.items()} == {
        "train": {"n": 52, "first_id": 0, "shards": 2},
        "validation": {"n": 3, "first_id": 52, "shards": 1},
        "test": {"n": 5, "first_id": 55, "shards": 1},
    }
    assert meta.noise_levels == (0, 1, 9, 18, 49)
    assert set(meta.nlme.fits) == {0, 1, 9, 18, 49}
    for fit in meta.nlme.fits.values():
        PopulationParams.from_dict(fit.params)  # round-trips
        assert fit.n_subjects_used <= 52
    assert meta.generator.config["name"] == "phantom"
    assert {"numpy", "pyarrow", "synthoct-bench"} <= set(meta.software)
    # the typed manifest round-trips through the JSON it was read from
    on_disk = json.loads((tiny_dataset / "manifest.json").read_text())
    assert meta.to_dict() == on_disk
    assert Manifest.from_dict(meta.to_dict()) == meta
    assert verify(tiny_dataset).ok


def test_shards_store_png_bytes_as_they_are_and_compress_the_rest(tiny_dataset: Path):
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(tiny_dataset / "data" / "train-00000-of-00002.parquet").metadata
    codecs = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).compression
              for i in range(meta.num_columns)}  # fmt: skip
    assert codecs.pop("image.bytes") == "UNCOMPRESSED"
    assert {"subject_id", "eta.list.element", "obs_s49.list.element"} <= set(codecs)
    assert set(codecs.values()) == {"ZSTD"}
    assert read_metadata(tiny_dataset).writer.parquet["uncompressed_columns"] == ["image.bytes"]


def test_columns_are_the_pipeline_of_rng_latent_and_nlme(tiny_dataset: Path):
    meta = read_metadata(tiny_dataset)
    cols = read_columns(
        tiny_dataset, "validation", ["subject_id", "z", "eta", "eta_noisy_s9", "obs_s9", "time"]
    )
    ids = cols["subject_id"]
    assert ids.tolist() == [52, 53, 54]
    z = latent.sample_z(ids, seed=0)
    np.testing.assert_array_equal(cols["z"], z.astype(np.float32))
    eta = latent.select_eta(z, meta.eta_dims)
    np.testing.assert_array_equal(cols["eta"], eta.astype(np.float32))
    noisy = latent.add_noise(eta, 9, ids, 0)
    np.testing.assert_array_equal(cols["eta_noisy_s9"], noisy.astype(np.float32))
    obs = simulate(noisy, 0, subject_ids=ids, stream="residual/s9")
    np.testing.assert_array_equal(cols["obs_s9"], obs.astype(np.float32))
    assert cols["time"].shape == (3, 21) and cols["time"][0, -1] == 10.0


def test_ebe_targets_track_the_noisy_effects(tiny_dataset: Path):
    cols = read_columns(tiny_dataset, "train", ["eta_noisy_s0", "eta_ebe_s0", "eta_ebe_s49"])
    assert cols["eta_ebe_s0"].shape == (52, 3) and cols["eta_ebe_s0"].dtype == np.float32
    assert np.isfinite(cols["eta_ebe_s0"]).all()
    # EBEs shrink towards 0 and lose the ridge direction, but must correlate with η̂
    r = np.corrcoef(cols["eta_noisy_s0"][:, 0], cols["eta_ebe_s0"][:, 0])[0, 1]
    assert r > 0.5
    assert not np.array_equal(cols["eta_ebe_s0"], cols["eta_ebe_s49"])


def test_datasets_loads_every_config_without_a_script(tiny_dataset: Path):
    ds = datasets.load_dataset(str(tiny_dataset), "sigma2_9", split="train")
    assert ds.num_rows == 52
    assert set(ds.column_names) == {
        "subject_id",
        "image",
        "time",
        "eta",
        "eta_noisy_s9",
        "eta_ebe_s9",
        "obs_s9",
    }
    assert ds.features["image"] == datasets.Image(mode="L")
    img = ds[0]["image"]
    assert img.mode == "L" and img.size == (32, 32)
    default = datasets.load_dataset(str(tiny_dataset), split="test")
    assert "eta_ebe_s9" in default.column_names  # the default config is sigma2_9
    lat = datasets.load_dataset(str(tiny_dataset), "latents", split="validation")
    assert lat.column_names == ["subject_id", "z", "eta"] and len(lat[0]["z"]) == 128
    everything = datasets.load_dataset(str(tiny_dataset), "all", split="test")
    assert "obs_s49" in everything.column_names and "z" in everything.column_names
    stream = datasets.load_dataset(str(tiny_dataset), "sigma2_49", split="test", streaming=True)
    first = next(iter(stream))
    assert first["subject_id"] == 55 and len(first["obs_s49"]) == 21


def test_load_gives_the_same_names_at_every_level(tiny_dataset: Path):
    a = synthoct_bench.load(tiny_dataset, noise=0, split="test")
    b = synthoct_bench.load(tiny_dataset, noise=49, split="test")
    expected = ["image", "time", "eta", "eta_noisy", "eta_ebe", "obs", "subject_id"]
    assert a.column_names == expected and b.column_names == expected
    assert a[0]["eta"] == b[0]["eta"] and a[0]["obs"] != b[0]["obs"]
    s = synthoct_bench.load(tiny_dataset, noise=9, split="validation", streaming=True)
    assert sorted(next(iter(s))) == sorted(expected)


def test_every_level_is_a_view_of_one_cache(tiny_dataset: Path):
    """All five levels read one Arrow cache (one copy of the images), and each level's
    view holds that level's stored values."""
    levels = read_metadata(tiny_dataset).noise_levels
    views = {k: synthoct_bench.load(tiny_dataset, noise=k, split="validation") for k in levels}
    caches = {f["filename"] for ds in views.values() for f in ds.cache_files}
    assert len(caches) == 1
    for k, ds in views.items():
        stored = read_columns(tiny_dataset, "validation", [f"eta_ebe_s{k}", f"obs_s{k}"])
        np.testing.assert_array_equal(
            np.asarray(ds["eta_ebe"], np.float32), stored[f"eta_ebe_s{k}"]
        )
        np.testing.assert_array_equal(np.asarray(ds["obs"], np.float32), stored[f"obs_s{k}"])
        assert ds.features["image"].mode == "L"


def test_unknown_level_split_or_column_says_what_exists(tiny_dataset: Path):
    with pytest.raises(ValueError, match="it has 0, 1, 9, 18, 49"):
        synthoct_bench.load(tiny_dataset, noise=4)
    with pytest.raises(ValueError, match="has train, validation, test"):
        synthoct_bench.load(tiny_dataset, split="dev")
    with pytest.raises(ValueError, match="unknown column.*eta_ebe_s5.*this dataset has"):
        read_columns(tiny_dataset, "test", ["eta_ebe_s5"])
    with pytest.raises(ValueError, match="neither an existing folder nor a Hub repo id"):
        read_metadata("/no/such/folder")


def test_card_records_configs_fits_and_citation(tiny_dataset: Path):
    card = (tiny_dataset / "README.md").read_text()
    header = card.split("---")[1]
    assert "config_name: sigma2_18" in header and "config_name: latents" in header
    assert "num_examples: 52" in header and "length: 21" in header and "mode: L" in header
    assert "&id" not in header  # no YAML anchors
    for text in ("Deltadahl", "Korsbo", "FOCE", "synthetic", "License", "sha256"):
        assert text in card
    assert dataset_fingerprint(tiny_dataset) in card
    # One citation: the card's equals the repository README's, character for character.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for text in (card, readme):
        block = text.split("```bibtex\n", 1)[1].split("\n```", 1)[0]
        assert block == CITATION_BIBTEX
    # Prose that must match the data: three per-level things, and z in two configs.
    assert "three things" in card and "five things" not in card
    header_configs = {c["config_name"]: c.get("columns") for c in yaml.safe_load(header)["configs"]}
    z_configs = {name for name, cols in header_configs.items() if cols is None or "z" in cols}
    assert z_configs == {"latents", "all"}
    assert "(configs `latents` and `all`; not in `sigma2_{k}`)" in card


def test_same_seed_same_bytes_whatever_the_workers(small_reference: Path, tmp_path: Path):
    out = tmp_path / "two_workers"
    summary = build(out, **SMALL_BUILD, workers=2)
    assert summary.merged and summary.shards_built == 5
    assert _shard_hashes(out) == _shard_hashes(small_reference)
    ref = (small_reference / "manifest.json").read_bytes()
    assert (out / "manifest.json").read_bytes() == ref
    assert dataset_fingerprint(out) == dataset_fingerprint(small_reference)


def test_a_failed_fit_stops_the_workers_rendering_behind_it(tmp_path: Path):
    # the fit fails inside the pool (a bad option value); the shards queued behind it
    # must stop at their EBEs instead of waiting, and nothing may be published
    out = tmp_path / "failed_fit"
    with pytest.raises(TypeError):
        build(out, **SMALL_BUILD, workers=2, fit_options={"em_iter": "three"})
    assert not (out / "_build" / "fits.json").exists()
    assert not list(out.rglob("*.parquet")) and not (out / "manifest.json").exists()


def test_killed_build_resumes_to_identical_bytes(small_reference, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    real = pipeline_module.shard_table
    calls = {"n": 0}

    def dies_on_third(rendered, config, fitted_params, timings):
        calls["n"] += 1
        if calls["n"] == 3:
            tmp = out / (rendered.spec.path + ".tmp")
            tmp.write_bytes(b"half a shard")  # as if killed mid-write
            raise KeyboardInterrupt("killed")
        return real(rendered, config, fitted_params, timings)

    build_module = sys.modules["synthoct_bench.dataset.build"]  # the package attr is build()
    monkeypatch.setattr(build_module, "shard_table", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build(out, **SMALL_BUILD)
    assert not (out / "manifest.json").exists()
    assert len(list((out / "data").glob("*.parquet"))) == 2
    report = verify(out)
    assert not report.ok and "manifest.json is missing" in report.problems[0]
    with pytest.raises(ValueError, match="--resume"):
        build(out, **SMALL_BUILD)
    # a corrupted finished shard must be rebuilt too, not trusted
    victim = out / "data" / "train-00000-of-00003.parquet"  # SMALL_BUILD: 3 train shards
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(build_module, "shard_table", real)
    summary = build(out, **SMALL_BUILD, resume=True)
    assert summary.shards_built == 4 and summary.shards_skipped == 1
    assert _shard_hashes(out) == _shard_hashes(small_reference)
    assert not list(out.rglob("*.tmp"))
    assert verify(out).ok
    with pytest.raises(ValueError, match="different settings.*seed"):
        build(out, **{**SMALL_BUILD, "seed": 1}, resume=True)


def test_ranks_split_the_shards_then_merge(small_reference: Path, tmp_path: Path):
    out = tmp_path / "ranks"
    first = build(out, **SMALL_BUILD, rank=1, world=2)
    assert not first.merged and first.shards_built == 2  # shards 1 and 3 of 0..4
    with pytest.raises(ValueError, match="3 shard\\(s\\) not built yet"):
        merge(out)
    second = build(out, **SMALL_BUILD, rank=0, world=2)
    assert second.merged and second.shards_built == 3
    assert _shard_hashes(out) == _shard_hashes(small_reference)


def test_verify_names_missing_and_corrupt_shards(tiny_dataset: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    (copy / "data" / "test-00000-of-00001.parquet").unlink()
    bad = copy / "data" / "train-00001-of-00002.parquet"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    report = verify(copy)
    assert not report.ok
    assert any("test-00000-of-00001.parquet: missing" in p for p in report.problems)
    assert any("train-00001-of-00002.parquet: corrupt" in p for p in report.problems)
    assert len(report.problems) == 2

    import argparse

    parser = argparse.ArgumentParser()
    verify_cmd.configure(parser)
    assert verify_cmd.run(parser.parse_args([str(copy)])) == 1
    assert "missing" in capsys.readouterr().out
    assert verify_cmd.run(parser.parse_args([str(tiny_dataset)])) == 0


def test_build_refuses_bad_settings(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown preset"):
        build(tmp_path / "x", preset="nope", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        build(tmp_path / "full", **TINY_BUILD)
    with pytest.raises(ValueError, match="unknown generator"):
        build(tmp_path / "y", **{**TINY_BUILD, "generator": "nope"})


def test_manifest_has_no_timestamps_or_paths(tiny_dataset: Path):
    text = (tiny_dataset / "manifest.json").read_text()
    assert str(tiny_dataset) not in text
    meta = json.loads(text)
    assert all(not e["path"].startswith("/") for e in meta["shards"])


@pytest.mark.slow
def test_two_machines_from_torchrun_and_slurm_variables_then_merge(
    small_reference: Path, tmp_path: Path
):
    """Two `synthoct build` processes at once, their ranks read from torchrun's RANK /
    WORLD_SIZE, then a SLURM array's variables, give the one-machine shards."""
    argv = [sys.executable, "-m", "synthoct_bench.cli", "build", "--n", "30", "--image-size",
            "32", "--shard-size", "10", "--noise-levels", "9", "--seed", "0", "--fit-arg",
            "compute_se=false", "--fit-arg", "em_iter=5", "--fit-arg", "max_iter=0",
            "--no-progress"]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD"))}
    rank_vars = {
        "torchrun": [{"RANK": str(r), "WORLD_SIZE": "2"} for r in (0, 1)],
        "slurm": [
            {
                "SLURM_ARRAY_TASK_ID": str(r + 1),
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_COUNT": "2",
            }
            for r in (0, 1)
        ],  # fmt: skip
    }
    for launcher, envs in rank_vars.items():
        out = tmp_path / launcher
        procs = [
            subprocess.Popen([*argv, "--out", str(out)], env={**clean, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for env in envs
        ]  # fmt: skip
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
        merged = subprocess.run([*argv[:4], "--merge", "--out", str(out)], env=clean,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert merged.returncode == 0, merged.stderr
        assert _shard_hashes(out) == _shard_hashes(small_reference), launcher
        assert verify(out).ok
