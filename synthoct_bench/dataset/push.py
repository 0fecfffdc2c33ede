"""Upload a built, verified dataset folder to the Hugging Face Hub.

Exactly the dataset goes up: the manifest's shards, ``manifest.json`` and the
card ``README.md``, nothing else in the folder (no build state, no ``.env``, no
``.git``), and no symlink is followed: a symlinked file or folder is refused.
``--dry-run`` lists exactly those files. The uploaded ``README.md`` is a copy of
the local card rendered with the real repo id and revision in its quick start
(the local card, and so the manifest fingerprint, stay as they are). One
``HfApi.create_commit`` sends the files; the token comes from the usual places
(``HF_TOKEN``, the cached ``hf auth login``) or an explicit argument, and is
never printed, logged or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthoct_bench.dataset.manifest import MANIFEST_NAME, read_manifest
from synthoct_bench.dataset.verify import verify

__all__ = ["PushPlan", "plan_push", "push"]


@dataclass
class PushPlan:
    """What would be uploaded where: (local path, path in repo, bytes) per file."""

    repo_id: str
    revision: str | None
    tag: str | None
    files: list[tuple[Path, str, int]] = field(default_factory=list)
    commit: str | None = None
    url: str | None = None
    #: The README.md that goes up: the card with this repo id and revision in its quick start.
    card: str = ""

    @property
    def bytes(self) -> int:
        return sum(f[2] for f in self.files)

    def __str__(self) -> str:
        target = f"datasets/{self.repo_id}@{self.revision or 'main'}"
        lines = [f"{len(self.files)} files, {self.bytes / 1e6:,.1f} MB → {target}"]
        lines += [f"  {local} → {rel} ({size:,} B)" for local, rel, size in self.files]
        if self.tag:
            lines.append(f"  then tag {self.tag!r}")
        if self.commit:
            lines.append(f"uploaded: commit {self.commit} {self.url or ''}".rstrip())
        return "\n".join(lines)


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"repo id must look like 'ORG/NAME', got {repo_id!r}")


def plan_push(
    path: str | Path, repo_id: str, revision: str | None = None, tag: str | None = None
) -> PushPlan:
    """Verify the folder and list the files an upload would send (no network)."""
    _check_repo_id(repo_id)
    root = Path(path)
    if root.is_symlink():
        raise ValueError(f"{root} is a symlink; push the folder it points to")
    report = verify(root)
    if not report.ok:
        problems = "; ".join(report.problems[:3])
        raise ValueError(f"refusing to push a dataset that fails verification: {problems}")
    manifest = read_manifest(root / MANIFEST_NAME)
    plan = PushPlan(repo_id, revision, tag)
    plan.card = upload_card(root, manifest, repo_id, tag or revision)
    for rel in ["README.md", MANIFEST_NAME, *(e.path for e in manifest.shards)]:
        parts = [Path(rel), *Path(rel).parents][:-1]  # the file, then its folders
        if any((root / part).is_symlink() for part in parts):
            raise ValueError(f"{rel} is (or lies under) a symlink; copy the real file in place")
        file = root / rel
        size = len(plan.card.encode("utf-8")) if rel == "README.md" else file.stat().st_size
        plan.files.append((file, rel, size))
    return plan


def upload_card(root: Path, manifest: Any, repo_id: str, revision: str | None) -> str:
    """The card to upload: the local card's text with ``repo_id`` (and ``revision`` when it
    is not main) in the quick start instead of the placeholder."""
    from synthoct_bench.dataset.card import render_card

    pin = revision if revision and revision != "main" else None
    return render_card(manifest, repo_id=repo_id, revision=pin)


def push(
    path: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> PushPlan:
    """Upload ``path`` to the dataset repo ``repo_id`` (created if missing) at ``revision``
    (a branch, created from main if missing), then tag it. ``dry_run`` only plans."""
    plan = plan_push(path, repo_id, revision, tag)
    if dry_run:
        return plan
    import huggingface_hub

    api = huggingface_hub.HfApi(
        token=token
    )  # None: HF_TOKEN or the cached login, resolved by the library
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    operations = [
        huggingface_hub.CommitOperationAdd(
            path_in_repo=rel,
            path_or_fileobj=plan.card.encode("utf-8") if rel == "README.md" else str(local),
        )
        for local, rel, _ in plan.files
    ]
    info: Any = api.create_commit(
        repo_id=repo_id,
        operations=operations,
        repo_type="dataset",
        revision=revision,
        commit_message=commit_message or f"synthoct-bench dataset ({len(plan.files)} files)",
    )
    plan.commit = getattr(info, "oid", None)
    plan.url = getattr(info, "commit_url", None)
    if tag:
        api.create_tag(repo_id, tag=tag, revision=plan.commit or revision, repo_type="dataset")
    return plan
