"""The conditioning check tells recoverable latent dims from absent ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthoct_bench.generators.metrics.conditioning import (
    conditioning_check,
    fit_linear_probe,
    plot_conditioning,
)
from synthoct_bench.latent import sample_z


def oracle_encoder(images):
    """Reads the band's depth and peak back out (what a good encoder would learn)."""
    x = images.astype(np.float64) / 255
    profile = x.mean(axis=2)
    rows = np.arange(16)
    weights = np.clip(profile - 0.12, 0, None)
    depth = (weights * rows).sum(1) / weights.sum(1)
    mu = np.zeros((len(images), 128))
    mu[:, 7] = np.arctanh(np.clip((depth - 8) / 2.5, -0.99, 0.99)) * 2
    mu[:, 2] = np.arctanh(np.clip((profile.max(1) - 0.6) / 0.2, -0.99, 0.99)) * 2
    return mu


def test_oracle_encoder_recovers_shown_dims_only(tmp_path, toy_generator):
    z, seeds = sample_z(np.arange(300), seed=1), np.arange(300)
    result, mu = conditioning_check(
        toy_generator, oracle_encoder, z, seeds, dims=[7, 2, 50], return_encoded=True
    )
    corr = dict(zip(result["dims"], result["corr"], strict=True))
    assert corr[7] > 0.9 and corr[2] > 0.9 and abs(corr[50]) < 0.2
    assert result["recovered"] == [True, True, False]
    mse = dict(zip(result["dims"], result["mse"], strict=True))
    shuffled = dict(zip(result["dims"], result["shuffled_mse"], strict=True))
    assert mse[7] < 0.5 * shuffled[7] and mse[50] == pytest.approx(shuffled[50], rel=0.3)
    assert max(result["shuffled_abs_corr_q95"]) < 0.2
    json.dumps(result)
    plot_conditioning(z, mu, result, tmp_path / "check.png")
    assert (tmp_path / "check.png").stat().st_size > 1000


def test_linear_probe_on_the_phantom_finds_the_eta_dims():
    from synthoct_bench.generators import PhantomGenerator

    gen = PhantomGenerator(image_size=64)
    z, seeds = sample_z(np.arange(900), seed=0), np.arange(900)
    probe = fit_linear_probe(gen.generate(z[:600], seeds[:600]), z[:600], size=16, ridge=10.0)
    result = conditioning_check(gen, probe, z[600:], seeds[600:], n_shuffles=50)
    assert result["dims"] == list(gen.eta_dims)
    assert all(result["recovered"]), result
    assert result["mean_corr"] > 0.3


def test_bad_input_is_named(toy_generator):
    z, seeds = sample_z(np.arange(10), seed=0), np.arange(10)
    with pytest.raises(ValueError, match="seeds"):
        conditioning_check(toy_generator, oracle_encoder, z, seeds[:5])
    with pytest.raises(ValueError, match="dims"):
        conditioning_check(toy_generator, oracle_encoder, z, seeds, dims=[200])
    with pytest.raises(ValueError, match="encoder returned"):
        conditioning_check(toy_generator, lambda im: np.zeros((10, 3)), z, seeds)
    with pytest.raises(ValueError, match="encoder must be"):
        conditioning_check(toy_generator, 42, z, seeds)
