"""Training images for the VAE trainer: arrays, folders, `datasets` splits, and phantom
images rendered on the fly with their generating factors.

:class:`ImageSource` reads grayscale images from an array, a folder of files or a
`datasets` split; :class:`PhantomImageSource` renders subjects of a phantom dataset
(deterministic by seed and index) and gives the phantom's named factors of the same
items, the ground truth for disentanglement. :func:`load_image_source` turns what a
user passes (an array, a folder, a saved dataset, a Hub id) into one of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["IMAGE_SUFFIXES", "ImageSource", "PhantomImageSource", "load_image_source"]

#: File suffixes a folder of training images is searched for.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class ImageSource:
    """Grayscale images from an array, a folder of image files or a `datasets` split.

    ``get(indices)`` returns float tensors (B, 1, S, S) in [0, 1], resized to ``image_size``.
    """

    def __init__(self, items: Any, kind: str, image_size: int, image_column: str = "image"):
        self.items, self.kind, self.image_size, self.image_column = (
            items,
            kind,
            image_size,
            image_column,
        )

    def __len__(self) -> int:
        return len(self.items)

    def _to_array(self, img: Any) -> np.ndarray:
        from PIL import Image

        if isinstance(img, (str, os.PathLike)):
            with Image.open(img) as im:
                img = im.convert("L")
        elif isinstance(img, Image.Image):
            img = img.convert("L")
        else:
            img = Image.fromarray(np.asarray(img, dtype=np.uint8))
        s = self.image_size
        if img.size != (s, s):
            img = img.resize((s, s), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        idx = [int(i) for i in indices]
        if self.kind == "array":
            arr = self.items[idx]
            if arr.shape[1:] != (self.image_size, self.image_size):
                arr = np.stack([self._to_array(a) for a in arr])
        elif self.kind == "files":
            arr = np.stack([self._to_array(self.items[i]) for i in idx])
        else:
            rows = self.items[idx][self.image_column]
            arr = np.stack([self._to_array(r) for r in rows])
        return torch.from_numpy(arr.astype(np.float32) / 255.0)[:, None]


class PhantomImageSource:
    """Phantom images rendered on the fly, deterministic by seed and index.

    Item ``i`` is subject ``offset + i`` of a phantom dataset built with ``seed``:
    z = ``latent.sample_z`` and the speckle seed = the build pipeline's
    ``image_seeds``, so the images are the ones ``synthoct build --seed SEED``
    stores (rendered at ``image_size`` instead of resized). ``factors`` gives the
    phantom's named generating factors of the same items, the ground truth for
    :mod:`~synthoct_bench.generators.metrics.disentanglement`.

    Args:
        n: number of images.
        image_size: side of the rendered images (>= 32).
        seed: the dataset seed the latents and speckle are keyed by.
        offset: index of the first subject (e.g. ``n_train`` for a validation source).
        generator_kwargs: keyword arguments of :class:`PhantomGenerator` (eta_dims,
            eta_visibility, nuisance, dims).
    """

    kind = "phantom"

    def __init__(
        self,
        n: int,
        image_size: int = 64,
        seed: int = 0,
        offset: int = 0,
        generator_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from synthoct_bench.generators.phantom.generator import PhantomGenerator

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        self.n, self.seed, self.offset = int(n), int(seed), int(offset)
        self.generator_kwargs = dict(generator_kwargs or {})
        self.generator = PhantomGenerator(image_size=image_size, **self.generator_kwargs)
        self.image_size = self.generator.image_size

    def __len__(self) -> int:
        return self.n

    def resized(self, image_size: int) -> PhantomImageSource:
        """The same items rendered at another size."""
        if image_size == self.image_size:
            return self
        return PhantomImageSource(self.n, image_size, self.seed, self.offset, self.generator_kwargs)

    def subject_ids(self, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"indices must be in 0..{self.n - 1}")
        return self.offset + idx

    def latents(self, indices: Sequence[int]) -> np.ndarray:
        """z (B, 128) of the items."""
        from synthoct_bench.latent import sample_z

        return sample_z(self.subject_ids(indices), self.seed)

    def images(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 images (B, S, S) of the items."""
        from synthoct_bench.latent import image_seeds

        ids = self.subject_ids(indices)
        return self.generator.generate(self.latents(indices), image_seeds(ids, self.seed))

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.from_numpy(self.images(indices).astype(np.float32) / 255.0)[:, None]

    def factors(
        self, indices: Sequence[int], names: Sequence[str] | None = None
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        """(factors (B, k) float64, their names): ``PhantomGenerator.parameters`` of the
        items, all 21 in the phantom's order unless ``names`` picks some."""
        params = self.generator.parameters(self.latents(indices))
        names = tuple(params) if names is None else tuple(names)
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise ValueError(f"unknown phantom factors {unknown}; choose from {list(params)}")
        return np.stack([params[k] for k in names], axis=1), names


def load_image_source(
    source: Any, image_size: int, split: str = "train", image_column: str = "image"
) -> ImageSource | PhantomImageSource:
    """An :class:`ImageSource` (used as it is) or one from a uint8 array (N, H, W), a
    folder of images (searched recursively), a `datasets.Dataset`, a `save_to_disk` folder, or a Hub
    dataset repo id (loaded with ``datasets.load_dataset(source, split=split)``); a
    :class:`PhantomImageSource` is used as it is, rendered at ``image_size``."""
    if isinstance(source, PhantomImageSource):
        return source.resized(image_size)
    if isinstance(source, ImageSource):
        if source.image_size != image_size:
            return ImageSource(source.items, source.kind, image_size, source.image_column)
        return source
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.dtype != np.uint8 or len(source) == 0:
            raise ValueError(
                f"an image array must be uint8 (N, H, W) with N >= 1, got {source.dtype} "
                f"{source.shape}"
            )
        return ImageSource(source, "array", image_size)
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        datasets = None
    if datasets is not None and isinstance(source, datasets.Dataset):
        return _checked_dataset(source, image_size, image_column)
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            return _checked_dataset(datasets.load_from_disk(str(path)), image_size, image_column)
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no image files ({sorted(IMAGE_SUFFIXES)}) under {path}")
        return ImageSource(files, "files", image_size)
    if path.exists():
        raise ValueError(f"{path} is a file; give a folder of images or a dataset")
    ds = datasets.load_dataset(str(source), split=split)
    return _checked_dataset(ds, image_size, image_column)


def _checked_dataset(ds: Any, image_size: int, image_column: str) -> ImageSource:
    if image_column not in ds.column_names:
        raise ValueError(
            f"dataset has no column {image_column!r} (columns: {ds.column_names}); "
            "pass image_column=..."
        )
    if len(ds) == 0:
        raise ValueError("the image dataset is empty")
    return ImageSource(ds, "dataset", image_size, image_column)
