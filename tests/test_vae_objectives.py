"""Each VAE objective pinned to a closed form or an independent computation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch.distributions import Normal

from synthoct_bench.generators.vae import kl_divergence
from synthoct_bench.generators.vae.objectives import (
    OBJECTIVES,
    BetaConfig,
    InfoVAEConfig,
    IWAEConfig,
    LogCoshConfig,
    TCVAEConfig,
    VanillaVAEConfig,
    get_objective,
    kernel_matrix,
    log_cosh,
    log_importance_weights,
    mmd,
    objective_config,
    tc_decomposition,
)
from synthoct_bench.generators.vae.perceptual import VGGPerceptualLoss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D64 = torch.float64


def batch(b: int = 6, d: int = 4, size: int = 8, k: int | None = None, seed: int = 0):
    """x, recon, μ, log σ², z (and ε) with gradients on recon, μ and log σ²."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, size, size, generator=g, dtype=D64)
    shape = (b, 1, size, size) if k is None else (k, b, 1, size, size)
    recon = torch.rand(shape, generator=g, dtype=D64).requires_grad_()
    mu = torch.randn(b, d, generator=g, dtype=D64).requires_grad_()
    logvar = (0.3 * torch.randn(b, d, generator=g, dtype=D64)).requires_grad_()
    eps = torch.randn((b, d) if k is None else (k, b, d), generator=g, dtype=D64)
    z = mu + torch.exp(0.5 * logvar) * eps
    return x, recon, mu, logvar, z


# ---- registry and configs -------------------------------------------------------------------


def test_registry_configs_and_seed_constants():
    assert {"beta", "tcvae", "iwae", "infovae", "logcosh", "vae"} == set(OBJECTIVES)
    for name, cls in OBJECTIVES.items():
        cfg = cls.config_class()
        assert type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg, name
        assert objective_config(name, cfg.to_dict()) == cfg
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.kl_weight = 2.0  # type: ignore[misc]
        with pytest.raises(ValueError, match="unknown"):
            type(cfg).from_dict({"nonsense": 1})
    # the papers' and seeds' constants
    beta = BetaConfig()
    assert (beta.alpha, beta.beta, beta.perceptual_weights) == (400 / 3, 0.0376, (25 / 12, 1 / 3))
    info = InfoVAEConfig()
    assert (info.alpha, info.mmd_weight, info.grad_clip) == (-9, 110, 0.8)
    assert info.recon_scale == 1.0  # a likelihood needs no weight; the thesis's 10.5:
    assert InfoVAEConfig(likelihood="korkic2021").recon_scale == 10.5
    assert info.kernel == "imq" and info.kl_weight is None
    assert IWAEConfig().k == 5 and LogCoshConfig().a == 10 and LogCoshConfig().beta == 1
    # every objective but the paper's states a likelihood, calibrated by default
    for cls in (VanillaVAEConfig, TCVAEConfig, IWAEConfig, InfoVAEConfig):
        assert (cls().likelihood, cls().sigma) == ("gaussian", None), cls
    assert LogCoshConfig().likelihood == "sech"
    tc = TCVAEConfig()
    assert (tc.alpha, tc.beta, tc.gamma, tc.estimator) == (1, 6, 1, "mss")
    assert get_objective("infovae").grad_clip == 0.8 and get_objective("tcvae").grad_clip is None
    assert get_objective("iwae", {"k": 3}).num_samples == 3
    with pytest.raises(ValueError, match="unknown objective"):
        get_objective("wae")
    with pytest.raises(ValueError, match="takes a TCVAEConfig"):
        get_objective("tcvae", IWAEConfig())
    with pytest.raises(ValueError, match="likelihood must be one of gaussian, korkic2021"):
        VanillaVAEConfig(likelihood="bernoulli")
    with pytest.raises(ValueError, match="likelihood must be one of sech, korkic2021"):
        LogCoshConfig(likelihood="gaussian")
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="sigma must be > 0"):
            TCVAEConfig(sigma=bad)
    with pytest.raises(ValueError, match="recon_weight must be > 0"):
        IWAEConfig(recon_weight=0.0)
    with pytest.raises(ValueError, match="k must be"):
        IWAEConfig(k=0)


# ---- the paper's β objective and the plain VAE ----------------------------------------------


def test_kl_is_the_closed_form_gaussian_kl():
    _, _, mu, logvar, _ = batch()
    q = Normal(mu, torch.exp(0.5 * logvar))
    expected = torch.distributions.kl_divergence(q, Normal(0.0, 1.0)).sum(-1).mean()
    assert torch.allclose(kl_divergence(mu, logvar), expected)


def test_beta_objective_is_the_papers_weighted_sum():
    x, recon, mu, logvar, _ = batch(size=16)
    vgg = VGGPerceptualLoss(("relu1_2", "relu3_3"), weights="random").double()
    obj = get_objective("beta", perceptual_loss=vgg)
    out = obj(x, recon, mu, logvar, anneal=0.25)
    p = vgg(recon, x)
    mse = ((recon - x) ** 2).mean()
    expected = (
        400 / 3 * mse + 25 / 12 * p[0] + 1 / 3 * p[1] + 0.25 * 0.0376 * kl_divergence(mu, logvar)
    )
    assert torch.allclose(out.loss, expected)
    assert set(out.terms) == {"mse", "perceptual_relu1_2", "perceptual_relu3_3", "kl"}
    # perceptual terms off: no VGG at all
    plain = get_objective("beta", {"perceptual": False, "beta": 2.0})
    assert plain.perceptual is None and not list(plain.buffers())
    out = plain(x, recon, mu, logvar)
    assert torch.allclose(out.loss, 400 / 3 * mse + 2.0 * kl_divergence(mu, logvar))
    assert set(out.terms) == {"mse", "kl"}


def test_vanilla_vae_is_the_negative_elbo_in_nats():
    """The default: a Gaussian NLL summed over pixels plus the KL at weight 1 per image,
    with σ fixed, or learned as the batch's RMSE (the optimal σ of Rybkin et al. 2021)."""
    x, recon, mu, logvar, _ = batch()
    kl = kl_divergence(mu, logvar)
    fixed = get_objective("vae", {"sigma": 0.2})(x, recon, mu, logvar)
    nll = -Normal(recon, 0.2).log_prob(x).flatten(1).sum(1).mean()
    assert torch.allclose(fixed.loss, nll + kl)
    assert float(fixed.terms["sigma"]) == pytest.approx(0.2)
    learned = get_objective("vae")(x, recon, mu, logvar)
    rmse = float(((recon - x) ** 2).mean().sqrt())
    nll = -Normal(recon, rmse).log_prob(x).flatten(1).sum(1).mean()
    assert torch.allclose(learned.loss, nll + kl)
    assert float(learned.terms["sigma"]) == pytest.approx(rmse)
    # the learned σ is the optimum: any other σ gives a higher NLL
    for other in (0.8 * rmse, 1.25 * rmse):
        assert float(get_objective("vae", {"sigma": other})(x, recon, mu, logvar).loss) > float(
            learned.loss
        )
    # a perfect reconstruction does not divide by zero: σ has a floor
    assert torch.isfinite(get_objective("vae")(x, x.clone(), mu, logvar).loss)


def test_korkic2021_convention_is_pixel_mean_and_kl_by_batch_over_dataset():
    x, recon, mu, logvar, _ = batch()
    literal = {"likelihood": "korkic2021"}
    out = get_objective("vae", literal)(x, recon, mu, logvar, dataset_size=60)
    expected = ((recon - x) ** 2).mean() + 6 / 60 * kl_divergence(mu, logvar)
    assert torch.allclose(out.loss, expected)
    fixed = get_objective("vae", {**literal, "kl_weight": 0.5})(x, recon, mu, logvar)
    assert torch.allclose(fixed.loss, ((recon - x) ** 2).mean() + 0.5 * kl_divergence(mu, logvar))
    with pytest.raises(ValueError, match="dataset_size"):
        get_objective("vae", literal)(x, recon, mu, logvar)


# ---- IWAE -----------------------------------------------------------------------------------


def independent_log_w(x, recon, mu, logvar, z, sigma):
    """log p(x|z_k) + log p(z_k) − log q(z_k|x) for a Gaussian decoder of SD sigma."""
    log_lik = Normal(recon, sigma).log_prob(x[None]).flatten(2).sum(-1)
    q = Normal(mu[None], torch.exp(0.5 * logvar[None]))
    log_ratio = Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    return log_lik + log_ratio


def test_iwae_with_one_sample_is_the_elbo():
    x, recon, mu, logvar, z = batch(k=1)
    obj = get_objective("iwae", {"k": 1, "sigma": 0.3})
    out = obj(x, recon, mu, logvar, z)
    # the single-sample ELBO: reconstruction + log q(z|x) − log p(z) at the same z
    elbo = independent_log_w(x, recon, mu, logvar, z, 0.3)[0]
    assert torch.allclose(out.loss, -elbo.mean())
    # and, averaged over z, the analytic-KL objective of the plain VAE
    n = 20000
    g = torch.Generator().manual_seed(1)
    mu1, lv1 = mu[:1].detach().expand(n, -1), logvar[:1].detach().expand(n, -1)
    zs = mu1 + torch.exp(0.5 * lv1) * torch.randn(n, mu.shape[1], generator=g, dtype=D64)
    x1, r1 = x[:1].expand(n, -1, -1, -1), recon[0, :1].detach().expand(n, -1, -1, -1)
    mc = obj(x1, r1[None], mu1, lv1, zs[None]).loss
    vae = get_objective("vae", {"sigma": 0.3})(x1, r1, mu1, lv1).loss
    assert float(mc) == pytest.approx(float(vae), abs=0.05)


def test_iwae_is_exact_with_the_true_posterior_and_tightens_with_k():
    """p(z) = N(0, 1), p(x|z) = N(z, s²): log p(x) = log N(x; 0, 1 + s²), and with the
    exact posterior every importance weight equals p(x), for any k."""
    s2, b = 0.5, 4000
    g = torch.Generator().manual_seed(2)
    x = torch.randn(b, generator=g, dtype=D64) * math.sqrt(1 + s2)
    log_px = Normal(0.0, math.sqrt(1 + s2)).log_prob(x).mean()
    cfg = {"sigma": math.sqrt(s2)}  # the loss is the whole NLL, constant included

    def bound(k, mu, logvar):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(k, b, 1, generator=g, dtype=D64)
        obj = get_objective("iwae", {"k": k, **cfg})
        return -obj(x.view(b, 1, 1, 1), z.view(k, b, 1, 1, 1), mu, logvar, z).loss

    post_mu = (x / (1 + s2))[:, None]
    post_lv = torch.full((b, 1), math.log(s2 / (1 + s2)), dtype=D64)
    for k in (1, 3):
        assert torch.allclose(bound(k, post_mu, post_lv), log_px, atol=1e-10)
    # with the prior as proposal the bound rises towards log p(x) as k grows
    prior_mu, prior_lv = torch.zeros(b, 1, dtype=D64), torch.zeros(b, 1, dtype=D64)
    values = [float(bound(k, prior_mu, prior_lv)) for k in (1, 10, 100)]
    assert values[0] < values[1] < values[2] < float(log_px) + 0.01
    assert values[2] == pytest.approx(float(log_px), abs=0.05)


def test_iwae_gradient_uses_detached_normalised_weights():
    x, recon, mu, logvar, z = batch(k=5)
    obj = get_objective("iwae", {"sigma": 0.3})
    loss = obj(x, recon, mu, logvar, z).loss
    grads = torch.autograd.grad(loss, (recon, mu, logvar), retain_graph=True)
    log_w = independent_log_w(x, recon, mu, logvar, z, 0.3)
    surrogate = -(torch.softmax(log_w, 0).detach() * log_w).sum(0).mean()
    expected = torch.autograd.grad(surrogate, (recon, mu, logvar), retain_graph=True)
    for a, e in zip(grads, expected, strict=True):
        assert torch.allclose(a, e, atol=1e-12)
    # the zoo's version, weights not detached, is a different (wrong) gradient
    wrong = -(torch.softmax(log_w, 0) * log_w).sum(0).mean()
    assert not torch.allclose(torch.autograd.grad(wrong, mu)[0], grads[1], atol=1e-6)
    # Jensen: the k-sample bound is at least the mean single-sample ELBO
    assert float(loss) <= float(-log_w.mean()) + 1e-12


# ---- β-TCVAE --------------------------------------------------------------------------------


def population(n: int, d: int, s2: float, rho: float = 0.0, seed: int = 0):
    """Posteriors N(μ_n, (1 − s²) I) with μ_n ~ N(0, s² R), R an equicorrelation matrix:
    the aggregate posterior is N(0, s² R + (1 − s²) I)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=g, dtype=D64)
    if rho:
        r = torch.full((d, d), rho, dtype=D64).fill_diagonal_(1.0)
        u = u @ torch.linalg.cholesky(r).T
    mu = math.sqrt(s2) * u
    logvar = torch.full((n, d), math.log(1 - s2), dtype=D64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, d, generator=g, dtype=D64)
    return z, mu, logvar


def test_tc_terms_sum_to_the_monte_carlo_kl():
    z, mu, logvar = population(64, 5, 0.7, 0.3)
    mc_kl = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z) - Normal(0.0, 1.0).log_prob(z)
    for estimator in ("mss", "mws"):
        parts = tc_decomposition(z, mu, logvar, 1000, estimator)
        total = parts["mi"] + parts["tc"] + parts["dwkl"]
        assert torch.allclose(total, mc_kl.sum(-1).mean())


def test_tc_near_zero_for_a_factorised_aggregate_and_closed_form_when_correlated():
    z, mu, logvar = population(2000, 4, 0.5)
    parts = tc_decomposition(z, mu, logvar, dataset_size=2000)
    assert abs(float(parts["tc"])) < 0.02 and abs(float(parts["dwkl"])) < 0.02
    assert float(parts["mi"]) > 1.0  # the index is informative about z
    # correlated means: the aggregate is N(0, Σ), TC = −½ log(1 − ρ²) with ρ = s²·ρ_means
    z, mu, logvar = population(2000, 2, 0.9, 0.9, seed=1)
    tc = float(tc_decomposition(z, mu, logvar, dataset_size=2000)["tc"])
    assert tc == pytest.approx(-0.5 * math.log(1 - 0.81**2), abs=0.05)


def test_stratified_weights_and_small_batches():
    w = log_importance_weights(4, 10).exp()
    assert torch.allclose(w.diagonal(), torch.full((4,), 0.1))
    assert torch.allclose(w[0, 1:], torch.full((3,), 0.9 / 3))
    assert torch.allclose(w.sum(1), torch.ones(4))
    assert torch.allclose(log_importance_weights(5, 5).exp(), torch.full((5, 5), 0.2))
    assert torch.allclose(log_importance_weights(4, 10, "mws").exp(), torch.full((4, 4), 1 / 40))
    with pytest.raises(ValueError, match="smaller than the batch"):
        log_importance_weights(8, 4)
    # MSS on batches of a larger dataset: close to the full-data value, closer with size
    z, mu, logvar = population(4000, 4, 0.5, seed=3)
    perm = torch.randperm(4000, generator=torch.Generator().manual_seed(0))

    def mean_tc(b):
        return sum(
            float(tc_decomposition(z[i], mu[i], logvar[i], 4000)["tc"])
            for i in perm.split(b)[: 4000 // b]
        ) / (4000 // b)

    small, large = mean_tc(16), mean_tc(256)
    assert abs(large) < abs(small) < 0.3 and abs(large) < 0.03


def test_tcvae_objective():
    x, recon, mu, logvar, z = batch(b=8)
    obj = get_objective("tcvae", {"alpha": 2.0, "beta": 5.0, "gamma": 0.5, "sigma": 0.4})
    out = obj(x, recon, mu, logvar, z, dataset_size=100, anneal=0.5)
    p = tc_decomposition(z, mu, logvar, 100)
    rec = -Normal(recon, 0.4).log_prob(x).flatten(1).sum(1).mean()  # nats, as the KL parts
    expected = rec + 0.5 * (2.0 * p["mi"] + 5.0 * p["tc"] + 0.5 * p["dwkl"])
    assert torch.allclose(out.loss, expected)
    assert {"mi", "tc", "dwkl", "recon", "mse", "kl"} <= set(out.terms)
    with pytest.raises(ValueError, match="dataset_size"):
        obj(x, recon, mu, logvar, z)
    with pytest.raises(ValueError, match="latent samples"):
        obj(x, recon, mu, logvar, dataset_size=100)


# ---- InfoVAE and the MMD --------------------------------------------------------------------


def test_mmd_closed_forms_and_independent_loop():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, generator=g, dtype=D64)
    y = torch.randn(6, 3, generator=g, dtype=D64) + 0.5
    for unbiased in (True, False):
        assert float(mmd(x, x, unbiased=unbiased)) == 0.0
        assert float(mmd(x, y, unbiased=unbiased)) > 0
    # inverse multiquadric kernel: C / (C + r²)
    assert float(kernel_matrix(x[:1], x[:1], "imq", 6.0)) == 1.0
    r2 = float(((x[0] - y[0]) ** 2).sum())
    assert float(kernel_matrix(x[:1], y[:1], "imq", 6.0)) == pytest.approx(6 / (6 + r2))

    def k(a, b):
        return 6.0 / (6.0 + float(((a - b) ** 2).sum()))

    n = 6
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    u_stat = sum(k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i]) for i, j in pairs)
    assert float(mmd(x, y)) == pytest.approx(u_stat / (n * (n - 1)))
    v_stat = sum(
        k(x[i], x[j]) + k(y[i], y[j]) - 2 * k(x[i], y[j]) for i in range(n) for j in range(n)
    )
    assert float(mmd(x, y, unbiased=False)) == pytest.approx(v_stat / n**2)
    # unequal sizes: within-sample sums over i ≠ j, the full cross mean
    y5 = y[:5]
    sxx = sum(k(x[i], x[j]) for i, j in pairs) / 30
    syy = sum(k(y5[i], y5[j]) for i in range(5) for j in range(5) if i != j) / 20
    sxy = sum(k(x[i], y5[j]) for i in range(6) for j in range(5)) / 30
    assert float(mmd(x, y5)) == pytest.approx(sxx + syy - 2 * sxy)


def test_unbiased_mmd_averages_to_zero_on_one_distribution():
    g = torch.Generator().manual_seed(5)
    draws = torch.randn(400, 2, 16, 4, generator=g, dtype=D64)
    unbiased = torch.stack([mmd(a, b) for a, b in draws])
    biased = torch.stack([mmd(a, b, unbiased=False) for a, b in draws])
    assert abs(float(unbiased.mean())) < 3 * float(unbiased.std()) / 20
    assert float(biased.mean()) > 10 * float(unbiased.std()) / 20


def test_infovae_objective_uses_korkic_2021_weights():
    x, recon, mu, logvar, z = batch(b=8)
    prior = torch.randn(z.shape, generator=torch.Generator().manual_seed(7)).to(z)
    mmd2 = mmd(z, prior, kernel="imq", scale=2.0 * 4)
    kl = kl_divergence(mu, logvar)
    # as the thesis trained it: 10.5 × pixel-mean MSE, the KL × batch/N
    obj = get_objective("infovae", {"likelihood": "korkic2021"})
    out = obj(x, recon, mu, logvar, z, dataset_size=80, generator=torch.Generator().manual_seed(7))
    rec = ((recon - x) ** 2).mean()
    expected = 10.5 * rec + (1 + 9) * (8 / 80) * kl + (-9 + 110 - 1) * mmd2
    assert torch.allclose(out.loss, expected)
    assert torch.allclose(out.terms["mmd"], mmd2)
    # by default: Zhao et al.'s objective, the NLL in nats and the KL at (1 − α) = 10
    obj = get_objective("infovae", {"sigma": 0.25})
    out = obj(x, recon, mu, logvar, z, dataset_size=80, generator=torch.Generator().manual_seed(7))
    nll = -Normal(recon, 0.25).log_prob(x).flatten(1).sum(1).mean()
    assert torch.allclose(out.loss, nll + 10 * kl + 100 * mmd2)


# ---- log-cosh -------------------------------------------------------------------------------


def test_logcosh_limits():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(4, 1, 8, 8, generator=g, dtype=D64)
    _, _, mu, logvar, _ = batch(b=4)
    obj = get_objective("logcosh", {"kl_weight": 0.0, "likelihood": "korkic2021"})
    small = x + 1e-3 * torch.randn(x.shape, generator=g, dtype=D64)
    # small errors: (1/a) log cosh(aΔ) ≈ aΔ²/2, i.e. (a/2)·MSE
    out = obj(x, small, mu, logvar)
    assert float(out.loss) == pytest.approx(5.0 * float(((small - x) ** 2).mean()), rel=1e-4)
    # large errors: ≈ |Δ| − log 2 / a
    far = x + 3.0
    assert float(obj(x, far, mu, logvar).loss) == pytest.approx(3.0 - math.log(2) / 10, rel=1e-9)
    # stable where cosh overflows, equal to the naive form where it does not
    u = torch.tensor([-800.0, -3.0, 0.0, 0.5, 800.0], dtype=D64)
    assert torch.isfinite(log_cosh(u)).all() and float(log_cosh(u)[-1]) == pytest.approx(
        800 - math.log(2)
    )
    assert torch.allclose(log_cosh(u[1:4]), torch.log(torch.cosh(u[1:4])))
    # the KL weight batch / N, times β
    obj = get_objective("logcosh", {"beta": 2.0, "likelihood": "korkic2021"})
    out = obj(x, small, mu, logvar, dataset_size=40)
    rec = (log_cosh(10 * (small - x)) / 10).mean()
    assert torch.allclose(out.loss, rec + 2.0 * (4 / 40) * kl_divergence(mu, logvar))


# ---- every objective: gradients and shapes --------------------------------------------------


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_gradients_flow_and_terms_are_scalars(name):
    cfg = {"perceptual": False} if name == "beta" else None
    obj = get_objective(name, cfg)
    k = obj.num_samples if name == "iwae" else None
    x, recon, mu, logvar, z = batch(b=6, k=k)
    out = obj(x, recon, mu, logvar, z, dataset_size=60, generator=torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(v.ndim == 0 for v in out.terms.values())
    out.loss.backward()
    for t in (recon, mu, logvar):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    if k is None:  # one-sample objectives also accept a leading sample axis of 1
        again = obj(x, recon[None], mu, logvar, z[None], dataset_size=60,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
        assert torch.allclose(again.loss, out.loss)


def test_logcosh_sech_likelihood_is_a_normalised_density():
    """The default: the hyperbolic secant density (b/π)·sech(bΔ), b = π/(2σ), so the loss
    is a proper NLL in nats (it integrates to one) with variance σ²."""
    b = math.pi / (2 * 0.1)
    grid = torch.linspace(-3, 3, 600001, dtype=D64)
    density = b / math.pi / torch.cosh(b * grid)
    dx = float(grid[1] - grid[0])
    assert float(density.sum()) * dx == pytest.approx(1.0, abs=1e-6)
    assert float((density * grid**2).sum()) * dx == pytest.approx(0.01, rel=1e-4)
    g = torch.Generator().manual_seed(8)
    x = torch.rand(4, 1, 8, 8, generator=g, dtype=D64)
    recon = x + 0.05 * torch.randn(x.shape, generator=g, dtype=D64)
    _, _, mu, logvar, _ = batch(b=4)
    out = get_objective("logcosh", {"sigma": 0.1})(x, recon, mu, logvar)
    nll = -torch.log(b / math.pi / torch.cosh(b * (recon - x))).flatten(1).sum(1).mean()
    assert torch.allclose(out.loss, nll + kl_divergence(mu, logvar))
