"""Atomic file writes: a temporary file in the target folder, then ``os.replace``.

A reader (or a resumed build) never sees a half-written file, and an
interrupted write leaves the previous version in place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_via_temp", "write_text", "write_json", "save_figure"]


def write_via_temp(path: str | os.PathLike, suffix: str, write: Any) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_via_temp(path, ".tmp", lambda tmp: Path(tmp).write_text(text, "utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, sorted keys, trailing newline) atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG at ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        return write_via_temp(path, ".tmp.png", lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
