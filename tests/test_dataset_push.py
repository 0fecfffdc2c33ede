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

    def upload_folder(self, **kwargs):
        FakeApi.calls.append(("upload_folder", (), kwargs))

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
    assert names == ["init", "create_repo", "create_branch", "upload_folder", "create_tag"]
    upload = FakeApi.calls[3][2]
    assert upload["repo_type"] == "dataset" and upload["revision"] == "v1-branch"
    assert upload["folder_path"] == str(tiny_dataset)
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    assert sorted(upload["allow_patterns"]) == sorted(
        ["README.md", "manifest.json", *(e["path"] for e in manifest["shards"])]
    )
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
