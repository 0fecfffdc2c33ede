"""The scorer's leaderboard contract: one JSON schema, levels in numeric order, a summary,
training seeds scored together, a leaderboard entry and a model-index for a model card."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import SEED_LEVELS as LEVELS
from conftest import seed_submission

from synthoct_bench.cli import main
from synthoct_bench.dataset import dataset_fingerprint
from synthoct_bench.scoring import (
    format_summary,
    leaderboard_entry,
    model_index_yaml,
    reports_payload,
    score,
    score_files,
)


def _each(flag, values):
    return [a for v in values for a in (flag, str(v))]


def test_one_schema_and_numeric_order_for_one_file_or_many(
    tiny_dataset, seeds_folder, tmp_path, capsys
):
    one = tmp_path / "one.json"
    rc = main(
        ["score", "--data", str(tiny_dataset), "--predictions",
         str(seeds_folder / "mine_seed1_s9.parquet"), "--json", str(one), "--n-bootstrap", "20",
         "--no-nll"]
    )  # fmt: skip
    assert rc == 0
    single = json.loads(one.read_text())
    assert set(single) == {"schema_version", "reports"} and single["schema_version"] == 1
    assert len(single["reports"]) == 1 and single["reports"][0]["noise"] == 9.0
    capsys.readouterr()

    many = tmp_path / "many.json"
    files = sorted(seeds_folder.glob("mine_seed1_*.parquet"))
    assert [f.stem.rsplit("_s", 1)[1] for f in files] == ["0", "1", "18", "49", "9"]
    copies = tmp_path / "seed1"
    copies.mkdir()
    for f in files:
        (copies / f.name).write_bytes(f.read_bytes())
    rc = main(
        ["score", "--data", str(tiny_dataset), "--predictions", str(copies), "--json",
         str(many), "--n-bootstrap", "20", "--no-nll", "--summary"]
    )  # fmt: skip
    assert rc == 0
    payload = json.loads(many.read_text())
    assert set(payload) == set(single) and set(payload["reports"][0]) == set(single["reports"][0])
    assert [r["noise"] for r in payload["reports"]] == [float(k) for k in LEVELS]
    text = capsys.readouterr().out
    rows = [line.split()[0] for line in text.splitlines() if line[:1].isdigit()]
    assert rows == [str(k) for k in LEVELS]
    assert "sigma2" in text and "R2 (eta_hat, eta_pred)" in text and "fraction of max" in text
    assert dataset_fingerprint(tiny_dataset) in text
    assert "at least 3" in text  # one seed per level is flagged


def test_summary_columns_with_seeds_and_nll(tiny_dataset, seeds_folder):
    reports = score_files([seeds_folder], tiny_dataset, seeds_of=["mine"], n_bootstrap=20, nll=True)
    assert [r.noise for r in reports] == [float(k) for k in LEVELS]
    assert all(r.n_seeds == 3 for r in reports)
    text = format_summary(reports)
    header = next(line for line in text.splitlines() if line.startswith("sigma2"))
    for column in ("R2 (eta_hat, eta_pred)", "fraction of max", "Table 2 Predicted NLL",
                   "R2 over seeds"):  # fmt: skip
        assert column in header
    row9 = next(line for line in text.splitlines() if line.startswith("9 "))
    r9 = reports[2]
    assert f"{r9['table2/predicted'].value:.1f}" in row9
    assert f"{r9.across_seeds['r2'].mean:.4f} ± {r9.across_seeds['r2'].sd:.4f}, 3" in row9
    assert "at least 3" not in text
    payload = reports_payload(reports)
    assert [r["seeds"]["n"] for r in payload["reports"]] == [3] * 5


def test_leaderboard_entry_and_model_index(tiny_dataset, seeds_folder, tmp_path, capsys):
    from huggingface_hub import ModelCard

    entry_path, card_path = tmp_path / "mine.jsonl", tmp_path / "mine.yaml"
    rc = main(
        ["score", "--data", str(tiny_dataset), "--predictions", str(seeds_folder),
         "--seeds-of", "mine", "--n-bootstrap", "20", "--summary",
         "--leaderboard-entry", str(entry_path), "--model-index", str(card_path),
         "--dataset-id", "org/synthoct-tiny"]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    lines = entry_path.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["schema_version"] == 1 and entry["model"] == "mine"
    assert entry["dataset"]["fingerprint"] == dataset_fingerprint(tiny_dataset)
    assert entry["dataset"]["revision"] is None and entry["split"] == "test"
    assert entry["scorer_version"] and len(entry["date"]) == 10
    assert [lv["noise"] for lv in entry["levels"]] == list(LEVELS)
    for lv in entry["levels"]:
        assert lv["r2"]["low"] <= lv["r2"]["value"] <= lv["r2"]["high"]
        assert set(lv["fraction_of_max"]) == {"value", "low", "high"}
        assert lv["n_seeds"] == 3 and len(lv["seeds"]["r2"]["values"]) == 3
        assert len(lv["submissions_sha256"]) == 3
        assert lv["table2_predicted_nll"] is not None

    text = card_path.read_text()
    assert dataset_fingerprint(tiny_dataset) in text.splitlines()[0]
    meta = yaml.safe_load(text)
    (model,) = meta["model-index"]
    assert model["name"] == "mine"
    card = ModelCard(f"---\n{text}---\n")
    results = card.data.eval_results
    assert len(results) == 3 * len(LEVELS)
    configs = {r.dataset_config for r in results}
    assert configs == {f"sigma2_{k}" for k in LEVELS}
    assert {r.dataset_type for r in results} == {"org/synthoct-tiny"}
    r2_9 = next(
        r for r in results if r.dataset_config == "sigma2_9" and r.metric_type == "r_squared"
    )
    assert r2_9.metric_value == pytest.approx(entry["levels"][2]["r2"]["value"], abs=1e-6)
    assert "CI" in r2_9.metric_name and "3 training seeds" in r2_9.metric_name


def test_leaderboard_refusals(tiny_dataset, seeds_folder, tmp_path, capsys):
    files = sorted(seeds_folder.glob("mine_seed*_s9.parquet"))
    rep = score(files, tiny_dataset, noise=9, n_bootstrap=10, nll=False)
    other = score(
        seed_submission(tmp_path, tiny_dataset, 1, 7, model="theirs"),
        tiny_dataset,
        noise=1,
        n_bootstrap=10,
        nll=False,
    )
    with pytest.raises(ValueError, match="one model"):
        leaderboard_entry([rep, other])
    with pytest.raises(ValueError, match="share a noise level"):
        leaderboard_entry([rep, rep])
    untied = score(
        seed_submission(tmp_path, tiny_dataset, 9, 8, model="loose", tied=False),
        tiny_dataset,
        noise=9,
        n_bootstrap=10,
        nll=False,
    )
    with pytest.raises(ValueError, match="fully checked.*fingerprint"):
        leaderboard_entry([untied])
    with pytest.raises(ValueError, match="local folder"):
        model_index_yaml([rep])
    assert "mine" in model_index_yaml([rep], dataset_id="org/name")

    # CLI: a refusal is one line, exit 2, and writes none of the outputs.
    entry_path, card_path = tmp_path / "e.jsonl", tmp_path / "m.yaml"
    rc = main(
        ["score", "--data", str(tiny_dataset), *_each("--predictions", files),
         "--seeds-of", "mine", "--n-bootstrap", "10", "--no-nll",
         "--leaderboard-entry", str(entry_path), "--model-index", str(card_path)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--dataset-id" in err and len(err.strip().splitlines()) == 1
    assert not entry_path.exists() and not card_path.exists()


def test_cli_seed_grouping_errors(tiny_dataset, seeds_folder, tmp_path, capsys):
    base = ["score", "--data", str(tiny_dataset), "--n-bootstrap", "10", "--no-nll"]
    two = [str(seeds_folder / f"mine_seed{s}_s9.parquet") for s in (1, 2)]
    cases = [
        (_each("--predictions", two), "--seeds-of mine"),
        (["--predictions", two[0], "--seeds-of", "mine"], "at least two files"),
        (["--predictions", two[0], "--seeds-of", "nobody"], "'nobody'"),
        ([*_each("--predictions", two), "--seeds-of", "mine", "--compare", two[0]], "one"),
    ]
    for extra, phrase in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert phrase in err and len(err.strip().splitlines()) == 1, err
