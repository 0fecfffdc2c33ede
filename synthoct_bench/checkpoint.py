"""Checkpoints as safetensors (weights, optimizer tensors) plus JSON (everything else).

Shared by the baselines' and the generators' training loops.

No pickle anywhere: the Adam state's tensors are flattened into one
safetensors file under keys ``state.{param_index}.{name}``, and the small
non-tensor rest (param groups, step counts, training progress) goes to JSON.
Every file is written to a temp name then ``os.replace``d, and the JSON that
names the current files is written last, so a kill at any moment leaves the
previous complete checkpoint in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from synthoct_bench.atomic import write_via_temp

__all__ = [
    "save_tensors",
    "load_tensors",
    "optimizer_to_tensors",
    "optimizer_from_tensors",
    "save_optimizer_state",
    "load_optimizer_state",
    "TrainingDiverged",
]


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite (a learning rate too large for the
    optimizer, as Korkic 2021 met with RMSprop at 0.1). A ValueError, so the command
    line reports it in one line; ``hint`` says what to change."""

    def __init__(
        self,
        step: int,
        loss: float,
        hint: str = "lower --lr, clip the gradients or pick another optimizer",
    ) -> None:
        self.step, self.loss = step, loss
        super().__init__(f"training diverged: the loss was {loss} at step {step}; {hint}")


def save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    """Atomic ``safetensors.torch.save_file`` (contiguous CPU copies, shared storage broken)."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    write_via_temp(path, ".tmp", lambda tmp: save_file(flat, tmp, metadata=metadata))


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


def save_optimizer_state(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> None:
    """One safetensors file: the state's tensors, the JSON rest in its metadata."""
    tensors, rest = optimizer_to_tensors(optimizer)
    save_tensors(path, tensors, metadata={"optimizer": json.dumps(rest)})


def load_optimizer_state(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> None:
    """Inverse of :func:`save_optimizer_state`."""
    tensors = load_tensors(path)
    with safe_open(str(path), framework="pt") as f:
        rest = json.loads(f.metadata()["optimizer"])
    optimizer_from_tensors(optimizer, tensors, rest)
