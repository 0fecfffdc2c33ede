"""The paper's Method 1 and Method 2 find the dims a generator is known to use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthoct_bench.generators.metrics.latent_selection import (
    generator_decode_fn,
    method1_roundtrip_mse,
    method2_perturbation_mse,
    plot_selection,
    select_latent_dims,
    vae_decode_fn,
    vae_encode_fn,
)
from synthoct_bench.generators.vae import BetaVAE, BetaVAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


INFLUENTIAL = (40, 3, 77)  # strongest first
SCALES = {40: 3.0, 3: 2.0, 77: 1.2}


def toy_linear_pair(weak: float = 0.05):
    """decode: pixel d = scale_d * z_d, plus 32 pixels of per-subject nuisance;
    encode: the ridge inverse. Only SCALES' dims show strongly, so both methods
    must rank 40, 3, 77 first, in that order. (Elementwise on purpose: BLAS
    threads crawl on a busy 2-core box.)"""
    scales = np.full(128, weak)
    for d, s in SCALES.items():
        scales[d] = s

    def decode(z, ids):
        nuisance = 0.01 * np.sin(1.37 * np.asarray(ids)[:, None] + np.arange(32))
        return np.concatenate([z * scales, nuisance], axis=1)

    def encode(x):
        return x[:, :128] * scales / (scales**2 + 0.5)

    return decode, encode


def test_both_methods_rank_the_known_dims_first():
    decode, encode = toy_linear_pair()
    m1 = method1_roundtrip_mse(decode, encode, n=2000, batch_size=512)
    m2 = method2_perturbation_mse(decode, n=200, batch_size=200)
    assert tuple(np.argsort(m1)[:3]) == INFLUENTIAL
    assert tuple(np.argsort(-m2)[:3]) == INFLUENTIAL
    # Method 2's score is E[(z - z')^2] * s^2 / pixels = 2 s^2 / 160 for this decoder
    assert m2[40] == pytest.approx(2 * 9 / 160, rel=0.2)
    result = select_latent_dims(decode, encode, k=3, n_method1=2000, n_method2=200, batch_size=2000)
    assert result.agree and result.top_method1 == result.top_method2 == INFLUENTIAL
    text = result.summary()
    assert "agree" in text and "dim   40" in text
    # draws are keyed by (seed, row): the batch size does not change the answer
    again = method1_roundtrip_mse(decode, encode, n=2000, batch_size=333)
    np.testing.assert_allclose(m1, again, rtol=1e-12)


def test_disagreement_is_reported():
    decode, _ = toy_linear_pair()

    def lying_encoder(x):  # claims to recover dims 0, 1, 2 and nothing else
        return np.where(np.arange(128) < 3, 0.0, 5.0) * np.ones((len(x), 1))

    result = select_latent_dims(decode, lying_encoder, k=3, n_method1=100, n_method2=50)
    assert set(result.top_method1) == {0, 1, 2} and result.top_method2 == INFLUENTIAL
    assert result.agree is False and "DISAGREE" in result.summary()
    alone = select_latent_dims(decode, None, k=3, n_method2=50)
    assert alone.agree is None and alone.method1_ranking is None
    assert alone.to_dict()["top_method2"] == INFLUENTIAL


def test_method2_on_an_image_generator(tmp_path, toy_generator):
    decode = generator_decode_fn(toy_generator, seed=1)
    result = select_latent_dims(decode, None, k=2, n_method2=40, batch_size=40)
    assert set(result.top_method2) == {7, 2}
    # the same subject id gets the same speckle, so untouched dims score exactly 0
    assert np.count_nonzero(result.method2_mse) == 2
    plot_selection(result, tmp_path / "sel.png")
    assert (tmp_path / "sel.png").stat().st_size > 1000


def test_vae_adapters_run_both_methods():
    torch.manual_seed(0)
    vae = BetaVAE(BetaVAEConfig(image_size=32, encoder_width=8, decoder_widths=(8, 8, 8, 8, 8, 8)))
    result = select_latent_dims(
        vae_decode_fn(vae), vae_encode_fn(vae), k=3, n_method1=16, n_method2=2, batch_size=16
    )
    assert result.method1_mse.shape == result.method2_mse.shape == (128,)
    assert np.all(np.isfinite(result.method1_mse)) and np.all(result.method2_mse >= 0)
    with pytest.raises(ValueError, match="k must be"):
        select_latent_dims(vae_decode_fn(vae), k=0)
