"""Presets, splits, shard plan, column types and rank/world resolution of the builder."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from synthoct_bench.dataset.features import arrow_schema, features_yaml, hf_features_dict
from synthoct_bench.dataset.layout import (
    PRESETS,
    all_columns,
    config_columns,
    parse_noise_levels,
    plan_shards,
    resolve_splits,
    split_sizes,
)
from synthoct_bench.ranks import resolve_rank_world


def test_full_preset_has_the_paper_splits():
    assert PRESETS["full"] == {"train": 950_000, "validation": 50_000, "test": 100_000}
    assert PRESETS["small"] == split_sizes(55_000)
    # mini's test split is enlarged so that it can be scored at noise 49
    assert PRESETS["mini"] == {"train": 1_900, "validation": 100, "test": 2_000}
    for n in (3, 7, 60, 1234, 99_999):
        sizes = split_sizes(n)
        assert sum(sizes.values()) == n and min(sizes.values()) >= 1


def test_resolve_splits_and_bad_input_name_the_fix():
    assert sum(resolve_splits("small", None).values()) == 55_000
    assert resolve_splits("full", 500) == split_sizes(500)
    with pytest.raises(ValueError, match="mini, small, full"):
        resolve_splits("huge", None)
    with pytest.raises(ValueError, match="n must be >= 3"):
        resolve_splits(None, 2)


def test_mini_can_tell_the_oracle_from_the_average_at_noise_49():
    from synthoct_bench import latent
    from synthoct_bench.scoring import score_arrays

    n = PRESETS["mini"]["test"]
    ids = np.arange(n) + 10_000
    eta = latent.select_eta(latent.sample_z(ids, 0))
    noisy = latent.add_noise(eta, 49, ids, 0)
    oracle = score_arrays(eta, noisy, noisy, eta / np.sqrt(50), 49, nll=False, n_bootstrap=300)
    assert oracle.r2.low > 0.005 and not oracle.warnings
    average = score_arrays(eta, noisy, noisy, np.zeros_like(eta), 49, nll=False, n_bootstrap=300)
    assert average.r2.high < oracle.r2.low


def test_shards_tile_ids_contiguously_in_split_order():
    shards = plan_shards({"train": 52, "validation": 3, "test": 5}, 20)
    assert [s.path for s in shards] == [
        "data/train-00000-of-00003.parquet",
        "data/train-00001-of-00003.parquet",
        "data/train-00002-of-00003.parquet",
        "data/validation-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    ]
    cursor = 0
    for s in shards:
        assert s.first_id == cursor
        cursor = s.last_id + 1
    assert cursor == 60
    assert [s.rows for s in shards] == [20, 20, 12, 3, 5]


def test_noise_levels_are_validated():
    assert parse_noise_levels("0, 1,9") == (0, 1, 9)
    with pytest.raises(ValueError, match="distinct"):
        parse_noise_levels([1, 1])
    with pytest.raises(ValueError, match="non-negative integers"):
        parse_noise_levels([0.5])


def test_features_match_datasets_own_serialisation():
    levels = (0, 9)
    cols = all_columns(levels)
    expected = datasets.Features.from_dict(hf_features_dict(cols))
    assert expected.arrow_schema.remove_metadata() == arrow_schema(levels).remove_metadata()
    assert expected._to_yaml_list() == features_yaml(cols)
    assert expected["image"] == datasets.Image(mode="L")
    assert expected["obs_s9"] == datasets.List(datasets.Value("float32"), length=21)


def test_config_columns():
    assert config_columns("sigma2_9", (0, 9)) == (
        "subject_id",
        "image",
        "time",
        "eta",
        "eta_noisy_s9",
        "eta_ebe_s9",
        "obs_s9",
    )
    assert "z" in config_columns("latents", (0, 9))
    with pytest.raises(ValueError, match="sigma2_0, sigma2_9, all, latents"):
        config_columns("sigma2_5", (0, 9))


def test_rank_world_from_flags_torchrun_and_slurm(monkeypatch):
    for var in (
        "RANK",
        "WORLD_SIZE",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
    ):
        monkeypatch.delenv(var, raising=False)
    assert resolve_rank_world() == (0, 1)
    assert resolve_rank_world(2, 4) == (2, 4)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "8")
    assert resolve_rank_world() == (4, 8)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert resolve_rank_world() == (1, 3)  # torchrun wins over SLURM
    with pytest.raises(ValueError, match="0 <= rank < world"):
        resolve_rank_world(3, 3)


def test_explicit_splits_parse_and_name_the_problem():
    from synthoct_bench.dataset.layout import parse_splits

    assert parse_splits("train=20, validation=5,test=40") == {
        "train": 20,
        "validation": 5,
        "test": 40,
    }
    with pytest.raises(ValueError, match="unknown split"):
        parse_splits("train=20,valid=5,test=4")
    with pytest.raises(ValueError, match="at least one subject"):
        parse_splits("train=20,test=4")
    with pytest.raises(ValueError, match="e.g. train=2000"):
        parse_splits("train=lots")


def test_build_with_explicit_splits(tmp_path):
    from synthoct_bench.dataset import build, read_metadata

    summary = build(
        tmp_path / "d",
        splits={"train": 20, "validation": 3, "test": 9},
        image_size=32,
        noise_levels=(0,),
        fit_subjects=20,
        fit_options={"compute_se": False},
        progress=False,
    )
    assert summary.splits == {"train": 20, "validation": 3, "test": 9}
    meta = read_metadata(tmp_path / "d")
    assert {k: v.n for k, v in meta.splits.items()} == summary.splits
    assert meta.splits["test"].first_id == 23
    # too few training subjects for a population fit: refused before any work
    with pytest.raises(ValueError, match="at least 20 training subjects.*would get 1"):
        build(tmp_path / "e", n=3, image_size=32, progress=False)
    assert not (tmp_path / "e").exists()


def test_one_column_table_types_every_stored_column():
    from synthoct_bench.dataset.features import N_OBS, column_type
    from synthoct_bench.dataset.layout import level_column, parse_level_column
    from synthoct_bench.nlme import OBS_TIMES

    assert N_OBS == len(OBS_TIMES)
    for name in all_columns((0, 1, 9, 18, 49)):
        column_type(name)  # raises for a column the table does not type
    assert level_column("eta_ebe", 9) == "eta_ebe_s9"
    assert parse_level_column("eta_ebe_s9") == ("eta_ebe", 9)
    assert parse_level_column("eta") is None and parse_level_column("obs_sx") is None
    with pytest.raises(ValueError, match="unknown column"):
        column_type("eta_pred")


def test_score_warns_when_a_split_cannot_tell_a_model_from_the_mean():
    from synthoct_bench import latent
    from synthoct_bench.scoring import score_arrays

    ids = np.arange(60)
    eta = latent.select_eta(latent.sample_z(ids, 0))
    noisy = latent.add_noise(eta, 49, ids, 0)
    report = score_arrays(eta, noisy, noisy, eta / np.sqrt(50), 49, nll=False, n_bootstrap=300)
    assert report.r2.low <= 0 <= report.r2.high
    assert "cannot tell this model from predicting the mean" in report.warnings[0]
    assert "WARNING: the R2 interval" in str(report)
    assert report.to_dict()["warnings"] == report.warnings
