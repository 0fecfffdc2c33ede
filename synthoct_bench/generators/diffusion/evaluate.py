"""What a trained diffusion run is worth: does it follow z, carry η, look real, and how fast.

On held-out phantom subjects (those after the training ones), with z of each real
image (the run's VAE encoder means, or the phantom's own z), it generates one image
per z and measures:

- learned at all: the MSE of each generated image to the real image of the same z,
  over the MSE of the real images' own mean image (the trivial answer); 1 or more
  means the images carry nothing of their z;
- conditioning fidelity: the generated images re-encoded by the same VAE give z back
  (R² per active dim, and at the η dims under ``eta_r2``); and the same from z drawn
  from the prior N(0, I), as a dataset build draws them (``conditioning_r2_prior``,
  ``eta_r2_prior``): a model that follows only the z its training images gave (the
  encoder's means) can fail there. Its ceiling is the VAE's own: the VAE decoder's
  images of the same prior z, re-encoded (``eta_r2_prior_vae_decoder``). A
  phantom-conditioned run has no encoder to ask;
- η carried: a ridge probe fitted on other real images reads η (z at the η dims) from
  the generated images, as a ratio of what it reads from the real ones;
- realism: KID between generated and real images beside KID between two real samples,
  on the VAE encoder's means (a network trained here; no Inception weights can be
  downloaded) and on 16×16 block means of the pixels;
- sampling speed on this machine in images/s, and the counted FLOPs per image.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from synthoct_bench.atomic import finite_or_none

__all__ = ["DiffusionEvaluation", "evaluate_run"]


@dataclass
class DiffusionEvaluation:
    """The figures of :func:`evaluate_run` (lists follow ``eta_dims``)."""

    n: int
    condition: str
    eta_dims: list[int]
    paired_mse: float
    mean_image_mse: float
    paired_mse_ratio: float
    learned: bool
    conditioning_r2: list[float] | None
    active_dims: list[int] | None
    eta_r2: list[float] | None
    conditioning_r2_prior: list[float] | None
    eta_r2_prior: list[float] | None
    eta_r2_prior_vae_decoder: list[float] | None
    eta_probe_r2_real: list[float]
    eta_probe_r2_generated: list[float]
    eta_carried_ratio: list[float]
    kid_vae_features: dict[str, Any] | None
    kid_vae_features_real: dict[str, Any] | None
    kid_pixels: dict[str, Any]
    kid_pixels_real: dict[str, Any]
    images_per_s: float
    unet_calls: int
    gflop_per_image: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; an undefined figure (NaN, e.g. the R² of a dim the VAE holds
        constant) becomes null."""
        return finite_or_none(asdict(self))

    def summary(self) -> str:
        def nums(values: list[float] | None) -> str:
            return "n/a" if values is None else " / ".join(f"{v:.3f}" for v in values)

        lines = [
            f"held-out phantom subjects: {self.n}; conditioned on: {self.condition}",
            f"paired MSE to the real image of the same z: {self.paired_mse:.5f} (the mean "
            f"image: {self.mean_image_mse:.5f}; ratio {self.paired_mse_ratio:.3f})",
        ]
        if not self.learned:
            lines.append("NOT LEARNED: the images are no closer to their own real image than "
                         "the mean image is; the figures below measure noise")  # fmt: skip
        if self.conditioning_r2 is not None:
            lines.append(
                f"z re-encoded by the VAE: R² {np.mean(self.conditioning_r2):.3f} over "
                f"{len(self.conditioning_r2)} active dims; η dims {self.eta_dims}: "
                f"{nums(self.eta_r2)}"
            )
        if self.conditioning_r2_prior is not None:
            lines.append(
                f"z ~ N(0, I) as a dataset draws it, re-encoded: R² "
                f"{np.mean(self.conditioning_r2_prior):.3f} over the active dims; η dims: "
                f"{nums(self.eta_r2_prior)} (the VAE decoder's own images of the same z: "
                f"{nums(self.eta_r2_prior_vae_decoder)})"
            )
        lines += [
            f"η read by a probe fitted on real images: real {nums(self.eta_probe_r2_real)}, "
            f"generated {nums(self.eta_probe_r2_generated)} (ratio "
            f"{nums(self.eta_carried_ratio)})",
            f"KID, 16x16 pixel means: generated-real {self.kid_pixels['mean']:.4g}, "
            f"real-real {self.kid_pixels_real['mean']:.4g}",
        ]
        if self.kid_vae_features is not None and self.kid_vae_features_real is not None:
            lines.append(
                f"KID, VAE encoder means: generated-real {self.kid_vae_features['mean']:.4g}, "
                f"real-real {self.kid_vae_features_real['mean']:.4g}"
            )
        lines.append(
            f"sampling: {self.images_per_s:.2f} images/s on this machine, {self.unet_calls} "
            f"UNet calls, {self.gflop_per_image:.2f} GFLOP an image"
        )
        return "\n".join(lines)


def _r2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    sse = np.sum((pred - true) ** 2, axis=0)
    sst = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    return 1 - sse / np.where(sst > 0, sst, np.nan)


def _block_means(images: np.ndarray, size: int = 16) -> np.ndarray:
    n, h, w = images.shape
    x = images.astype(np.float64).reshape(n, size, h // size, size, w // size) / 255.0
    return x.mean(axis=(2, 4)).reshape(n, -1)


def evaluate_run(
    path: str | os.PathLike,
    n: int = 512,
    probe_n: int = 1000,
    device: str = "cpu",
    seed: int = 0,
    grid: str | os.PathLike | None = None,
) -> DiffusionEvaluation:
    """Evaluate the run in ``path`` on ``n`` held-out phantom subjects (a probe fitted on
    ``probe_n`` more, and ``n`` more again as the second real sample of the KIDs);
    ``grid`` also saves 4 rows of 8: real held-out images above the generated ones of
    the same z, twice."""
    from synthoct_bench.devices import resolve_device
    from synthoct_bench.generators.diffusion.cost import count_diffusion_cost, unet_calls
    from synthoct_bench.generators.diffusion.pipeline import LatentDiffusionGenerator
    from synthoct_bench.generators.diffusion.run import load_diffusion_run_spec, pipeline_dir
    from synthoct_bench.generators.metrics.conditioning import fit_linear_probe
    from synthoct_bench.generators.metrics.kid import kid
    from synthoct_bench.generators.vae.data import PhantomImageSource
    from synthoct_bench.latent import image_seeds, sample_z

    if n < 8 or probe_n < 8:
        raise ValueError(f"--n and --probe-n must be >= 8, got {n} and {probe_n}")
    spec = load_diffusion_run_spec(path)
    if spec.images != "phantom":
        raise ValueError(
            "evaluate compares with held-out phantom images; this run trained on a folder"
        )
    dev = resolve_device(device)
    gen = LatentDiffusionGenerator.from_pretrained(
        pipeline_dir(path), image_size=spec.image_size, device=dev
    )
    total = 2 * n + probe_n
    source = PhantomImageSource(total, spec.image_size, seed=spec.seed, offset=spec.n)
    real = source.images(np.arange(total))
    vae = None
    if spec.condition == "vae":
        from synthoct_bench.generators.vae.base import load_vae
        from synthoct_bench.generators.vae.run import run_model_dir

        vae = load_vae(run_model_dir(spec.vae), device="cpu")

        def encode(images: np.ndarray) -> np.ndarray:
            from synthoct_bench.generators.vae.data import load_image_source

            sized = load_image_source(images, vae.config.image_size).get(range(len(images)))
            return vae.encode_images(sized[:, 0].numpy())

        z_all = encode(real)
    else:
        z_all = source.latents(np.arange(total))
    eta_dims = list(gen.eta_dims)
    ev, probe, second = slice(0, n), slice(n, n + probe_n), slice(n + probe_n, total)
    z = z_all[ev]
    seeds = image_seeds(source.subject_ids(np.arange(n)), spec.seed)
    t0 = time.perf_counter()
    generated = gen.generate(z, seeds)
    images_per_s = n / (time.perf_counter() - t0)

    if grid is not None:
        from synthoct_bench.generators.diffusion.training import save_image_grid

        k = min(8, n // 2)
        rows = [real[:k], generated[:k], real[k : 2 * k], generated[k : 2 * k]]
        save_image_grid(np.concatenate(rows), grid, columns=k)
    x_real = real[ev].astype(np.float64) / 255.0
    x_gen = generated.astype(np.float64) / 255.0
    paired = float(np.mean((x_gen - x_real) ** 2))
    trivial = float(np.mean((x_real.mean(axis=0, keepdims=True) - x_real) ** 2))
    ratio = paired / trivial

    conditioning_r2 = active = eta_r2 = prior_r2 = eta_prior_r2 = eta_prior_vae = None
    kid_vae = kid_vae_real = None
    if vae is not None:
        mu_gen = encode(generated)
        active = [int(d) for d in np.flatnonzero(z.var(axis=0) > 0.01)]
        r2 = _r2(mu_gen, z)
        conditioning_r2 = [float(r2[d]) for d in active]
        eta_r2 = [float(r2[d]) for d in eta_dims]
        ids = source.subject_ids(np.arange(n))
        z_prior = sample_z(ids, spec.seed, gen.latent_dim).astype(np.float32)
        r2 = _r2(encode(gen.generate(z_prior, seeds)), z_prior)
        prior_r2 = [float(r2[d]) for d in active]
        eta_prior_r2 = [float(r2[d]) for d in eta_dims]
        decoded = (vae.decode_latents(z_prior) * 255).round().astype(np.uint8)
        r2 = _r2(encode(decoded), z_prior)
        eta_prior_vae = [float(r2[d]) for d in eta_dims]
        kid_vae = kid(mu_gen, z, seed=seed).to_dict()
        kid_vae_real = kid(z_all[second], z, seed=seed).to_dict()

    eta_true = z_all[:, eta_dims]
    probe_fn = fit_linear_probe(real[probe], eta_true[probe], size=16)
    r2_real = _r2(probe_fn(real[ev]), eta_true[ev])
    r2_gen = _r2(probe_fn(generated), eta_true[ev])
    kid_pix = kid(_block_means(generated), _block_means(real[ev]), seed=seed).to_dict()
    kid_pix_real = kid(_block_means(real[second]), _block_means(real[ev]), seed=seed).to_dict()

    cost = count_diffusion_cost(gen.unet, gen.vae, text_tokens=gen.prompt_length)
    calls = unet_calls(gen.scheduler, gen.num_inference_steps)
    return DiffusionEvaluation(
        n=n, condition=spec.condition, eta_dims=eta_dims, paired_mse=paired,
        mean_image_mse=trivial, paired_mse_ratio=ratio, learned=bool(ratio < 1),
        conditioning_r2=conditioning_r2, active_dims=active, eta_r2=eta_r2,
        conditioning_r2_prior=prior_r2, eta_r2_prior=eta_prior_r2,
        eta_r2_prior_vae_decoder=eta_prior_vae,
        eta_probe_r2_real=r2_real.tolist(), eta_probe_r2_generated=r2_gen.tolist(),
        eta_carried_ratio=(r2_gen / r2_real).tolist(), kid_vae_features=kid_vae,
        kid_vae_features_real=kid_vae_real, kid_pixels=kid_pix, kid_pixels_real=kid_pix_real,
        images_per_s=float(images_per_s), unet_calls=int(calls),
        gflop_per_image=cost.image_tflop(calls) * 1e3,
    )  # fmt: skip
