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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench.atomic import write_json
from synthoct_bench.baselines import BASELINES, TRIVIAL
from synthoct_bench.baselines.trivial import AverageBaseline, OracleBaseline, RandomBaseline
from synthoct_bench.dataset.layout import check_level, level_column

__all__ = [
    "read_split",
    "read_targets",
    "read_images",
    "read_fit_splits",
    "predict_trivial",
    "run_baseline",
    "report_path",
]


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
    noise: int,
    subject_id: np.ndarray | None = None,
    revision: str | None = None,
) -> np.ndarray:
    """The EBE training targets ``eta_ebe_s{k}`` (N, 3) of one split, in subject order.

    ``subject_id`` (e.g. X["subject_id"] from :func:`read_images`) is checked against the
    rows read.
    """
    col = level_column("eta_ebe", noise)
    cols = read_split(data, split, ["subject_id", col], revision)
    if subject_id is not None and not np.array_equal(cols["subject_id"], subject_id):
        raise ValueError(f"{split}: target rows do not line up with the images' subject ids")
    return np.asarray(cols[col], dtype=np.float32)


def read_images(
    data: str | os.PathLike,
    split: str,
    input_size: int | None = None,
    revision: str | None = None,
) -> dict[str, np.ndarray]:
    """X of one split for the ResNet18: ``{"subject_id": (N,) int64, "image": uint8 (N, S, S)}``.

    The images are decoded once and resized to ``input_size`` (None keeps the stored
    size), so X can be reused by several fits at that size.
    """
    from synthoct_bench.baselines.training import decode_images, resize_images

    cols = read_split(data, split, ["subject_id", "image"], revision)
    return {
        "subject_id": np.asarray(cols["subject_id"]).astype(np.int64),
        "image": resize_images(decode_images(cols["image"]), input_size),
    }


def read_fit_splits(
    data: str | os.PathLike,
    noise: int,
    input_size: int | None = None,
    revision: str | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[dict[str, np.ndarray], np.ndarray]]:
    """What a learned baseline fits on: (X_train, y_train, (X_val, y_val)), images at
    ``input_size`` (None: as stored) and the EBE targets at ``noise``."""
    X_train = read_images(data, "train", input_size, revision)
    y_train = read_targets(data, "train", noise, X_train["subject_id"], revision)
    X_val = read_images(data, "validation", input_size, revision)
    y_val = read_targets(data, "validation", noise, X_val["subject_id"], revision)
    return X_train, y_train, (X_val, y_val)


def predict_trivial(
    name: str,
    data: str | os.PathLike,
    noise: int,
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
    ebe = level_column("eta_ebe", noise)
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
    noise: int,
    split: str = "test",
    out: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    workdir: str | os.PathLike | None = None,
    resume: bool = False,
    model_dir: str | os.PathLike | None = None,
    revision: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict one split with a baseline; write a submission to ``out`` if given.

    ``seed``: the random baseline's draws and the learned baselines' seed. ``params``:
    keyword arguments of the learned baseline's estimator (:class:`ResNet18Baseline`,
    :class:`~synthoct_bench.baselines.interpretable.TCVAEHeadBaseline`). ResNet18:
    ``workdir`` (checkpoints under ``workdir/checkpoints``, the final model under
    ``workdir/model``), ``resume`` (continue from those checkpoints), ``model_dir``
    (skip training, use a saved model on ``params["device"]``). ``tcvae-*``: ``workdir``
    holds the β-TCVAE and the heads the three stages share; with ``out``, the stage's
    report goes to ``<out>.report.json`` (:func:`interpretable_report`). Returns
    (subject_id, eta_pred).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    from synthoct_bench.dataset import read_metadata

    meta = read_metadata(data, revision)
    noise = meta.check_noise(check_level(noise))
    meta.check_split(split)
    report = None
    if name in TRIVIAL:
        ids, pred = predict_trivial(name, data, noise, split, seed=seed, revision=revision)
    elif name.startswith("tcvae-"):
        from synthoct_bench.baselines.interpretable import TCVAEHeadBaseline, interpretable_report

        settings = {"seed": seed, **(params or {}), "stage": name.removeprefix("tcvae-")}
        if workdir is not None:
            settings.setdefault("workdir", workdir)
        model = TCVAEHeadBaseline(**settings)
        X_train, y_train, val = read_fit_splits(data, noise, None, revision)
        model.fit(X_train, y_train, eval_set=val)
        X = read_images(data, split, None, revision)
        features = model.features(X)  # once, for the predictions and the report
        ids, pred = X["subject_id"], model.predict_features(features)
        report = interpretable_report(model, data, split, ids, features, noise=noise,
                                      revision=revision)  # fmt: skip
    else:
        from synthoct_bench.baselines.training import ResNet18Baseline

        settings = {"seed": seed, **(params or {})}
        if model_dir is not None:
            device = settings.get("device", "auto")
            model = ResNet18Baseline.from_pretrained(model_dir, device=device)
            if settings.get("amp") is not None:  # predict in the precision asked for
                model.amp = settings["amp"]
        else:
            if workdir is not None:
                settings.setdefault("checkpoint_dir", Path(workdir) / "checkpoints")
            model = ResNet18Baseline(**settings)
            X_train, y_train, val = read_fit_splits(data, noise, model.input_size, revision)
            model.fit(X_train, y_train, eval_set=val, resume=resume)
            if workdir is not None:
                model.save_pretrained(Path(workdir) / "model")
        X = read_images(data, split, model.model_.config.input_size, revision)
        ids, pred = X["subject_id"], model.predict(X)
    if out is not None:
        from synthoct_bench.scoring import write_submission

        write_submission(
            out, ids, pred, noise=noise, split=split, dataset=data, revision=revision, model=name
        )
        if report is not None:
            write_json(report_path(out), report)
    return ids, pred


def report_path(out: str | os.PathLike) -> Path:
    """Where a ``tcvae-*`` baseline's report goes beside its submission ``out``."""
    return Path(f"{out}.report.json")
