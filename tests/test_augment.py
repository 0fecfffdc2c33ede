"""Ramisetti's (2024) latent augmentations and the adaptive schedule with its fixes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthoct_bench.augment import (  # noqa: E402
    AdaptiveSchedule,
    LatentAugmentation,
    augment,
    beta_weights,
    cmixup,
    cutout,
    gaussian,
    generator_for,
    mixup,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gaussian_adds_noise_of_the_given_sd():
    z = torch.randn(20000, 8)
    d = gaussian(z, 0.1, generator_for(0, 1)) - z
    assert abs(float(d.std()) - 0.1) < 0.002 and abs(float(d.mean())) < 0.002


def test_cutout_zeroes_exactly_n_distinct_dims_per_row():
    z = torch.rand(500, 32) + 1.0  # no zeros before
    out = cutout(z, 10, generator_for(0, 2))
    assert ((out == 0).sum(1) == 10).all()
    kept = out != 0
    assert torch.equal(out[kept], z[kept])
    assert ((cutout(z, 40, generator_for(0, 2)) == 0).sum(1) == 32).all()  # capped at d


def test_mixup_is_a_convex_combination_of_inputs_and_targets_with_one_weight():
    z, y = torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    zm, ym = mixup(z, y, 0.2, generator_for(0, 3))
    partner = torch.arange(63, -1, -1)
    dz, dy = z - z[partner], y - y[partner]
    lam_z = ((zm - z[partner]) * dz).sum(1) / (dz * dz).sum(1)
    lam_y = ((ym - y[partner]) * dy).sum(1) / (dy * dy).sum(1)
    assert torch.allclose(lam_z, lam_y) and ((lam_z >= 0) & (lam_z <= 1)).all()
    assert torch.allclose(zm, lam_z[:, None] * z + (1 - lam_z[:, None]) * z[partner])


def test_beta_weights_have_beta_moments():
    lam = beta_weights(0.2, 200_000, generator_for(0, 4)).numpy()
    assert abs(lam.mean() - 0.5) < 0.005
    assert abs(lam.var() - 1 / (4 * (2 * 0.2 + 1))) < 0.003


def test_cmixup_prefers_partners_with_close_targets():
    y = torch.cat([torch.zeros(50, 1), torch.full((50, 1), 10.0)]).double()
    z = y.repeat(1, 4)
    zm, ym = cmixup(z, y, 0.2, 1.0, generator_for(0, 5))
    # partners come from the same cluster, so mixed targets stay at 0 or 10
    assert torch.allclose(ym[:50], y[:50]) and torch.allclose(ym[50:], y[50:])
    assert torch.allclose(zm, ym.repeat(1, 4))
    with pytest.raises(ValueError, match="pass y"):
        cmixup(z, None, 0.2, 1.0, generator_for(0, 5))


def test_same_seed_same_batch_other_seed_other_batch():
    z, y = torch.randn(32, 16), torch.randn(32, 3)
    for name in ("gaussian", "cutout", "mixup", "cmixup"):
        aug = LatentAugmentation(name)
        a = augment(z, y, aug, generator_for(3, 1, 2))
        b = augment(z, y, aug, generator_for(3, 1, 2))
        c = augment(z, y, aug, generator_for(4, 1, 2))
        assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    with pytest.raises(ValueError, match="unknown latent augmentation"):
        LatentAugmentation("rotate")


@pytest.mark.parametrize(
    "losses, expected",
    [
        ([1.0, 0.5, 0.3, 0.2], ["high", "high", "high", "high"]),  # falling, avg > 0.15 of 1.0
        ([1.0, 0.12, 0.10, 0.08], ["high", "high", "high", "medium"]),
        ([1.0, 0.04, 0.03, 0.02], ["high", "high", "high", "low"]),  # window mean 0.333 first
        ([1.0, 0.5, 0.6, 0.55], ["high", "high", "high", "high"]),  # not falling
    ],
)
def test_adaptive_schedule_categories_on_scripted_losses(losses, expected):
    s = AdaptiveSchedule()
    for loss in losses:
        s.update(loss)
    assert s.categories == expected


def test_adaptive_high_branch_fires_and_thresholds_are_relative():
    # Ramisetti's (2024) order (> 0.05 before > 0.15) made "high" unreachable from a falling loss
    s = AdaptiveSchedule(thresholds=(0.05, 0.15))
    for loss in (100.0, 90.0, 80.0):  # falling; 0.9 of the first loss: high
        s.update(loss)
    assert s.categories[-1] == "high" and s.current.name == "cmixup"
    s = AdaptiveSchedule(thresholds=(0.05, 0.15), relative=False, regression=False)
    for loss in (0.2, 0.1, 0.09):
        s.update(loss)
    assert s.categories[-1] == "medium" and s.current.name == "cutout"
    for loss in (0.04, 0.03, 0.02):
        s.update(loss)
    assert s.categories[-1] == "low" and s.current.name == "gaussian"


def test_adaptive_random_search_keeps_the_best_candidate():
    s = AdaptiveSchedule(samples=5, seed=1)
    seen = []

    def evaluate(cand):
        seen.append(cand)
        return abs(cand.n_dims - 7) + cand.sigma  # best: the candidate closest to 7 dims

    s.update(1.0, evaluate)
    assert len(seen) == 5
    best = min(seen, key=lambda c: abs(c.n_dims - 7) + c.sigma)
    assert (s.current.n_dims, s.current.sigma) == (best.n_dims, best.sigma)
    assert all(1 <= c.n_dims <= 20 and 0.1 <= c.alpha <= 0.9 for c in seen)


def test_head_training_with_each_augmentation_is_deterministic():
    from synthoct_bench.baselines.interpretable import HeadConfig, MishHead, train_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = np.stack([x[:, 0], x[:, 1] ** 2, x[:, 2] - x[:, 3]], 1).astype(np.float32)
    xv, yv = x[:30] + 0.01, y[:30]
    for aug in (LatentAugmentation("cutout", n_dims=2), AdaptiveSchedule(samples=2)):
        preds = []
        for _ in range(2):
            torch.manual_seed(0)
            head = MishHead(HeadConfig(6, (8,), 3))
            if isinstance(aug, AdaptiveSchedule):
                aug = AdaptiveSchedule(samples=2)
            log = train_head(head, x, y, epochs=6, batch_size=32, augmentation=aug,
                             eval_set=(xv, yv), keep_best=True)  # fmt: skip
            preds.append(head.predict(x))
        assert np.array_equal(preds[0], preds[1])
        assert len(log["augmentation"]) == 6 and log["augmentation"][0] in ("cutout", "none")
    assert log["augmentation"][0] == "none"  # the adaptive run's first epoch is plain
    with pytest.raises(ValueError, match="eval_set"):
        train_head(
            MishHead(HeadConfig(6, (8,), 3)), x, y, epochs=2, augmentation=AdaptiveSchedule()
        )


def test_decoded_latent_augmentation_grows_the_resnet_training_set(tmp_path):
    from synthoct_bench.augment import augmented_images
    from synthoct_bench.baselines.training import ArrayImageDataset, ResNet18Baseline
    from synthoct_bench.generators.vae.small import SmallConvVAE, SmallConvVAEConfig

    torch.manual_seed(0)
    vae = SmallConvVAE(SmallConvVAEConfig(image_size=32, latent_dim=8))
    vae.save_pretrained(tmp_path / "vae")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 32, 32), dtype=np.uint8)
    y = rng.normal(size=(10, 3)).astype(np.float32)
    extra, extra_y = augmented_images(vae, images, y, LatentAugmentation("mixup"), copies=2)
    assert extra.shape == (20, 32, 32) and extra.dtype == np.uint8 and extra_y.shape == (20, 3)
    lo, hi = np.minimum(y, y[::-1]), np.maximum(y, y[::-1])  # mixed with the reversed batch
    assert ((extra_y[:10] >= lo - 1e-6) & (extra_y[:10] <= hi + 1e-6)).all()
    model = ResNet18Baseline(
        epochs=1,
        batch_size=4,
        input_size=32,
        latent_augment="cutout",
        augment_vae=tmp_path / "vae",
        progress=False,
        calibrate=False,
    )
    grown = model._with_decoded_latents(ArrayImageDataset(images, y))
    assert len(grown) == 20 and np.array_equal(grown.images[:10].numpy(), images)
    model.fit({"image": images}, y)
    assert np.isfinite(model.predict({"image": images})).all()
    with pytest.raises(ValueError, match="augment_vae"):
        ResNet18Baseline(latent_augment="mixup").fit({"image": images}, y)


def test_vae_training_takes_latent_augmentation(tmp_path):
    from synthoct_bench.generators.vae.small import SmallConvVAEConfig
    from synthoct_bench.generators.vae.training import (
        PhantomImageSource,
        VAETrainingConfig,
        train_vae,
    )

    data, val = PhantomImageSource(12, 32), PhantomImageSource(4, 32, offset=12)
    small = SmallConvVAEConfig(image_size=32, latent_dim=8)

    def losses(aug, folder):
        cfg = VAETrainingConfig(arch="small", objective="vae", batch_size=4, max_steps=6,
                                log_every=1, latent_augment=aug)  # fmt: skip
        out = train_vae(data, tmp_path / folder, cfg, small, val_source=val, progress=False)
        return [r["loss"] for r in out["history"]]

    plain, cut = losses(None, "plain"), losses("cutout", "cut")
    assert plain[0] != cut[0] and np.isfinite(cut).all()
    with pytest.raises(ValueError, match="cmixup pairs samples by their targets"):
        VAETrainingConfig(latent_augment="cmixup")
    with pytest.raises(ValueError, match="val_source"):
        cfg = VAETrainingConfig(arch="small", objective="vae", batch_size=4, max_steps=2,
                                latent_augment="adaptive")  # fmt: skip
        train_vae(data, tmp_path / "a", cfg, small, progress=False)
    with pytest.raises(ValueError, match="one z per image"):
        cfg = VAETrainingConfig(arch="small", objective="iwae", batch_size=4, max_steps=2,
                                latent_augment="gaussian")  # fmt: skip
        train_vae(data, tmp_path / "b", cfg, small, progress=False)
