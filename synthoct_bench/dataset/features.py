"""Column types: one table that renders the Arrow schema of a shard, its Hugging Face
``datasets`` features and the card's YAML ``dataset_info.features``.

Written without importing ``datasets`` so that build workers need not;
``tests/test_dataset_layout.py`` checks every rendering against ``datasets``
itself. Images are ``datasets.Image(mode="L")``: a struct{bytes, path} holding
PNG bytes. Fixed-length float lists are Arrow ``fixed_size_list<float32>[n]``
(``datasets.List(Value("float32"), length=n)``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from synthoct_bench.dataset.layout import all_columns, parse_level_column
from synthoct_bench.latent import LATENT_DIM, PAPER_ETA_DIMS

__all__ = [
    "ColumnType",
    "COLUMN_TYPES",
    "N_OBS",
    "column_type",
    "arrow_schema",
    "hf_features_dict",
    "features_yaml",
    "IMAGE_TYPE",
]

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
#: Observations per series (t = 0, 0.5, ..., 10); equal to ``len(nlme.OBS_TIMES)``.
N_OBS = 21
#: Random effects per subject.
N_ETA = len(PAPER_ETA_DIMS)


@dataclass(frozen=True)
class ColumnType:
    """A stored column's type: ``int64``, ``image`` or ``float32`` list of ``length``."""

    kind: str
    length: int | None = None

    def arrow(self) -> pa.DataType:
        if self.kind == "int64":
            return pa.int64()
        if self.kind == "image":
            return IMAGE_TYPE
        return pa.list_(pa.float32(), self.length)

    def hf_feature(self) -> dict[str, Any]:
        """This type as ``datasets.Features.to_dict()`` writes it."""
        if self.kind == "int64":
            return {"dtype": "int64", "_type": "Value"}
        if self.kind == "image":
            return {"mode": "L", "_type": "Image"}
        return {
            "feature": {"dtype": "float32", "_type": "Value"},
            "length": self.length,
            "_type": "List",
        }

    def yaml(self, name: str) -> dict[str, Any]:
        """This type as a README YAML ``dataset_info.features`` entry."""
        if self.kind == "int64":
            return {"name": name, "dtype": "int64"}
        if self.kind == "image":
            return {"name": name, "dtype": {"image": {"mode": "L"}}}
        return {"name": name, "list": "float32", "length": self.length}


def _floats(length: int) -> ColumnType:
    return ColumnType("float32", length)


#: The column table: shared columns by name, per-level columns by stem
#: (``eta_noisy`` types ``eta_noisy_s9`` and every other level).
COLUMN_TYPES: dict[str, ColumnType] = {
    "subject_id": ColumnType("int64"),
    "image": ColumnType("image"),
    "time": _floats(N_OBS),
    "eta": _floats(N_ETA),
    "z": _floats(LATENT_DIM),
    "eta_noisy": _floats(N_ETA),
    "eta_ebe": _floats(N_ETA),
    "obs": _floats(N_OBS),
}


def column_type(name: str) -> ColumnType:
    """The type of a stored column (``"eta"``, ``"obs_s9"``, ...)."""
    parsed = parse_level_column(name)
    key = parsed[0] if parsed is not None else name
    if key not in COLUMN_TYPES:
        raise ValueError(f"unknown column {name!r}")
    return COLUMN_TYPES[key]


def hf_features_dict(columns: Sequence[str]) -> dict[str, Any]:
    """``datasets.Features.to_dict()`` of the given columns."""
    return {name: column_type(name).hf_feature() for name in columns}


def arrow_schema(levels: Sequence[int], columns: Sequence[str] | None = None) -> pa.Schema:
    """Schema of every shard (or of ``columns`` of it: a blind split's public shards, its
    references), with the ``huggingface`` metadata ``datasets`` reads."""
    names = tuple(columns) if columns is not None else all_columns(levels)
    fields = [pa.field(name, column_type(name).arrow()) for name in names]
    meta = {"info": {"features": hf_features_dict(names)}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(meta, sort_keys=True)})


def features_yaml(columns: Sequence[str]) -> list[dict[str, Any]]:
    """The ``dataset_info.features`` list of a README.md YAML header."""
    return [column_type(name).yaml(name) for name in columns]
