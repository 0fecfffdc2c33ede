"""Lazy public names for packages: ``import synthoct_bench`` must not import torch.

A package lists its public names as ``name -> "module:attribute"`` and gets a
module ``__getattr__`` that imports each on first access (PEP 562) and a
``__dir__`` that lists them, so tab completion and ``help()`` see them too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["resolve", "lazy_exports"]


def resolve(target: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module_path, sep, attribute = target.partition(":")
    if not sep or not module_path or not attribute:
        raise ValueError(f"expected 'package.module:attribute', got {target!r}")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:  # an optional dependency: say which extra installs it
        from synthoct_bench.extras import extra_for

        missing = extra_for(exc)
        if missing is None:
            raise
        raise missing from exc
    return getattr(module, attribute)


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str], eager: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``exports`` load on first use.

    ``namespace`` is the package's ``globals()``: a resolved name is cached there,
    so later lookups are plain attribute reads. ``eager`` lists names already defined.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = resolve(exports[name])
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*eager, *exports})

    return __getattr__, __dir__
