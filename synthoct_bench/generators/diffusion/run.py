"""A diffusion run folder: what it trains on, how it is conditioned, and its training.

``synthoct diffusion train`` maps its options onto :class:`DiffusionRunSpec` and
:func:`train_run`; the folder holds ``run.json`` (the spec and the training config),
``checkpoints/``, ``validation/`` (real images above generated ones, per
checkpoint), ``loss_curves.png`` and, at the end, ``pipeline/`` (EMA weights, the
layout ``synthoct build --generator diffusion --weights DIR/pipeline`` loads).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench.atomic import to_jsonable, write_json
from synthoct_bench.run_folder import check_run_folder

__all__ = [
    "CONDITIONS",
    "RUN_NAME",
    "VAE_Z",
    "DiffusionRunSpec",
    "conditioning",
    "load_diffusion_run_spec",
    "pipeline_dir",
    "train_run",
]

RUN_NAME = "run.json"
#: what z a run is conditioned on: a trained VAE's posterior (the paper's β-VAE z), or the
#: phantom's own 128-d z (an oracle: the conditioning a perfect encoder would give)
CONDITIONS = ("vae", "phantom")
#: which z of each training image a VAE-conditioned run sees: a fresh sample of the
#: encoder's posterior q(z | x) every step (the default), or its mean μ. A dataset
#: draws z ~ N(0, I), and the means alone never show the UNet that spread: a VAE's
#: inactive dims have μ ≈ 0 on every image, so prior draws there are inputs it has
#: never seen. The paper says only that the latent vectors condition the model.
VAE_Z = ("sample", "mean")


@dataclass(frozen=True)
class DiffusionRunSpec:
    """What a run trains on. ``images``: ``"phantom"`` (subjects 0..n-1 of dataset seed
    ``seed``, rendered at ``image_size``, the VAE's own training subjects when it was
    trained the same way) or a folder of images. ``condition``: ``"vae"`` with ``vae``
    a `synthoct vae` run or model folder, or ``"phantom"``; ``vae_z``: one of
    :data:`VAE_Z`. ``base``: a pretrained
    pipeline (folder or Hub id) to fine-tune, or None for the small generator from
    scratch (:mod:`.small`)."""

    images: str = "phantom"
    n: int = 10_000
    image_size: int = 64
    condition: str = "vae"
    vae: str | None = None
    vae_z: str = "sample"
    base: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}; choose from {CONDITIONS}")
        if self.condition == "vae" and not self.vae:
            raise ValueError(
                "conditioning on a VAE needs its run folder (--vae RUN, from `synthoct vae "
                "train`), or --condition phantom for the phantom's own z"
            )
        if self.vae_z not in VAE_Z:
            raise ValueError(f"unknown --vae-z {self.vae_z!r}; choose from {VAE_Z}")
        if self.condition == "phantom" and self.images != "phantom":
            raise ValueError("--condition phantom needs --images phantom (its z are known)")
        if self.images != "phantom" and not Path(self.images).is_dir():
            raise ValueError(f"--images must be 'phantom' or a folder, got {self.images!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionRunSpec:
        known = {f.name for f in fields(cls)}
        # a run recorded before vae_z existed conditioned on the encoder's means
        data = {"vae_z": "mean", **data}
        return cls(**{k: v for k, v in data.items() if k in known})


def load_diffusion_run_spec(path: str | os.PathLike) -> DiffusionRunSpec:
    """The spec in ``path/run.json``."""
    record = Path(path) / RUN_NAME
    if not record.is_file():
        raise ValueError(
            f"{path} holds no diffusion run ({RUN_NAME}); run `synthoct diffusion train`"
        )
    return DiffusionRunSpec.from_dict(json.loads(record.read_text())["spec"])


def pipeline_dir(path: str | os.PathLike) -> Path:
    """The trained pipeline of a run folder (``DIR/pipeline``), or ``path`` itself."""
    path = Path(path)
    for folder in (path / "pipeline", path):
        if (folder / "model_index.json").is_file():
            return folder
    raise ValueError(
        f"{path} holds no trained pipeline (pipeline/model_index.json): finish `synthoct "
        "diffusion train` (it writes the pipeline after the last step)"
    )


def _source(spec: DiffusionRunSpec) -> Any:
    from synthoct_bench.generators.vae.data import PhantomImageSource, load_image_source

    if spec.images == "phantom":
        return PhantomImageSource(spec.n, spec.image_size, seed=spec.seed)
    return load_image_source(spec.images, spec.image_size)


def conditioning(
    spec: DiffusionRunSpec, source: Any
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """(z (N, d) of the training images, the spread to sample around it each step or
    None, the η dims among z): the VAE's posterior (μ, σ; σ None for ``vae_z="mean"``)
    and the η dims its ``synthoct vae select`` saved, or the phantom's z and the
    paper's η dims."""
    if spec.condition == "phantom":
        from synthoct_bench.latent import PAPER_ETA_DIMS

        z = source.latents(np.arange(len(source))).astype(np.float32)
        return z, None, tuple(PAPER_ETA_DIMS)
    from synthoct_bench.generators.diffusion.training import vae_conditioning
    from synthoct_bench.generators.vae.base import load_vae
    from synthoct_bench.generators.vae.generator import saved_eta_dims
    from synthoct_bench.generators.vae.run import run_model_dir

    model_dir = run_model_dir(spec.vae)
    vae = load_vae(model_dir, device="cpu")
    eta_dims = saved_eta_dims(model_dir)
    if eta_dims is None:
        raise ValueError(
            f"{spec.vae} has no η dims: run `synthoct vae select {spec.vae}` first, so the "
            "diffusion model knows which of z's dims carry η"
        )
    mu, std = vae_conditioning(vae, source)
    spread = std.astype(np.float32) if spec.vae_z == "sample" else None
    return mu.astype(np.float32), spread, eta_dims


def train_run(
    out: str | os.PathLike,
    spec: DiffusionRunSpec,
    training: Any = None,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``spec``'s generator with ``training`` (a DiffusionTrainingConfig; default
    the small recipe from scratch, the paper's fine-tune with a ``base``) into ``out``;
    ``resume`` continues the run there (same spec), otherwise an existing run is an
    error."""
    from synthoct_bench.devices import resolve_device
    from synthoct_bench.generators.diffusion.small import small_generator
    from synthoct_bench.generators.diffusion.training import (
        DiffusionTrainingConfig,
        train_diffusion,
    )

    device = str(resolve_device(device))
    out = Path(out)
    record = out / RUN_NAME
    check_run_folder(
        out, RUN_NAME, spec, load_diffusion_run_spec, resume,
        "--images, --n, --image-size, --condition, --vae, --vae-z, --base and --seed",
    )  # fmt: skip
    if training is None:
        training = (
            DiffusionTrainingConfig() if spec.base else DiffusionTrainingConfig.small_recipe()
        )
    source = _source(spec)
    z, z_std, eta_dims = conditioning(spec, source)
    if record.is_file():  # resuming: the VAE in --vae may have been retrained since
        before = json.loads(record.read_text()).get("latent_dim")
        if before is not None and before != z.shape[1]:
            raise ValueError(
                f"{out} was conditioned on {before}-d z, but {spec.vae} now gives "
                f"{z.shape[1]}-d: the VAE changed; train into another --out"
            )
    if spec.base is None:
        base: Any = small_generator(
            spec.image_size, z.shape[1], seed=training.seed, eta_dims=eta_dims, device=device
        )
    else:
        base = spec.base
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        record,
        {"spec": spec.to_dict(), "latent_dim": int(z.shape[1]),
         "training": to_jsonable(asdict(training))},
    )  # fmt: skip
    return train_diffusion(
        base, source, z, out, training, device=device, resume=resume, progress=progress,
        eta_dims=eta_dims, z_std=z_std,
    )  # fmt: skip
