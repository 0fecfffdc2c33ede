"""``verify``: is a dataset folder exactly what its manifest says, and does the manifest
still describe the data?

Four layers, each reported by name:

1. the manifest is well formed and consistent with itself (split sizes, the
   shard plan for ``n`` and ``shard_size``, a fit and an EBE count per level);
2. the card's YAML (configs, data files, features, split sizes) is the one the
   manifest renders, so ``datasets.load_dataset`` sees the same splits;
3. every shard is present with the recorded size, row count and sha256, and
   the shards tile the subject ids; no stray files;
4. content: the first subject of every shard is regenerated from the
   manifest's seed, η dims, simulation parameters and fits (z, η, η_noisy,
   observations and EBEs at every level, and the image for the phantom) and
   compared with what is stored. An edited parameter or seed in the manifest
   cannot pass this, even though the shards' checksums still match.

A blind build's test shards hold only ``subject_id`` and ``image``: their other
columns are checked from the private ``references/test.parquet`` when it is in
the folder (its size and sha256 against the manifest first), else only their
images are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from synthoct_bench.dataset.layout import (
    BLIND_COLUMNS,
    SPLIT_NAMES,
    all_columns,
    noise_columns,
    plan_shards,
)
from synthoct_bench.dataset.manifest import MANIFEST_NAME, read_manifest
from synthoct_bench.dataset.records import Manifest
from synthoct_bench.dataset.writer import sha256_file

__all__ = ["VerifyReport", "verify"]

#: Largest |difference| allowed between a stored EBE and one recomputed for the check
#: (the search stops at a relative objective tolerance, not at an exact point).
EBE_TOLERANCE = 1e-4
#: Largest |difference| allowed in the observations when numba is missing and the
#: scipy solver recomputes them: the compiled kernel the build used is within 3e-7
#: of the exact solution, the scipy solve within 1e-9.
OBS_TOLERANCE_WITHOUT_NUMBA = 1e-6


@dataclass
class VerifyReport:
    """Result of :func:`verify`: ``ok`` is False when anything in ``problems``."""

    path: str
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    #: checks left out, and why (e.g. the light install has no numba).
    skipped: list[str] = field(default_factory=list)
    shards_checked: int = 0
    rows: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (
            f"{self.path}: {self.shards_checked} shards, {self.rows:,} rows, "
            f"{self.bytes / 1e6:,.1f} MB"
        )
        done = "".join(f"\n  checked: {c}" for c in self.checked)
        done += "".join(f"\n  not checked: {c}" for c in self.skipped)
        if self.ok:
            return head + ": OK" + done
        problems = "\n".join(f"  - {p}" for p in self.problems)
        return f"{head}: {len(self.problems)} problem(s)\n{problems}{done}"


def verify(path: str | Path, check_sha: bool = True, content: bool = True) -> VerifyReport:
    """Check a built dataset folder against its manifest (see the module docstring).

    ``check_sha=False`` checks sizes and row counts only; ``content=False`` skips the
    regeneration of one subject per shard.
    """
    root = Path(path)
    report = VerifyReport(str(root))
    if not root.is_dir():
        report.problems.append(f"{root} is not a directory")
        return report
    man_path = root / MANIFEST_NAME
    if not man_path.is_file():
        report.problems.append(
            f"{MANIFEST_NAME} is missing (unfinished build? run `synthoct build --resume` "
            "or `synthoct build --merge`)"
        )
        return report
    try:
        manifest = read_manifest(man_path)
    except ValueError as exc:
        report.problems.append(str(exc))
        return report

    _check_consistency(manifest, report)
    _check_card(root, manifest, report)
    _check_shards(root, manifest, report, check_sha)
    _check_references(root, manifest, report, check_sha)
    _check_coverage(manifest, report)
    if content and report.ok:
        _check_content(root, manifest, report)
    return report


# -- 1. the manifest itself -------------------------------------------------------------------


def _check_consistency(manifest: Manifest, report: VerifyReport) -> None:
    problems = report.problems
    before = len(problems)
    unknown = sorted(set(manifest.splits) - set(SPLIT_NAMES))
    if unknown:
        problems.append(f"manifest lists unknown splits {unknown}")
    total = sum(info.n for info in manifest.splits.values())
    if total != manifest.n:
        problems.append(f"manifest says n={manifest.n:,} but its splits hold {total:,}")
    sizes = {s: manifest.splits[s].n for s in SPLIT_NAMES if s in manifest.splits}
    try:
        plan = plan_shards(sizes, manifest.shard_size)
    except ValueError as exc:
        problems.append(f"manifest's shard_size is unusable: {exc}")
        plan = []
    planned = {(s.path, s.split, s.first_id, s.rows) for s in plan}
    listed = {(e.path, e.split, e.first_id, e.rows) for e in manifest.shards}
    if plan and planned != listed:
        problems.append(
            f"manifest's shard list ({len(listed)} shards) is not the plan for its split sizes "
            f"and shard_size {manifest.shard_size} ({len(planned)} shards)"
        )
    for e in manifest.shards:
        if e.last_id != e.first_id + e.rows - 1:
            problems.append(f"{e.path}: last_id {e.last_id} does not match first_id and rows")
    levels = set(manifest.noise_levels)
    for name, keys in (
        ("fits", set(manifest.nlme.fits)),
        ("ebe_converged", set(manifest.nlme.ebe_converged)),
    ):
        if keys != levels:
            problems.append(
                f"manifest's {name} cover levels {sorted(keys)}, its noise_levels are "
                f"{sorted(levels)}"
            )
    for k, count in manifest.nlme.ebe_converged.items():
        if not 0 <= count <= manifest.n:
            problems.append(f"manifest's ebe_converged[{k}] = {count} is not in 0..{manifest.n}")
    for k, fit in manifest.nlme.fits.items():
        if fit.n_subjects_used > manifest.nlme.fit_subjects:
            problems.append(
                f"the fit at noise {k} used {fit.n_subjects_used} subjects, more than "
                f"fit_subjects={manifest.nlme.fit_subjects}"
            )
    dims = manifest.eta_dims
    if len(dims) != 3 or len(set(dims)) != 3 or not all(0 <= d < 128 for d in dims):
        problems.append(f"manifest's eta_dims {list(dims)} are not 3 distinct dims in 0..127")
    if len(problems) == before:
        report.checked.append("manifest consistent (splits, shard plan, fits per level)")


# -- 2. the card -------------------------------------------------------------------------------


def _card_header(text: str) -> dict[str, Any] | None:
    import yaml

    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 4)
    if end < 0:
        return None
    try:
        header = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return None
    return header if isinstance(header, dict) else None


def _check_card(root: Path, manifest: Manifest, report: VerifyReport) -> None:
    from synthoct_bench.dataset.card import card_yaml

    card = root / "README.md"
    if not card.is_file():
        report.problems.append("README.md (the dataset card with the configs) is missing")
        return
    header = _card_header(card.read_text(encoding="utf-8"))
    if header is None:
        report.problems.append(
            "README.md has no readable YAML header; rerender it with `synthoct build --merge`"
        )
        return
    expected = card_yaml(manifest, license_id=str(header.get("license", "")))
    for key in ("configs", "dataset_info"):
        if header.get(key) != expected[key]:
            report.problems.append(
                f"README.md's YAML {key} do not match the manifest (configs, data files, "
                "features or split sizes); rerender it with `synthoct build --merge`"
            )
            return
    report.checked.append("card YAML matches the manifest (configs, features, split sizes)")


# -- 3. the shards -----------------------------------------------------------------------------


def _check_shards(root: Path, manifest: Manifest, report: VerifyReport, check_sha: bool) -> None:
    before = len(report.problems)
    listed = set()
    for entry in manifest.shards:
        rel = entry.path
        listed.add(rel)
        report.shards_checked += 1
        file = root / rel
        if not file.is_file():
            report.problems.append(f"{rel}: missing")
            continue
        size = file.stat().st_size
        if size != entry.bytes:
            report.problems.append(f"{rel}: corrupt ({size} bytes, manifest says {entry.bytes})")
            continue
        if check_sha and sha256_file(file)[0] != entry.sha256:
            report.problems.append(f"{rel}: corrupt (sha256 differs from the manifest)")
            continue
        try:
            rows = pq.read_metadata(file).num_rows
        except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt shard
            report.problems.append(f"{rel}: corrupt (not readable as Parquet: {exc})")
            continue
        if rows != entry.rows:
            report.problems.append(f"{rel}: {rows} rows, manifest says {entry.rows}")
            continue
        report.rows += rows
        report.bytes += size
    data_dir = root / "data"
    if data_dir.is_dir():
        for file in sorted(data_dir.iterdir()):
            rel = f"data/{file.name}"
            if rel not in listed:
                report.problems.append(f"{rel}: not in the manifest (stray or leftover file)")
    if len(report.problems) == before:
        what = "size, rows and sha256" if check_sha else "size and rows (no sha256: --quick)"
        report.checked.append(f"{report.shards_checked} shards: {what}; no stray files")


def _check_references(
    root: Path, manifest: Manifest, report: VerifyReport, check_sha: bool
) -> None:
    """A blind build's references, when they are here: the manifest's size and sha256."""
    record = manifest.references
    if record is None:
        return
    file = root / record.path
    if not file.is_file():
        report.checked.append(
            f"the {record.split} split is blind; its references ({record.path}) are not "
            "here, so its rows are checked by image only"
        )
        return
    if file.stat().st_size != record.bytes or (check_sha and sha256_file(file)[0] != record.sha256):
        report.problems.append(f"{record.path}: corrupt (size or sha256 differs from the manifest)")
        return
    report.checked.append(f"references of the blind {record.split} split: {record.path} matches")


def _check_coverage(manifest: Manifest, report: VerifyReport) -> None:
    """Shard id ranges must tile each split exactly, splits contiguous in order."""
    expected_first = 0
    for split in SPLIT_NAMES:
        if split not in manifest.splits:
            continue
        info = manifest.splits[split]
        if info.first_id != expected_first:
            report.problems.append(
                f"split {split} starts at id {info.first_id}, expected {expected_first}"
            )
        cursor = info.first_id
        for e in manifest.split_shards(split):
            if e.first_id != cursor:
                kind = "gap" if e.first_id > cursor else "overlap"
                report.problems.append(f"{e.path}: {kind} in subject ids before {e.first_id}")
            cursor = e.last_id + 1
        if cursor != info.first_id + info.n:
            report.problems.append(
                f"split {split}: shards cover {cursor - info.first_id} subjects, expected {info.n}"
            )
        expected_first = info.first_id + info.n


# -- 4. content --------------------------------------------------------------------------------


def _first_rows(root: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """Every stored column of the first subject of each shard, stacked (shard order)."""
    from synthoct_bench.dataset.load import column_to_numpy

    columns = list(all_columns(manifest.noise_levels))
    refs = _reference_rows(root, manifest)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for entry in manifest.shards:
        blind = entry.split == manifest.blind_split
        if blind and refs is None:
            continue  # checked by image only (_blind_images)
        wanted = list(BLIND_COLUMNS) if blind else columns
        table = pq.ParquetFile(root / entry.path).read_row_group(0, columns=wanted).slice(0, 1)
        for c in wanted:
            parts[c].append(column_to_numpy(table.column(c)))
        if blind:
            row = int(np.searchsorted(refs["subject_id"], entry.first_id))
            for c in columns:
                if c not in BLIND_COLUMNS:
                    parts[c].append(refs[c][row : row + 1])
    return {c: np.concatenate(v) for c, v in parts.items()}


def _reference_rows(root: Path, manifest: Manifest) -> dict[str, np.ndarray] | None:
    """A blind build's references, sorted by subject id, when they are in the folder (and
    checked by ``_check_references``); else None."""
    from synthoct_bench.dataset.load import column_to_numpy

    record = manifest.references
    if record is None or not (root / record.path).is_file():
        return None
    table = pq.read_table(root / record.path)
    out = {c: column_to_numpy(table.column(c)) for c in table.column_names}
    order = np.argsort(out["subject_id"], kind="stable")
    return {c: v[order] for c, v in out.items()}


def _blind_images(root: Path, manifest: Manifest) -> dict[str, np.ndarray] | None:
    """``subject_id`` and ``image`` of the first subject of each blind shard, when the
    references are not here to check the rest; else None."""
    from synthoct_bench.dataset.load import column_to_numpy

    if manifest.references is None or (root / manifest.references.path).is_file():
        return None
    columns = list(BLIND_COLUMNS)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for entry in manifest.shards:
        if entry.split == manifest.blind_split:
            table = pq.ParquetFile(root / entry.path).read_row_group(0, columns=columns)
            for c in columns:
                parts[c].append(column_to_numpy(table.slice(0, 1).column(c)))
    return {c: np.concatenate(v) for c, v in parts.items()}


def _differs(
    report: VerifyReport,
    what: str,
    stored: np.ndarray,
    expected: np.ndarray,
    ids: np.ndarray,
    atol: float = 0.0,
) -> bool:
    """Record a problem when ``stored`` differs from ``expected`` (cast to float32, as
    stored) by more than ``atol`` in any checked subject; True if it did."""
    stored = np.asarray(stored, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float32).astype(np.float64)
    delta = np.abs(stored - expected).reshape(len(ids), -1).max(axis=1)
    bad = np.flatnonzero(~(delta <= atol))
    if bad.size:
        report.problems.append(
            f"{what} of {bad.size} of {len(ids)} checked subjects (e.g. subject "
            f"{int(ids[bad[0]])}) does not follow from the manifest (max |difference| "
            f"{delta[bad].max():.3g}): the manifest or the shards were edited after the build; "
            "rebuild, or restore the originals"
        )
        return True
    return False


def _check_content(root: Path, manifest: Manifest, report: VerifyReport) -> None:
    from synthoct_bench.dataset.pipeline import latents, make_generator, observations
    from synthoct_bench.latent import image_seeds
    from synthoct_bench.nlme import OBS_TIMES, PopulationParams

    try:
        import numba  # noqa: F401  (the EBE search and the phantom are compiled with it)

        compiled, obs_atol = True, 0.0
    except ImportError:
        compiled, obs_atol = False, OBS_TOLERANCE_WITHOUT_NUMBA
    stored = _first_rows(root, manifest)
    ids = stored["subject_id"].astype(np.int64)
    before = len(report.problems)
    z, eta = latents(ids, manifest.seed, manifest.eta_dims)
    _differs(report, "z", stored["z"], z, ids)
    _differs(report, "eta", stored["eta"], eta, ids)
    _differs(report, "time", stored["time"], np.broadcast_to(OBS_TIMES, stored["time"].shape), ids)
    sim = manifest.nlme.simulation_params
    for k in manifest.noise_levels:
        noisy_col, ebe_col, obs_col = noise_columns(k)
        eta_noisy, obs = observations(eta, k, ids, manifest.seed, sim)
        if _differs(report, noisy_col, stored[noisy_col], eta_noisy, ids):
            continue
        if _differs(report, obs_col, stored[obs_col], obs, ids, atol=obs_atol):
            continue
        if compiled:
            from synthoct_bench.nlme import ebe

            fitted = PopulationParams.from_dict(manifest.nlme.fits[k].params)
            est = ebe(stored[obs_col].astype(np.float64), fitted)
            _differs(report, ebe_col, stored[ebe_col], est.eta, ids, atol=EBE_TOLERANCE)
    what = "z, eta, eta_noisy, obs and EBEs" if compiled else "z, eta, eta_noisy and obs"
    if not compiled:
        report.skipped.append(
            "content: EBEs and images (their solvers need numba: "
            "pip install 'synthoct-bench[build]')"
        )
    elif manifest.generator.name == "phantom":
        what += " and the image"
        from synthoct_bench.dataset.writer import decode_png

        gen = make_generator("phantom", manifest.image_size, manifest.generator.kwargs)
        images = gen.generate(z, image_seeds(ids, manifest.seed))
        _differs(report, "image", decode_png(stored["image"]), images, ids)
        blind = _blind_images(root, manifest)
        if blind is not None:
            blind_ids = blind["subject_id"].astype(np.int64)
            blind_z, _ = latents(blind_ids, manifest.seed, manifest.eta_dims)
            expected = gen.generate(blind_z, image_seeds(blind_ids, manifest.seed))
            _differs(report, "image", decode_png(blind["image"]), expected, blind_ids)
            what += f" (the image alone for the {blind_ids.size} of the blind split)"
            ids = np.concatenate([ids, blind_ids])
    if len(report.problems) == before:
        report.checked.append(
            f"content: {what} of {ids.size} subjects (the first of each shard) regenerated "
            "from the manifest and equal to the stored values"
        )
