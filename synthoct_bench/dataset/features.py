"""Column types: the Arrow schema of a shard and its Hugging Face ``datasets`` features.

Written by hand (not through ``datasets.Features``) so that build workers need
not import ``datasets``; ``tests/test_dataset_layout.py`` checks both forms
against ``datasets`` itself. Images are ``datasets.Image(mode="L")``: a
struct{bytes, path} holding PNG bytes. Fixed-length float lists are Arrow
``fixed_size_list<float32>[n]`` (``datasets.List(Value("float32"), length=n)``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from synthoct_bench.dataset.layout import all_columns

__all__ = [
    "column_lengths",
    "arrow_schema",
    "hf_features_dict",
    "features_yaml",
    "IMAGE_TYPE",
]

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
N_OBS = 21
LATENT_DIM = 128


def column_lengths(levels: Sequence[int]) -> dict[str, int | None]:
    """Stored column -> fixed list length (None for scalars and the image)."""
    out: dict[str, int | None] = {}
    for name in all_columns(levels):
        if name in ("subject_id", "image"):
            out[name] = None
        elif name == "z":
            out[name] = LATENT_DIM
        elif name == "time" or name.startswith("obs_"):
            out[name] = N_OBS
        else:
            out[name] = 3
    return out


def _arrow_type(name: str, length: int | None) -> pa.DataType:
    if name == "subject_id":
        return pa.int64()
    if name == "image":
        return IMAGE_TYPE
    return pa.list_(pa.float32(), length)


def hf_features_dict(columns: Sequence[str], levels: Sequence[int]) -> dict[str, Any]:
    """``datasets.Features.to_dict()`` of the given columns."""
    lengths = column_lengths(levels)
    out: dict[str, Any] = {}
    for name in columns:
        if name == "subject_id":
            out[name] = {"dtype": "int64", "_type": "Value"}
        elif name == "image":
            out[name] = {"mode": "L", "_type": "Image"}
        else:
            out[name] = {
                "feature": {"dtype": "float32", "_type": "Value"},
                "length": lengths[name],
                "_type": "List",
            }
    return out


def arrow_schema(levels: Sequence[int]) -> pa.Schema:
    """Schema of every shard, with the ``huggingface`` metadata ``datasets`` reads."""
    lengths = column_lengths(levels)
    fields = [pa.field(name, _arrow_type(name, n)) for name, n in lengths.items()]
    meta = {"info": {"features": hf_features_dict(list(lengths), levels)}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(meta, sort_keys=True)})


def features_yaml(columns: Sequence[str], levels: Sequence[int]) -> list[dict[str, Any]]:
    """The ``dataset_info.features`` list of a README.md YAML header."""
    lengths = column_lengths(levels)
    out: list[dict[str, Any]] = []
    for name in columns:
        if name == "subject_id":
            out.append({"name": name, "dtype": "int64"})
        elif name == "image":
            out.append({"name": name, "dtype": {"image": {"mode": "L"}}})
        else:
            out.append({"name": name, "list": "float32", "length": lengths[name]})
    return out
