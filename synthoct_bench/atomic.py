"""Atomic file writes: a temporary file in the target folder, then ``os.replace``.

A reader (or a resumed build) never sees a half-written file, and an
interrupted write leaves the previous version in place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "current_umask",
    "write_via_temp",
    "write_text",
    "write_json",
    "atomic_write_dir",
    "save_figure",
    "to_jsonable",
    "finite_or_none",
]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: mappings get str keys, tuples become lists, numpy
    scalars and arrays become numbers and lists, objects with ``to_dict`` are converted
    through it, and anything else becomes its ``str``."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    import numpy as np

    arr = np.asarray(value)
    if arr.dtype.kind in "biuf":
        return arr.tolist()
    return str(value)


def finite_or_none(value: Any) -> Any:
    """``value`` (nested dicts and lists) with every NaN or infinite float as None: an
    undefined figure (the MIG of a constant factor, the R² of a constant dim) written
    as JSON null, so reports pass a strict ``json.dumps(..., allow_nan=False)``."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def current_umask() -> int:
    """The process umask (read by setting and restoring it: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a temp file (0600) or folder (0700) the mode a plain ``open``/``mkdir`` would:
    0666 or 0777 less the umask, so others sharing a folder can read what we write."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def write_via_temp(path: str | os.PathLike, suffix: str, write: Any) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path``
    (with the usual permissions; the temp file is removed whatever happens)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _usual_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_via_temp(path, ".tmp", lambda tmp: Path(tmp).write_text(text, "utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` (through :func:`to_jsonable`) as JSON (indent 2, sorted keys, trailing
    newline) atomically."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def atomic_write_dir(target: str | os.PathLike, write: Any) -> Path:
    """Call ``write(tmp_dir)`` on a fresh folder beside ``target``, then move it into place
    (replacing ``target``): a reader sees the old folder or the new one, never a mix."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        _usual_mode(tmp, directory=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG at ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        return write_via_temp(path, ".tmp.png", lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
