"""``build``: from a seed to a verified, loadable Hub dataset folder, at any scale.

Stages: (1) population fits — for each noise level, FOCE on the observations of
the first ``fit_subjects`` training subjects (regenerated without images);
(2) shards — each a pure function of (seed, ids, fits), built by local worker
processes and/or ranks of a multi-machine job (shard s → rank s mod world); the
workers take the fits first and render the first shards' images while the fits
run, since only the EBEs need them;
(3) merge — the per-shard sidecars become ``manifest.json`` and the card
``README.md``. Every stage writes atomically and records what it did, so a
killed build resumes (``resume=True``) without losing or duplicating a subject.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synthoct_bench.atomic import to_jsonable, write_json
from synthoct_bench.dataset.layout import (
    BLIND_COLUMNS,
    BLIND_SPLIT,
    SPLIT_NAMES,
    ShardSpec,
    default_shard_size,
    explicit_split_sizes,
    least_dataset_bytes,
    parse_noise_levels,
    plan_shards,
    reference_columns,
    references_path,
    resolve_splits,
)
from synthoct_bench.dataset.manifest import (
    BUILD_DIR,
    MANIFEST_NAME,
    REFERENCES_MANIFEST,
    manifest_fingerprint,
    read_sidecar,
    shard_is_done,
    sidecar_path,
    software_versions,
)
from synthoct_bench.dataset.pipeline import (
    STAGES,
    latents,
    make_generator,
    observations,
    render_shard,
    shard_table,
)
from synthoct_bench.dataset.records import (
    BuildConfig,
    FitRecord,
    GeneratorSpec,
    Manifest,
    NLMERecord,
    ReferencesManifest,
    ShardRecord,
    ShardSidecar,
    SplitInfo,
    WriterSettings,
)
from synthoct_bench.dataset.writer import (
    PARQUET_SETTINGS,
    PNG_COMPRESS_LEVEL,
    PNG_ENCODER,
    ROW_GROUP_SIZE,
    UNCOMPRESSED_COLUMNS,
    write_json_first_wins,
    write_parquet_atomic,
)
from synthoct_bench.latent import NOISE_LEVELS
from synthoct_bench.ranks import resolve_rank_world

__all__ = ["BuildSummary", "build", "merge", "DEFAULT_FIT_SUBJECTS"]

#: Training subjects used for each level's FOCE fit (a random sample: ids are i.i.d.).
DEFAULT_FIT_SUBJECTS = 1_000
CONFIG_NAME = "config.json"
FITS_NAME = "fits.json"


@dataclass
class BuildSummary:
    """What a ``build`` call did; ``str()`` gives the end-of-build table."""

    out: Path
    n: int
    splits: dict[str, int]
    shards_total: int
    shards_built: int = 0
    shards_skipped: int = 0
    rows_built: int = 0
    bytes_built: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    merged: bool = False
    rank: int = 0
    world: int = 1

    def __str__(self) -> str:
        lines = [
            f"synthoct build → {self.out}",
            f"  subjects: {self.n:,} ("
            + ", ".join(f"{k} {v:,}" for k, v in self.splits.items())
            + ")",
            f"  shards: {self.shards_built} built, {self.shards_skipped} already done, "
            f"{self.shards_total} in the dataset"
            + (f" (rank {self.rank} of {self.world})" if self.world > 1 else ""),
            f"  written: {self.rows_built:,} rows, {self.bytes_built / 1e6:,.1f} MB",
            "  seconds per stage (summed over workers) and subjects/s:",
        ]
        for stage, sec in self.stage_seconds.items():
            rows = self.rows_built if stage != "fit" else 0
            rate = f"{rows / sec:,.0f}/s" if rows and sec > 0 else ""
            lines.append(f"    {stage:<11} {sec:9.2f} s  {rate}")
        lines.append(f"  wall time: {self.wall_seconds:.1f} s")
        lines.append(
            "  manifest and card written"
            if self.merged
            else "  not merged yet: run `synthoct build --merge --out DIR` once all ranks finish"
        )
        return "\n".join(lines)


def _check_fit_options(options: Mapping[str, Any]) -> None:
    """Refuse options ``nlme.fit_foce`` does not take (or that the build sets itself)."""
    import inspect

    from synthoct_bench.nlme import fit_foce

    own = {"y", "max_subjects", "seed"}
    accepted = set(inspect.signature(fit_foce).parameters) - own
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"unknown fit option(s) {', '.join(unknown)}; fit_foce takes "
            f"{', '.join(sorted(accepted))}"
        )


def _read_config(out: Path) -> BuildConfig | None:
    path = out / BUILD_DIR / CONFIG_NAME
    if not path.is_file():
        return None
    return BuildConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _prepare_out(out: Path, config: BuildConfig, resume: bool, world: int) -> None:
    old = _read_config(out)
    if old is not None:
        diff = old.differences(config)
        if diff:
            raise ValueError(
                f"{out} holds a build with different settings ({', '.join(diff)}); "
                "use another --out or the same settings"
            )
        if not resume and world == 1:
            raise ValueError(
                f"{out} already holds a build; pass resume=True (--resume) to finish it, "
                "or choose an empty --out"
            )
        return
    if out.exists() and any(p.name != BUILD_DIR for p in out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; choose an empty or new --out")
    write_json(out / BUILD_DIR / CONFIG_NAME, config.to_dict())


def _set_threads(threads: int | None) -> None:
    """Cap numba's (and torch's) threads so that worker processes do not oversubscribe."""
    if threads is None:
        return
    import numba  # the NLME solver and the phantom run numba parallel loops

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _fit_level(level: int, config: BuildConfig) -> tuple[int, FitRecord, float]:
    """FOCE fit of one noise level on the first ``fit_subjects`` training subjects;
    returns (level, record, seconds)."""
    from synthoct_bench.nlme import fit_foce

    t = time.perf_counter()
    m = min(config.fit_subjects, config.splits["train"])
    ids = np.arange(m, dtype=np.int64)  # training ids start at 0
    _, eta = latents(ids, config.seed, config.eta_dims)
    _, obs = observations(eta, level, ids, config.seed, config.simulation_params)
    res = fit_foce(obs, max_subjects=m, seed=config.seed, **config.fit_options)
    record = FitRecord(
        params=res.params.to_dict(),
        ofv=float(res.ofv),
        converged=bool(res.converged),
        n_subjects_used=int(res.n_subjects_used),
        se=to_jsonable(getattr(res, "se", None)),
        fit_on=f"train subjects 0..{m - 1}",
        method=res.method,
    )
    return level, record, time.perf_counter() - t


def _save_fits(out: Path, fits: Mapping[int, FitRecord]) -> None:
    """Record the fits in ``_build/fits.json``; the first writer wins, so resumed builds
    and every rank of a multi-machine build use the same fits."""
    records = {str(k): v.to_dict() for k, v in fits.items()}
    write_json_first_wins(records, out / BUILD_DIR / FITS_NAME)


def _read_fits(out: Path) -> dict[int, FitRecord]:
    data = json.loads((out / BUILD_DIR / FITS_NAME).read_text(encoding="utf-8"))
    return {int(k): FitRecord.from_dict(v) for k, v in data.items()}


# ---- shard workers -----------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _use_jemalloc() -> None:
    """Give a worker process's Arrow buffers to jemalloc where pyarrow has it: it keeps
    and reuses the ~200 MB a shard's table takes, where the default (mimalloc) hands it
    back and faults it in again for every shard (a 10,000-row shard: 13% less wall time,
    measured alternately)."""
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        pass


def _init_worker(
    config: BuildConfig,
    out: str,
    threads: int | None,
    generator: Any = None,
    fits_ready: Any = None,
) -> None:
    """Build the generator once per process and cap its threads. ``fits_ready`` is the
    event the pool sets once the fits it runs are recorded (or have failed)."""
    _WORKER.update(config=config, out=Path(out), fits=None, fits_ready=fits_ready)
    if threads is not None:  # a pool worker, not the caller's process
        _use_jemalloc()
    if generator is None:
        spec = config.generator
        generator = make_generator(spec.name, config.image_size, spec.kwargs)
    _WORKER["gen"] = generator
    _set_threads(threads)


def _worker_fits() -> dict[int, dict[str, Any]]:
    """Fitted parameters per level (``PopulationParams.to_dict()``), read once per build;
    waits for the fits when the pool is still running them."""
    if _WORKER["fits"] is None:
        if _WORKER["fits_ready"] is not None:
            _WORKER["fits_ready"].wait()
        out: Path = _WORKER["out"]
        if not (out / BUILD_DIR / FITS_NAME).is_file():
            raise RuntimeError("the population fits failed, so no shard can get its EBE targets")
        _WORKER["fits"] = {k: v.params for k, v in _read_fits(out).items()}
    return _WORKER["fits"]


def _select(table: Any, config: BuildConfig, columns: Sequence[str]) -> Any:
    """``columns`` of a shard table, with the schema (and ``datasets`` metadata) of those
    columns alone."""
    from synthoct_bench.dataset.features import arrow_schema

    schema = arrow_schema(config.noise_levels, columns)
    return table.select(list(columns)).replace_schema_metadata(schema.metadata)


def _reference_part(out: Path, spec: ShardSpec) -> Path:
    """Where a blind shard's references wait for the merge (build state, never published)."""
    return out / BUILD_DIR / "references" / f"{spec.name}.parquet"


def _build_one(spec: ShardSpec) -> tuple[ShardSpec, ShardSidecar, dict[str, float]]:
    """Compute, write and record one shard (file first, then its sidecar). The images are
    rendered before the fits are needed, so they overlap fits still running."""
    config: BuildConfig = _WORKER["config"]
    out: Path = _WORKER["out"]
    timings = dict.fromkeys(STAGES, 0.0)
    rendered = render_shard(spec, config, _WORKER["gen"], timings)
    table, converged = shard_table(rendered, config, _worker_fits(), timings)
    t = time.perf_counter()
    if config.blind_test and spec.split == BLIND_SPLIT:
        # references first (build state, gathered by merge), then the public shard
        write_parquet_atomic(
            _select(table, config, reference_columns(config.noise_levels)),
            _reference_part(out, spec),
        )
        table = _select(table, config, BLIND_COLUMNS)
    digest, size = write_parquet_atomic(table, out / spec.path)
    timings["parquet"] += time.perf_counter() - t
    entry = ShardSidecar(
        path=spec.path,
        split=spec.split,
        index=spec.index,
        rows=spec.rows,
        first_id=spec.first_id,
        last_id=spec.last_id,
        sha256=digest,
        bytes=size,
        column_bytes={name: int(table.column(name).nbytes) for name in table.column_names},
        ebe_converged=converged,
    )
    write_json(sidecar_path(out, spec), entry.to_dict())
    return spec, entry, timings


def _run(
    config: BuildConfig,
    out: Path,
    todo: list[ShardSpec],
    fit_levels: Sequence[int],
    workers: int,
    progress: bool,
    generator: Any,
) -> tuple[dict[str, float], int, int]:
    """Fit ``fit_levels`` and build ``todo`` shards; returns (stage seconds, rows, bytes).

    One process runs everything in turn, fits first. A pool of ``workers`` processes
    takes the fits first too, and the shards behind them render their images meanwhile,
    waiting for the fits only at their EBEs: no core idles while a fit runs.
    """
    totals = {"fit": 0.0, **dict.fromkeys(STAGES, 0.0)}
    rows = size = 0
    fits: dict[int, FitRecord] = {}
    fit_bar = tqdm(
        total=len(fit_levels), desc="fit (FOCE per level)", disable=not progress or not fit_levels
    )
    bar = tqdm(total=sum(s.rows for s in todo), desc="shards", unit="subj", disable=not progress)

    def fitted(level: int, record: FitRecord, seconds: float) -> None:
        fits[level] = record
        totals["fit"] += seconds
        fit_bar.update(1)
        if len(fits) == len(fit_levels):
            _save_fits(out, fits)

    def done(entry: ShardSidecar, timings: dict[str, float]) -> None:
        nonlocal rows, size
        for k, v in timings.items():
            totals[k] += v
        rows += entry.rows
        size += entry.bytes
        bar.update(entry.rows)
        bar.set_postfix({k: f"{totals[k]:.0f}s" for k in STAGES}, refresh=False)

    try:
        if workers <= 1 or len(todo) + len(fit_levels) <= 1:
            for level in fit_levels:
                fitted(*_fit_level(level, config))
            _init_worker(config, str(out), None, generator)  # reuse: diffusion weights are big
            for spec in todo:
                _, entry, timings = _build_one(spec)
                done(entry, timings)
        else:
            ctx = mp.get_context("spawn")
            fits_ready = ctx.Event()
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(
                max_workers=min(workers, len(todo) + len(fit_levels)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(config, str(out), threads, None, fits_ready),
            ) as pool:
                fit_futures = [pool.submit(_fit_level, level, config) for level in fit_levels]
                pending = {pool.submit(_build_one, spec) for spec in todo}
                try:
                    for fut in as_completed(fit_futures):
                        fitted(*fut.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                finally:
                    fits_ready.set()  # also on failure: waiting shards then stop at once
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        _, entry, timings = fut.result()
                        done(entry, timings)
    finally:
        fit_bar.close()
        bar.close()
    return totals, rows, size


# ---- public API ----------------------------------------------------------------------


def check_build_fits(out: str | Path, n: int, image_size: int, world: int = 1) -> None:
    """Refuse a build whose smallest estimate (``least_dataset_bytes``, this rank's share,
    less what ``out`` already holds) exceeds the free disk."""
    from synthoct_bench.resources import require_disk

    out = Path(out)
    need = least_dataset_bytes(n, image_size) / world
    if out.is_dir():
        need -= sum(f.stat().st_size for f in out.rglob("*.parquet") if f.is_file())
    require_disk(
        out, need, f"{n:,} subjects at {image_size} px",
        "build fewer subjects or smaller images, or choose an --out with more space",
    )  # fmt: skip


def build(
    out: str | Path,
    *,
    preset: str | None = "mini",
    n: int | None = None,
    splits: Mapping[str, int] | None = None,
    generator: str = "phantom",
    generator_kwargs: dict[str, Any] | None = None,
    image_size: int = 224,
    noise_levels: Sequence[int] = NOISE_LEVELS,
    seed: int = 0,
    workers: int = 1,
    resume: bool = False,
    shard_size: int | None = None,
    rank: int | None = None,
    world: int | None = None,
    progress: bool = True,
    fit_subjects: int = DEFAULT_FIT_SUBJECTS,
    fit_options: dict[str, Any] | None = None,
    blind_test: bool = False,
) -> BuildSummary:
    """Build the dataset (or this rank's share of it) into ``out``.

    ``n`` overrides ``preset`` (``layout.PRESETS``: mini 4,000, small 55,000, full
    1,100,000 subjects) and is split 950:50:100 into train/validation/test;
    ``splits`` (e.g. ``{"train": 2000, "validation": 1000, "test": 4000}``) overrides
    both with explicit sizes.
    ``fit_options`` go to ``nlme.fit_foce`` (e.g. ``{"compute_se": False}``) and are
    recorded in the manifest and card. Shard s goes to rank ``s % world``; rank and
    world come from the arguments, else RANK/WORLD_SIZE (torchrun), else
    SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else (0, 1). The rank that finds every
    shard done writes ``manifest.json`` and ``README.md`` (or call :func:`merge`).
    ``blind_test`` publishes the test split without references (``subject_id`` and
    ``image`` only) and writes them to ``references/test.parquet`` with a private
    ``references/manifest.json``: keep that folder to score, release ``data/``.
    """
    from synthoct_bench.extras import require

    require("building a dataset", "build")
    t_start = time.perf_counter()
    levels = parse_noise_levels(noise_levels)
    if splits is not None:
        sizes = explicit_split_sizes(splits)
        n_total = sum(sizes.values())
    else:
        sizes = resolve_splits(preset, n)
        n_total = sum(sizes.values())
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    shard_size = int(shard_size) if shard_size else default_shard_size(image_size, n_total)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    from synthoct_bench.nlme.population import MIN_FIT_SUBJECTS

    fitted = min(int(fit_subjects), sizes["train"])
    if fitted < MIN_FIT_SUBJECTS:
        raise ValueError(
            f"the population fits need at least {MIN_FIT_SUBJECTS} training subjects (they "
            f"estimate 3 typical values, 3 variances and sigma), but would get {fitted} "
            f"(fit_subjects={fit_subjects}, train split {sizes['train']}); "
            "build more subjects or raise fit_subjects"
        )
    _check_fit_options(fit_options or {})
    rank, world = resolve_rank_world(rank, world)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; choose a folder for --out")
    check_build_fits(out, n_total, int(image_size), world)

    from synthoct_bench.nlme import PopulationParams

    gen = make_generator(generator, image_size, generator_kwargs)
    config = BuildConfig(
        seed=int(seed),
        n=n_total,
        preset=preset if n is None and splits is None else None,
        splits=sizes,
        noise_levels=levels,
        image_size=int(image_size),
        shard_size=shard_size,
        generator=GeneratorSpec(
            name=generator,
            kwargs=to_jsonable(dict(generator_kwargs or {})),
            config=to_jsonable(gen.get_config()),
        ),
        eta_dims=tuple(int(d) for d in gen.eta_dims),
        simulation_params=to_jsonable(PopulationParams().to_dict()),
        fit_subjects=int(fit_subjects),
        fit_options=to_jsonable(dict(fit_options or {})),
        writer=WriterSettings(
            parquet={
                **PARQUET_SETTINGS,
                "row_group_size": ROW_GROUP_SIZE,
                "uncompressed_columns": list(UNCOMPRESSED_COLUMNS),
            },
            png_compress_level=PNG_COMPRESS_LEVEL,
            png_encoder=PNG_ENCODER,
        ),
        software=software_versions(),
        blind_test=bool(blind_test),
    )
    _prepare_out(out, config, resume, world)

    specs = plan_shards(sizes, shard_size)
    mine = [s for i, s in enumerate(specs) if i % world == rank]
    for spec in mine:  # leftovers of a killed run: never trusted, always rebuilt
        tmp = out / (spec.path + ".tmp")
        if tmp.exists():
            tmp.unlink()
    todo = [s for s in mine if not shard_is_done(out, s)]
    fit_levels = () if (out / BUILD_DIR / FITS_NAME).is_file() else config.noise_levels
    stage_seconds, rows, size = _run(config, out, todo, fit_levels, workers, progress, gen)

    merged = False
    if all(read_sidecar(out, s) is not None for s in specs):
        merge(out)
        merged = True
    return BuildSummary(
        out=out,
        n=n_total,
        splits=sizes,
        shards_total=len(specs),
        shards_built=len(todo),
        shards_skipped=len(mine) - len(todo),
        rows_built=rows,
        bytes_built=size,
        stage_seconds=stage_seconds,
        wall_seconds=time.perf_counter() - t_start,
        merged=merged,
        rank=rank,
        world=world,
    )


def merge(out: str | Path) -> Path:
    """Gather the shard sidecars into ``manifest.json`` and render ``README.md``.

    Raises a ValueError naming the shards that are not built yet.
    """
    from synthoct_bench.dataset.card import write_card

    out = Path(out)
    config = _read_config(out)
    if config is None:
        raise ValueError(f"{out} has no {BUILD_DIR}/{CONFIG_NAME}: not a synthoct build folder")
    fits = _read_fits(out)
    specs = plan_shards(config.splits, config.shard_size)
    entries: list[ShardSidecar] = []
    missing: list[str] = []
    for spec in specs:
        entry = read_sidecar(out, spec)
        if entry is None or not (out / spec.path).is_file():
            missing.append(spec.path)
        else:
            entries.append(entry)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ValueError(f"cannot merge: {len(missing)} shard(s) not built yet: {shown}")

    first = 0
    splits: dict[str, SplitInfo] = {}
    for split in SPLIT_NAMES:
        count = sum(1 for s in specs if s.split == split)
        splits[split] = SplitInfo(n=config.splits[split], first_id=first, shards=count)
        first += config.splits[split]
    manifest = Manifest(
        format_version=config.format_version,
        seed=config.seed,
        n=config.n,
        preset=config.preset,
        splits=splits,
        noise_levels=config.noise_levels,
        image_size=config.image_size,
        shard_size=config.shard_size,
        generator=config.generator,
        eta_dims=config.eta_dims,
        nlme=NLMERecord(
            simulation_params=config.simulation_params,
            fits=fits,
            fit_subjects=config.fit_subjects,
            fit_options=config.fit_options,
            ebe_converged={
                k: sum(e.ebe_converged[k] for e in entries) for k in config.noise_levels
            },
        ),
        writer=config.writer,
        software=config.software,
        shards=tuple(e.record() for e in entries),
        column_bytes=_column_bytes(entries),
        references=_merge_references(out, config, specs) if config.blind_test else None,
    )
    write_json(out / MANIFEST_NAME, manifest.to_dict())
    if manifest.references is not None:
        private = ReferencesManifest(manifest_fingerprint(manifest), manifest.references)
        write_json(out / REFERENCES_MANIFEST, private.to_dict())
    write_card(out, manifest)
    return out / MANIFEST_NAME


def _merge_references(out: Path, config: BuildConfig, specs: list[ShardSpec]) -> ShardRecord:
    """Gather the blind split's reference parts into ``references/test.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [s for s in specs if s.split == BLIND_SPLIT]
    missing = [s.name for s in parts if not _reference_part(out, s).is_file()]
    if missing:
        raise ValueError(
            f"cannot merge: the references of {', '.join(missing)} are missing from "
            f"{BUILD_DIR}/references; rebuild those shards (delete them and --resume)"
        )
    table = pa.concat_tables(pq.read_table(_reference_part(out, s)) for s in parts)
    rel = references_path(BLIND_SPLIT)
    digest, size = write_parquet_atomic(table, out / rel)
    return ShardRecord(
        path=rel,
        split=BLIND_SPLIT,
        rows=table.num_rows,
        first_id=parts[0].first_id,
        last_id=parts[-1].last_id,
        sha256=digest,
        bytes=size,
    )


def _column_bytes(entries: list[ShardSidecar]) -> dict[str, dict[str, int]]:
    """In-memory Arrow bytes per split and column (for dataset_info num_bytes)."""
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        split = out.setdefault(e.split, {})
        for col, b in e.column_bytes.items():
            split[col] = split.get(col, 0) + int(b)
    return out
