"""Torch device names, resolved once and checked against this machine before work starts."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (a CUDA GPU when torch sees one, else the CPU) or a device this machine
    has; a ``ValueError`` in one line otherwise: an unknown name, a GPU torch does not
    see, or a GPU index past the last one."""
    if isinstance(name, torch.device):
        device = name
    elif str(name).strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(str(name).strip().lower())
        except RuntimeError:
            raise ValueError(
                f"unknown device {name!r}: use auto, cpu, cuda, cuda:N, mps or xpu"
            ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif device.type == "mps":
        count = int(torch.backends.mps.is_available())
    elif device.type == "xpu":
        xpu = getattr(torch, "xpu", None)
        count = xpu.device_count() if xpu is not None and xpu.is_available() else 0
    else:
        raise ValueError(f"device {str(device)!r} cannot run models: use auto, cpu or cuda")
    if count == 0:
        raise ValueError(
            f"device {str(device)!r} was asked for but torch sees no {device.type} device on "
            "this machine; use --device cpu (or auto)"
        )
    if device.index is not None and device.index >= count:
        raise ValueError(
            f"device {str(device)!r}: this machine has {count} {device.type} device(s), "
            f"{device.type}:0 to {device.type}:{count - 1}"
        )
    return device
