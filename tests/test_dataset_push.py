"""`synthoct push` up to the upload call: plan, verification gate, HfApi calls, no token leak."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from synthoct_bench.commands import push as push_cmd
from synthoct_bench.dataset.push import plan_push, push

SECRET = "hf_SECRETtokenNEVERshown0123456789"


class FakeApi:
    """Records calls instead of talking to the Hub."""

    calls: list[tuple[str, tuple, dict]] = []

    def __init__(self, token=None):
        FakeApi.calls.append(("init", (), {"token_given": token is not None}))

    def create_repo(self, *args, **kwargs):
        FakeApi.calls.append(("create_repo", args, kwargs))

    def create_branch(self, *args, **kwargs):
        FakeApi.calls.append(("create_branch", args, kwargs))

    def create_commit(self, **kwargs):
        FakeApi.calls.append(("create_commit", (), kwargs))

        class Info:
            oid = "abc123"
            commit_url = "https://huggingface.co/datasets/org/name/commit/abc123"

        return Info()

    def create_tag(self, *args, **kwargs):
        FakeApi.calls.append(("create_tag", args, kwargs))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    push_cmd.configure(parser)
    return parser


def test_dry_run_lists_files_and_skips_build_state(tiny_dataset: Path, capsys):
    plan = plan_push(tiny_dataset, "org/name")
    rels = [rel for _, rel, _ in plan.files]
    assert "README.md" in rels and "manifest.json" in rels
    assert sum(r.startswith("data/") for r in rels) == 4
    assert not any(r.startswith("_build") for r in rels)
    code = push_cmd.run(
        _parser().parse_args(
            [str(tiny_dataset), "--repo-id", "org/name", "--dry-run", "--tag", "v1"]
        )
    )
    out = capsys.readouterr().out
    assert code == 0 and "dry run" in out and "data/test-00000-of-00001.parquet" in out


def test_upload_calls_hfapi_and_never_shows_the_token(tiny_dataset, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    FakeApi.calls.clear()
    args = _parser().parse_args(
        [str(tiny_dataset), "--repo-id", "org/name", "--revision", "v1-branch", "--tag", "v1.0"]
    )
    assert push_cmd.run(args) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    names = [c[0] for c in FakeApi.calls]
    assert names == ["init", "create_repo", "create_branch", "create_commit", "create_tag"]
    commit = FakeApi.calls[3][2]
    assert commit["repo_type"] == "dataset" and commit["revision"] == "v1-branch"
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    sent = {op.path_in_repo: op.path_or_fileobj for op in commit["operations"]}
    assert sorted(sent) == sorted(
        ["README.md", "manifest.json", *(e["path"] for e in manifest["shards"])]
    )
    assert sent["manifest.json"] == str(tiny_dataset / "manifest.json")
    card = sent["README.md"].decode("utf-8")  # the rendered copy, as bytes
    assert 'load_dataset("org/name", "sigma2_9", split="train", revision="v1.0")' in card
    assert "ORG/synthoct-bench" not in card
    assert FakeApi.calls[4][2]["revision"] == "abc123"  # the tag pins the uploaded commit
    assert FakeApi.calls[0][2]["token_given"] is False  # the library resolves HF_TOKEN itself
    assert "abc123" in captured.out


def test_push_refuses_a_dataset_that_fails_verification(tiny_dataset, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    FakeApi.calls.clear()
    copy = tmp_path / "broken"
    shutil.copytree(tiny_dataset, copy)
    (copy / "data" / "validation-00000-of-00001.parquet").unlink()
    with pytest.raises(ValueError, match="validation-00000-of-00001.parquet: missing"):
        push(copy, "org/name")
    assert FakeApi.calls == []
    with pytest.raises(ValueError, match="ORG/NAME"):
        plan_push(tiny_dataset, "just-a-name")


def test_push_sends_exactly_the_dataset_and_refuses_symlinks(tiny_dataset, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(tiny_dataset, copy)
    (copy / ".env").write_text("HF_TOKEN=secret\n")
    (copy / ".git").mkdir()
    (copy / ".git" / "config").write_text("[core]\n")
    (copy / "notes.txt").write_text("private\n")
    rels = [rel for _, rel, _ in plan_push(copy, "org/name").files]
    assert rels[:2] == ["README.md", "manifest.json"]
    assert all(r.startswith("data/") and r.endswith(".parquet") for r in rels[2:])
    assert len(rels) == 2 + 4
    card = copy / "README.md"
    target = tmp_path / "elsewhere.md"
    target.write_text(card.read_text())
    card.unlink()
    card.symlink_to(target)
    with pytest.raises(ValueError, match="symlink"):
        plan_push(copy, "org/name")


def test_push_offline_is_one_line_and_exit_2(tiny_dataset, monkeypatch, capsys):
    import huggingface_hub
    import requests

    from synthoct_bench.cli import main

    class Offline(FakeApi):
        def create_repo(self, *args, **kwargs):
            raise requests.ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    assert main(["push", str(tiny_dataset), "--repo-id", "org/name"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Failed to resolve" in err and SECRET not in err


def test_upload_card_names_the_repo_and_leaves_the_local_card_alone(tiny_dataset, tmp_path):
    from huggingface_hub import DatasetCard, DatasetCardData

    from synthoct_bench.dataset.card import card_data, card_yaml, dataset_version
    from synthoct_bench.dataset.load import dataset_fingerprint, read_metadata

    local = (tiny_dataset / "README.md").read_text(encoding="utf-8")
    before = dataset_fingerprint(tiny_dataset)
    plan = plan_push(tiny_dataset, "me/oct", revision="v2")
    assert 'synthoct_bench.load("me/oct", noise=9, split="train", revision="v2")' in plan.card
    assert "ORG/synthoct-bench" in local and "me/oct" not in local
    assert (tiny_dataset / "README.md").read_text(encoding="utf-8") == local
    assert dataset_fingerprint(tiny_dataset) == before
    assert plan.files[0][1:] == ("README.md", len(plan.card.encode("utf-8")))
    main = plan_push(tiny_dataset, "me/oct").card
    assert 'split="train")' in main and 'revision="' not in main
    # the header is built and parsed back by huggingface_hub's card classes, offline
    meta = read_metadata(tiny_dataset)
    data = DatasetCard(plan.card).data
    assert isinstance(data, DatasetCardData)
    assert data.to_dict() == card_data(meta, data.license).to_dict()
    assert data.to_dict() == card_yaml(meta, data.license)
    assert data.dataset_version == dataset_version(meta) and data.format_version == 1
    assert f"Dataset version {dataset_version(meta)}" in plan.card
