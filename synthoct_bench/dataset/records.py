"""Typed records of a build: its settings, its population fits, its shards, its manifest.

``BuildConfig`` is what ``_build/config.json`` holds (the settings that decide
the bytes of every shard), ``FitRecord`` one noise level's population fit,
``ShardRecord`` / ``ShardSidecar`` one finished shard, and ``Manifest`` what
``manifest.json`` holds. Each is a frozen dataclass with ``to_dict`` /
``from_dict`` that round-trip through JSON, so readers use attributes instead
of picking raw keys, and a malformed file fails in one place with one message.
Noise levels are ``int`` keys here and strings in JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthoct_bench.dataset.layout import SPLIT_NAMES

__all__ = [
    "FORMAT_VERSION",
    "GeneratorSpec",
    "WriterSettings",
    "BuildConfig",
    "FitRecord",
    "ShardRecord",
    "ShardSidecar",
    "SplitInfo",
    "NLMERecord",
    "Manifest",
    "ReferencesManifest",
]

FORMAT_VERSION = 1


def _need(data: Any, key: str, where: str) -> Any:
    """``data[key]``, or a ValueError naming the file part and the key that is missing."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {type(data).__name__}")
    if key not in data:
        raise ValueError(f"{where} is missing the key {key!r}")
    return data[key]


def _levels_map(data: Mapping[str, Any], convert: Any) -> dict[int, Any]:
    """JSON ``{"9": ...}`` -> ``{9: convert(...)}`` (noise levels are int keys in memory)."""
    return {int(k): convert(v) for k, v in data.items()}


@dataclass(frozen=True)
class GeneratorSpec:
    """The image generator: registry name (or ``module:Class``), its arguments, its config."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs), "config": dict(self.config)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorSpec:
        where = "the generator record"
        return cls(
            name=str(_need(data, "name", where)),
            kwargs=dict(data.get("kwargs") or {}),
            config=dict(data.get("config") or {}),
        )


@dataclass(frozen=True)
class WriterSettings:
    """How shards are encoded (Parquet options, PNG level): part of what fixes their bytes."""

    parquet: dict[str, Any]
    png_compress_level: int
    #: "pil" for datasets written with PIL's PNG encoder, before the batched writer.
    png_encoder: str = "pil"

    def to_dict(self) -> dict[str, Any]:
        return {
            "parquet": dict(self.parquet),
            "png_compress_level": self.png_compress_level,
            "png_encoder": self.png_encoder,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WriterSettings:
        where = "the writer record"
        return cls(
            parquet=dict(_need(data, "parquet", where)),
            png_compress_level=int(_need(data, "png_compress_level", where)),
            png_encoder=str(data.get("png_encoder", "pil")),
        )


@dataclass(frozen=True)
class BuildConfig:
    """Every setting that decides the bytes of the shards, plus the software that ran.

    Two builds with equal ``build_key()`` write identical shards; ``software``
    is recorded but not part of the key.
    """

    seed: int
    n: int
    preset: str | None
    splits: dict[str, int]
    noise_levels: tuple[int, ...]
    image_size: int
    shard_size: int
    generator: GeneratorSpec
    eta_dims: tuple[int, ...]
    simulation_params: dict[str, Any]
    fit_subjects: int
    fit_options: dict[str, Any]
    writer: WriterSettings
    software: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    #: The test split is published without references (written to references/ instead).
    blind_test: bool = False

    def to_dict(self) -> dict[str, Any]:
        extra = {"blind_test": True} if self.blind_test else {}
        return {
            "format_version": self.format_version,
            **extra,
            "seed": self.seed,
            "n": self.n,
            "preset": self.preset,
            "splits": dict(self.splits),
            "noise_levels": list(self.noise_levels),
            "image_size": self.image_size,
            "shard_size": self.shard_size,
            "generator": self.generator.to_dict(),
            "eta_dims": list(self.eta_dims),
            "simulation_params": dict(self.simulation_params),
            "fit_subjects": self.fit_subjects,
            "fit_options": dict(self.fit_options),
            "writer": self.writer.to_dict(),
            "software": dict(self.software),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildConfig:
        where = "the build config (_build/config.json)"

        def need(key: str) -> Any:
            return _need(data, key, where)

        return cls(
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            seed=int(need("seed")),
            n=int(need("n")),
            preset=data.get("preset"),
            splits={str(k): int(v) for k, v in need("splits").items()},
            noise_levels=tuple(int(k) for k in need("noise_levels")),
            image_size=int(need("image_size")),
            shard_size=int(need("shard_size")),
            generator=GeneratorSpec.from_dict(need("generator")),
            eta_dims=tuple(int(d) for d in need("eta_dims")),
            simulation_params=dict(need("simulation_params")),
            fit_subjects=int(need("fit_subjects")),
            fit_options=dict(data.get("fit_options") or {}),
            writer=WriterSettings.from_dict(need("writer")),
            software={str(k): str(v) for k, v in (data.get("software") or {}).items()},
            blind_test=bool(data.get("blind_test", False)),
        )

    def build_key(self) -> dict[str, Any]:
        """The settings that must match for a build to resume or for ranks to join."""
        key = self.to_dict()
        del key["software"]
        return key

    def differences(self, other: BuildConfig) -> list[str]:
        """Names of the settings (outside ``software``) where ``other`` differs."""
        mine, theirs = self.build_key(), other.build_key()
        return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


@dataclass(frozen=True)
class FitRecord:
    """One noise level's population fit: the parameters its EBE targets were computed with."""

    params: dict[str, Any]
    ofv: float
    converged: bool
    n_subjects_used: int
    fit_on: str
    se: Any = None
    method: str = "foce"

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": dict(self.params),
            "ofv": self.ofv,
            "converged": self.converged,
            "n_subjects_used": self.n_subjects_used,
            "se": self.se,
            "fit_on": self.fit_on,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitRecord:
        where = "a population fit record"
        return cls(
            params=dict(_need(data, "params", where)),
            ofv=float(_need(data, "ofv", where)),
            converged=bool(_need(data, "converged", where)),
            n_subjects_used=int(_need(data, "n_subjects_used", where)),
            fit_on=str(data.get("fit_on", "")),
            se=data.get("se"),
            method=str(data.get("method", "foce")),
        )


_SHARD_KEYS = ("path", "split", "rows", "first_id", "last_id", "sha256", "bytes")


@dataclass(frozen=True)
class ShardRecord:
    """One Parquet shard as the manifest lists it: where, which subjects, its checksum."""

    path: str
    split: str
    rows: int
    first_id: int
    last_id: int
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SHARD_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardRecord:
        where = "a shard record"
        return cls(
            path=str(_need(data, "path", where)),
            split=str(_need(data, "split", where)),
            rows=int(_need(data, "rows", where)),
            first_id=int(_need(data, "first_id", where)),
            last_id=int(_need(data, "last_id", where)),
            sha256=str(_need(data, "sha256", where)),
            bytes=int(_need(data, "bytes", where)),
        )


@dataclass(frozen=True)
class ShardSidecar(ShardRecord):
    """A finished shard during a build: its record plus what the merge sums up."""

    index: int = 0
    column_bytes: dict[str, int] = field(default_factory=dict)
    ebe_converged: dict[int, int] = field(default_factory=dict)

    def record(self) -> ShardRecord:
        return ShardRecord(**{k: getattr(self, k) for k in _SHARD_KEYS})

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "index": self.index,
            "column_bytes": dict(self.column_bytes),
            "ebe_converged": {str(k): v for k, v in self.ebe_converged.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardSidecar:
        base = ShardRecord.from_dict(data)
        where = "a shard sidecar"
        return cls(
            **base.to_dict(),
            index=int(_need(data, "index", where)),
            column_bytes={str(k): int(v) for k, v in _need(data, "column_bytes", where).items()},
            ebe_converged=_levels_map(_need(data, "ebe_converged", where), int),
        )


@dataclass(frozen=True)
class SplitInfo:
    """One split: its size, its first subject id (ids are contiguous) and shard count."""

    n: int
    first_id: int
    shards: int

    def to_dict(self) -> dict[str, int]:
        return {"n": self.n, "first_id": self.first_id, "shards": self.shards}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitInfo:
        where = "a split record"
        return cls(
            n=int(_need(data, "n", where)),
            first_id=int(_need(data, "first_id", where)),
            shards=int(_need(data, "shards", where)),
        )


@dataclass(frozen=True)
class NLMERecord:
    """The NLME side of a dataset: simulation parameters, the fit per level, EBE counts."""

    simulation_params: dict[str, Any]
    fits: dict[int, FitRecord]
    fit_subjects: int
    fit_options: dict[str, Any]
    ebe_converged: dict[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "simulation_params": dict(self.simulation_params),
            "fits": {str(k): v.to_dict() for k, v in self.fits.items()},
            "fit_subjects": self.fit_subjects,
            "fit_options": dict(self.fit_options),
            "ebe_converged": {str(k): v for k, v in self.ebe_converged.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NLMERecord:
        where = "the manifest's nlme record"
        return cls(
            simulation_params=dict(_need(data, "simulation_params", where)),
            fits=_levels_map(_need(data, "fits", where), FitRecord.from_dict),
            fit_subjects=int(_need(data, "fit_subjects", where)),
            fit_options=dict(data.get("fit_options") or {}),
            ebe_converged=_levels_map(_need(data, "ebe_converged", where), int),
        )


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` holds: the dataset's settings, fits, splits and shards."""

    seed: int
    n: int
    preset: str | None
    splits: dict[str, SplitInfo]
    noise_levels: tuple[int, ...]
    image_size: int
    shard_size: int
    generator: GeneratorSpec
    eta_dims: tuple[int, ...]
    nlme: NLMERecord
    writer: WriterSettings
    shards: tuple[ShardRecord, ...]
    column_bytes: dict[str, dict[str, int]]
    software: dict[str, str] = field(default_factory=dict)
    name: str = "synthoct-bench"
    format_version: int = FORMAT_VERSION
    #: A blind build's references file (``references/test.parquet``, kept private): its
    #: subjects and checksum, so the fingerprint ties it to this dataset. None: no blind split.
    references: ShardRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        # "references" only when set, so the fingerprints of datasets without it never change
        extra = {"references": self.references.to_dict()} if self.references else {}
        return {
            **extra,
            "format_version": self.format_version,
            "name": self.name,
            "seed": self.seed,
            "n": self.n,
            "preset": self.preset,
            "splits": {k: v.to_dict() for k, v in self.splits.items()},
            "noise_levels": list(self.noise_levels),
            "image_size": self.image_size,
            "shard_size": self.shard_size,
            "generator": self.generator.to_dict(),
            "eta_dims": list(self.eta_dims),
            "nlme": self.nlme.to_dict(),
            "writer": self.writer.to_dict(),
            "software": dict(self.software),
            "shards": [s.to_dict() for s in self.shards],
            "column_bytes": {k: dict(v) for k, v in self.column_bytes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        where = "manifest.json"

        def need(key: str) -> Any:
            return _need(data, key, where)

        shards = need("shards")
        if not isinstance(shards, list):
            raise ValueError(f"{where}: 'shards' must be a list")
        return cls(
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            name=str(data.get("name", "synthoct-bench")),
            seed=int(need("seed")),
            n=int(need("n")),
            preset=data.get("preset"),
            splits={str(k): SplitInfo.from_dict(v) for k, v in need("splits").items()},
            noise_levels=tuple(int(k) for k in need("noise_levels")),
            image_size=int(need("image_size")),
            shard_size=int(need("shard_size")),
            generator=GeneratorSpec.from_dict(need("generator")),
            eta_dims=tuple(int(d) for d in need("eta_dims")),
            nlme=NLMERecord.from_dict(need("nlme")),
            writer=WriterSettings.from_dict(need("writer")),
            software={str(k): str(v) for k, v in (data.get("software") or {}).items()},
            shards=tuple(ShardRecord.from_dict(s) for s in shards),
            column_bytes={
                str(s): {str(c): int(b) for c, b in cols.items()}
                for s, cols in (data.get("column_bytes") or {}).items()
            },
            references=(
                ShardRecord.from_dict(data["references"]) if data.get("references") else None
            ),
        )

    # -- questions readers ask ---------------------------------------------------------------
    @property
    def blind_split(self) -> str | None:
        """The split published without references (a blind build's test split), or None."""
        return self.references.split if self.references is not None else None

    def is_blind(self, split: str) -> bool:
        return split == self.blind_split

    def present_splits(self) -> list[str]:
        """Splits with at least one subject, in the canonical order."""
        return [s for s in SPLIT_NAMES if s in self.splits and self.splits[s].n > 0]

    def split_shards(self, split: str) -> list[ShardRecord]:
        """The shards of ``split`` ordered by their first subject id."""
        return sorted((s for s in self.shards if s.split == split), key=lambda s: s.first_id)

    def check_split(self, split: str) -> str:
        """``split`` if the dataset has it, else a ValueError listing the splits it has."""
        present = self.present_splits()
        if split not in present:
            raise ValueError(
                f"split {split!r} does not exist; this dataset has {', '.join(present)}"
            )
        return split

    def check_noise(self, noise: int | float) -> int:
        """The noise level as int if it is one of this dataset's, else a ValueError."""
        if isinstance(noise, bool) or noise not in self.noise_levels:
            raise ValueError(
                f"noise level {noise!r} is not in this dataset; it has "
                + ", ".join(str(k) for k in self.noise_levels)
            )
        return int(noise)


@dataclass(frozen=True)
class ReferencesManifest:
    """The private ``references/manifest.json`` of a blind build: which dataset the
    references belong to (its fingerprint) and the references file's checksum."""

    dataset_fingerprint: str
    references: ShardRecord
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "dataset_fingerprint": self.dataset_fingerprint,
            "references": self.references.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferencesManifest:
        where = "the references manifest"
        return cls(
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            dataset_fingerprint=str(_need(data, "dataset_fingerprint", where)),
            references=ShardRecord.from_dict(_need(data, "references", where)),
        )
