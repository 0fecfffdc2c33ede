"""What every baseline's ``fit(X, y)`` and ``predict(X)`` take, and the parameters they share.

**X** is the same kind of object for every baseline, in ``fit`` and ``predict``
alike: one split's columns as a mapping of column name -> numpy array, rows
aligned, exactly what :func:`synthoct_bench.dataset.read_columns` returns::

    from synthoct_bench.dataset import read_columns
    X = read_columns("data/mini", "train", ["subject_id", "image", "eta"])
    # {"subject_id": (N,) int64, "image": (N,) PNG bytes, "eta": (N, 3) float32}

``"image"`` may also hold decoded images, uint8 (N, H, W), as
:func:`synthoct_bench.baselines.run.read_images` returns them. A baseline reads
only the columns it names in ``input_columns`` and ignores the rest:

==================  ==================  ==========================================
baseline            ``input_columns``   reads
==================  ==================  ==========================================
AverageBaseline     ``()``              only the row count
RandomBaseline      ``("subject_id",)`` the ids its draws are keyed by
OracleBaseline      ``("eta",)``        the hidden noise-free η (an upper bound)
ResNet18Baseline    ``("image",)``      the images
==================  ==================  ==========================================

**y** is the (N, 3) training target: the empirical Bayes estimates
``eta_ebe_s{k}`` of one noise level (:func:`synthoct_bench.baselines.run.read_targets`).
``predict`` returns η, float64 (N, 3).

Parameters follow scikit-learn: ``__init__`` stores its arguments under the
same names and does nothing else, :meth:`ParamsMixin.get_params` and
:meth:`ParamsMixin.set_params` read and change them, ``fit`` checks them and
sets what it learns as attributes with a trailing underscore (``mean_``,
``model_``), and returns the estimator.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

__all__ = ["ETA_DIM", "Columns", "ParamsMixin", "n_rows", "column", "check_targets"]

#: Number of random effects η per subject (Ka, Imax, IC50).
ETA_DIM = 3

#: X of every baseline: column name -> array of one split (see the module docstring).
Columns = Mapping[str, Any]

_T = TypeVar("_T", bound="ParamsMixin")


def n_rows(X: Columns) -> int:
    """Number of rows of X; checks that X is a mapping of equally long columns."""
    if not isinstance(X, Mapping):
        raise TypeError(
            "X must be a mapping of column name -> array, as synthoct_bench.dataset.read_columns "
            f"returns, got {type(X).__name__}"
        )
    if not X:
        raise ValueError("X has no columns; give at least subject_id")
    lengths = {name: len(values) for name, values in X.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"X's columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def column(X: Columns, name: str, reader: str) -> Any:
    """Column ``name`` of X, or an error that says which baseline needed it."""
    n_rows(X)
    if name not in X:
        raise ValueError(f"{reader} reads column {name!r}, which X lacks (X has {sorted(X)})")
    return X[name]


def check_targets(y: Any, n: int) -> np.ndarray:
    """y as float64 (n, k), finite."""
    if y is None:
        raise ValueError("y is required: the (N, 3) training targets (the EBEs eta_ebe_s{k})")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n}, {ETA_DIM}), one row per row of X; got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or inf; drop those subjects first")
    return y


class ParamsMixin:
    """scikit-learn's parameter protocol: the constructor's arguments are the parameters."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments by name (``deep``: nested estimators' as ``name__key``)."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self: _T, **params: Any) -> _T:
        """Set parameters by name (``name__key`` for a nested estimator's); returns self."""
        valid = self._param_names()
        for key, value in params.items():
            name, _, nested = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters: {', '.join(valid) or 'none'}"
                )
            if nested:
                getattr(self, name).set_params(**{nested: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params(deep=False).items()
            if defaults.get(name, inspect.Parameter.empty) is inspect.Parameter.empty
            or _differs(value, defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except (TypeError, ValueError):
        return True
