"""Run a reference baseline on a dataset and write a submission in the scorer's format.

    from synthoct_bench.baselines.run import run_baseline
    run_baseline("resnet18", "data/mini", noise=9, split="test", out="pred_s9.parquet")

The data is a local dataset directory or a Hub repo id (anything
:func:`synthoct_bench.dataset.read_columns` reads); every baseline's X is such
a column mapping (:mod:`synthoct_bench.baselines.base`). The average learns the
mean of the train split's ``eta_ebe_s{k}`` targets; random reads only ids and
the oracle the hidden noise-free η; the ResNet18 trains on the train split's
images and ``eta_ebe_s{k}`` targets, selects and calibrates on the validation
split, and predicts ``split``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench.baselines import BASELINES
from synthoct_bench.baselines.trivial import AverageBaseline, OracleBaseline, RandomBaseline

__all__ = ["read_split", "read_targets", "load_images", "predict_trivial", "run_baseline"]


def _level(noise: float) -> int:
    """The integer noise level that names the dataset's per-level columns."""
    value = float(noise)
    if not value.is_integer() or value < 0:
        raise ValueError(f"noise must be one of the dataset's integer levels (e.g. 9), got {noise}")
    return int(value)


def _ebe_column(noise: float) -> str:
    """The EBE target column of a noise level, e.g. ``eta_ebe_s9``."""
    from synthoct_bench.dataset.layout import noise_columns

    _, ebe, _ = noise_columns(_level(noise))
    return ebe


def read_split(
    data: str | os.PathLike, split: str, columns: list[str], revision: str | None = None
) -> dict[str, np.ndarray]:
    """Columns of one split as numpy arrays (through the dataset package's reader)."""
    from synthoct_bench.dataset import read_columns

    kwargs = {"revision": revision} if revision is not None else {}
    return read_columns(data, split, columns, **kwargs)


def read_targets(
    data: str | os.PathLike,
    split: str,
    noise: float,
    subject_id: np.ndarray | None = None,
    revision: str | None = None,
) -> np.ndarray:
    """The EBE training targets ``eta_ebe_s{k}`` (N, 3) of one split, in subject order.

    ``subject_id`` (e.g. from :func:`load_images`) is checked against the rows read.
    """
    col = _ebe_column(noise)
    cols = read_split(data, split, ["subject_id", col], revision)
    if subject_id is not None and not np.array_equal(cols["subject_id"], subject_id):
        raise ValueError(f"{split}: target rows do not line up with the images' subject ids")
    return np.asarray(cols[col], dtype=np.float32)


def load_images(
    data: str | os.PathLike,
    split: str,
    input_size: int | None = None,
    revision: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(subject_id (N,), uint8 images (N, S, S)) of one split, resized to ``input_size``."""
    from synthoct_bench.baselines.training import resize_images
    from synthoct_bench.dataset.torch_data import decode_png

    cols = read_split(data, split, ["subject_id", "image"], revision)
    images = decode_png(cols["image"])
    return np.asarray(cols["subject_id"]).astype(np.int64), resize_images(images, input_size)


def predict_trivial(
    name: str,
    data: str | os.PathLike,
    noise: float,
    split: str = "test",
    *,
    seed: int = 0,
    revision: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(subject_id, eta_pred) of the average, random or oracle baseline on one split.

    The average learns its mean from the train split's EBE targets at ``noise``;
    random and oracle learn nothing, so only ``split`` is read for them.
    """
    if name == "average":
        estimator: Any = AverageBaseline()
    elif name == "random":
        estimator = RandomBaseline(seed=seed)
    elif name == "oracle":
        estimator = OracleBaseline(noise)
    else:
        raise ValueError(f"unknown trivial baseline {name!r}; choose average, random or oracle")
    ebe = _ebe_column(noise)
    columns = ["subject_id", *(c for c in estimator.input_columns if c != "subject_id")]
    X = read_split(data, split, columns, revision)
    if name == "average":
        train = read_split(data, "train", columns + [ebe], revision)
        y_train = train.pop(ebe)
        estimator.fit(train, y_train)
    else:
        estimator.fit(X)
    return np.asarray(X["subject_id"]).astype(np.int64), estimator.predict(X)


def run_baseline(
    name: str,
    data: str | os.PathLike,
    noise: float,
    split: str = "test",
    out: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    train_config: Any = None,
    workdir: str | os.PathLike | None = None,
    resume: bool = False,
    model_dir: str | os.PathLike | None = None,
    revision: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict one split with a baseline; write a submission to ``out`` if given.

    ResNet18 only: ``train_config`` (a :class:`TrainConfig`), ``workdir`` (checkpoints
    under ``workdir/checkpoints``, the final model under ``workdir/model``), ``resume``
    (continue from those checkpoints), ``model_dir`` (skip training, use a saved model).
    Returns (subject_id, eta_pred).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    _level(noise)
    if name != "resnet18":
        ids, pred = predict_trivial(name, data, noise, split, seed=seed, revision=revision)
    else:
        from synthoct_bench.baselines.training import ResNet18Baseline, TrainConfig

        if model_dir is not None:
            model = ResNet18Baseline.load(
                model_dir, device=(train_config.device if train_config else "auto")
            )
        else:
            config = train_config or TrainConfig(seed=seed)
            ckpt = Path(workdir) / "checkpoints" if workdir is not None else None
            ids_train, x_train = load_images(data, "train", config.input_size, revision)
            y_train = read_targets(data, "train", noise, ids_train, revision)
            ids_val, x_val = load_images(data, "validation", config.input_size, revision)
            y_val = read_targets(data, "validation", noise, ids_val, revision)
            model = ResNet18Baseline(config, ckpt)
            model.fit(x_train, y_train, x_val, y_val, resume=resume)
            if workdir is not None:
                model.save(Path(workdir) / "model")
        ids, images = load_images(data, split, model.model_.config.input_size, revision)
        pred = model.predict(images)
    if out is not None:
        from synthoct_bench.scoring import write_submission

        write_submission(out, ids, pred, noise=noise, split=split, model=name)
    return ids, pred
