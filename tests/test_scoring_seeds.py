"""Several training seeds of one model in one score: each metric is the seed mean
(bootstrapped on shared resamples) with every seed's value, their mean and sample SD."""

from __future__ import annotations

import json
import statistics

import pytest
from conftest import seed_submission

from synthoct_bench.scoring import score


def test_several_seeds_average_per_seed_scores(tiny_dataset, seeds_folder):
    files = sorted(seeds_folder.glob("mine_seed*_s9.parquet"))
    rep = score(files, tiny_dataset, noise=9, n_bootstrap=40, seed=1)
    alone = [score(f, tiny_dataset, noise=9, n_bootstrap=40, seed=1) for f in files]
    assert rep.n_seeds == 3 and rep.model == "mine"
    for name in ("r2", "fraction_of_max", "table2/predicted", "table1/eta_ebe/eta_pred/r2"):
        values = [a[name].value for a in alone]
        spread = rep.across_seeds[name]
        assert spread.values == pytest.approx(values, rel=1e-12)
        assert spread.sd == pytest.approx(statistics.stdev(values), rel=1e-9)
        # the headline value is the seed mean, and its interval bootstraps that mean
        assert rep[name].value == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert rep[name].low <= rep[name].value <= rep[name].high
    assert len({round(v, 12) for v in rep.across_seeds["r2"].values}) == 3
    # shared metrics (not the submission's) are not spread over seeds
    assert "table2/true" not in rep.across_seeds and "table2/true" in rep.estimates
    assert "table1/eta_noisy/eta_pred/r2" not in rep.across_seeds  # that is r2 again
    out = json.loads(json.dumps(rep.to_dict()))
    assert out["seeds"]["n"] == 3
    assert out["seeds"]["metrics"]["r2"]["values"] == pytest.approx(values_of(alone, "r2"))
    assert [s["source"] for s in out["submissions"]] == [str(f) for f in files]
    text = str(rep)
    assert "3 training seeds" in text and "Across 3 training seeds" in text
    assert f"{rep.across_seeds['r2'].mean:.4f} ± {rep.across_seeds['r2'].sd:.4f}" in text


def values_of(reports, name):
    return [r[name].value for r in reports]


def test_seeds_must_be_one_model_and_distinct_files(tiny_dataset, seeds_folder, tmp_path):
    mine = seeds_folder / "mine_seed1_s9.parquet"
    other = seed_submission(tmp_path, tiny_dataset, 9, 4, model="theirs")
    with pytest.raises(ValueError, match="models mine, theirs"):
        score([mine, other], tiny_dataset, noise=9, n_bootstrap=10, nll=False)
    with pytest.raises(ValueError, match="given twice"):
        score([mine, str(mine)], tiny_dataset, noise=9, n_bootstrap=10, nll=False)
    with pytest.raises(ValueError, match="not several training seeds"):
        pair = [mine, seeds_folder / "mine_seed2_s9.parquet"]
        score(pair, tiny_dataset, noise=9, compare=other, n_bootstrap=10, nll=False)
