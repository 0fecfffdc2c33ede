"""The rule of a resumable run folder (a VAE or diffusion training run), kept apart from
:mod:`synthoct_bench.checkpoint` so that command modules can check it without torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["check_run_folder"]


def check_run_folder(
    out: Path, record: str, spec: Any, load_saved: Any, resume: bool, flags: str
) -> None:
    """The rule of a resumable run folder ``out`` whose ``record`` file names its spec:
    an existing run needs ``resume`` and the same spec (``load_saved(out)``; ``flags``
    names the options that set it), and ``resume`` needs a run to continue."""
    if (out / record).is_file():
        if not resume:
            raise ValueError(f"{out} already holds a run; pass --resume or choose another --out")
        saved = load_saved(out)
        if saved != spec:
            raise ValueError(
                f"{out} was trained with {saved.to_dict()}, not {spec.to_dict()}; resume with "
                f"the same {flags}"
            )
    elif resume and out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} has no {record}: nothing to resume")
