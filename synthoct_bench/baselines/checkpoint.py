"""Checkpoints as safetensors (weights, optimizer tensors) plus JSON (everything else).

No pickle anywhere: the Adam state's tensors are flattened into one
safetensors file under keys ``state.{param_index}.{name}``, and the small
non-tensor rest (param groups, step counts, training progress) goes to JSON.
Every file is written to a temp name then ``os.replace``d, and the JSON that
names the current files is written last, so a kill at any moment leaves the
previous complete checkpoint in place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "save_tensors",
    "load_tensors",
    "optimizer_to_tensors",
    "optimizer_from_tensors",
]


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Atomic ``safetensors.torch.save_file`` (contiguous CPU copies, shared storage broken)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(flat, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing; was the checkpoint complete?")
    return load_file(str(path), device=str(device))


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, Any]]:
    """Split an optimizer's state_dict into (tensors, JSON-able rest)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_to_tensors`: load the state into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
