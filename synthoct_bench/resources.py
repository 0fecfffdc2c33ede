"""What this machine can hold: free disk and available memory, and the refusals that
stop a job before it starts when its estimate does not fit (one line: the need, what
there is, and the flag to change)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = [
    "available_memory_bytes",
    "free_disk_bytes",
    "gigabytes",
    "require_disk",
    "require_memory",
]


def gigabytes(n: float) -> str:
    """``n`` bytes as people read them: ``17.1 GB``, ``820 MB``."""
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"


def free_disk_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the file system that ``path`` (or its nearest existing parent)
    lives on."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def available_memory_bytes() -> int | None:
    """Memory a new job can take without swapping (Linux ``MemAvailable``), else the
    physical memory; ``None`` where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def require_disk(path: str | os.PathLike, need: float, what: str, fix: str) -> None:
    """Raise ``ValueError`` when ``need`` bytes exceed the free space at ``path``."""
    free = free_disk_bytes(path)
    if need > free:
        raise ValueError(
            f"{what} needs about {gigabytes(need)} on disk but {path} has {gigabytes(free)} "
            f"free; {fix}"
        )


def require_memory(need: float, what: str, fix: str) -> None:
    """Raise ``ValueError`` when ``need`` bytes exceed the memory available now."""
    have = available_memory_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"{what} needs about {gigabytes(need)} of memory but this machine has "
            f"{gigabytes(have)} available; {fix}"
        )
