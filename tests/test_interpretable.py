"""The interpretable baseline of Soelistyo & Lowe 2024: RigL, the post-training pruning,
expression sizes, the symbolic regression and the three ``tcvae-*`` stages end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthoct_bench.baselines.interpretable import (  # noqa: E402
    HeadConfig,
    MishHead,
    TCVAEHeadBaseline,
    eta_coverage,
    latent_factor_information,
    train_head,
)
from synthoct_bench.baselines.rigl import (  # noqa: E402
    RigL,
    RigLConfig,
    active_inputs,
    erdos_renyi_densities,
    expression_size,
    prune_leaf_and_bias_weights,
)
from synthoct_bench.baselines.symbolic import Expression, SymbolicRegressor  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_erdos_renyi_densities_keep_the_budget_and_cap_dense_layers():
    shapes = [(16, 32), (16, 16), (16, 16), (3, 16)]
    sizes = np.array([o * i for o, i in shapes])
    d = erdos_renyi_densities(shapes, 0.951)
    assert np.isclose((d * sizes).sum(), 0.049 * sizes.sum())
    raw = np.array([(o + i) / (o * i) for o, i in shapes])
    assert np.allclose(d / raw, d[0] / raw[0])  # one scale for every layer below 1
    # at low sparsity the small last layer would exceed 1: it is made dense
    d = erdos_renyi_densities(shapes, 0.5)
    assert d[-1] == 1.0 and (d[:-1] < 1).all()
    assert np.isclose((d * sizes).sum(), 0.5 * sizes.sum())


def _data(n=512, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.stack([x[:, 0] - 0.5 * x[:, 1] ** 2, np.sin(x[:, 2]), x[:, 3] * x[:, 0]], 1)
    return x, y.astype(np.float32)


def test_rigl_keeps_every_layer_density_exactly_while_the_topology_moves():
    torch.manual_seed(0)
    head = MishHead(HeadConfig(8, (16, 16), 3))
    x, y = torch.from_numpy(_data()[0]), torch.from_numpy(_data()[1])
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    rigl = RigL(head.linears, RigLConfig(0.8, delta_t=5, update_fraction=0.5), 200, 20)
    first = None
    for step in range(200):
        idx = torch.arange(step * 32, step * 32 + 32) % len(x)
        loss = torch.nn.functional.mse_loss(head(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        if not rigl.step(step, opt):
            opt.step()
            rigl.apply_masks()
        if rigl.masks is not None:
            if first is None:
                first = [m.clone() for m in rigl.masks]
            for layer, mask, n in zip(rigl.layers, rigl.masks, rigl.n_active, strict=True):
                assert int(mask.sum()) == n
                assert bool((layer.weight[~mask] == 0).all())
    assert rigl.updates == len(range(5, rigl.end_step, 5))
    assert any(not torch.equal(a, b) for a, b in zip(first, rigl.masks, strict=True))
    total = sum(layer.weight.numel() for layer in rigl.layers)
    assert abs(sum(rigl.n_active) / total - 0.2) < 0.01


def test_pruning_leaf_and_bias_weights_leaves_the_outputs_unchanged():
    torch.manual_seed(1)
    head = MishHead(HeadConfig(6, (5, 4), 2))
    w0, w1, w2 = (layer.weight.data for layer in head.linears)
    w0[2] = 0.0  # hidden neuron 2 of layer 1 has no inputs: its outgoing weights are bias weights
    w1[:, 4] = 0.0  # hidden neuron 4 of layer 1 has no outputs: its inputs are leaf weights
    w2[:, 1] = 0.0  # neuron 1 of layer 2 feeds nothing: a leaf, cascading to nothing upstream
    x = torch.randn(64, 6)
    before = head(x).detach().clone()
    removed = prune_leaf_and_bias_weights(head.linears)
    after = head(x).detach()
    assert torch.allclose(before, after, atol=1e-6)
    # leaves: w1[1] (4 left after w1[:, 4] = 0), then w0[4] (6); bias weights: w1[:, 2] less row 1
    assert removed["leaf_weights"] == 4 + 6 and removed["bias_weights"] == 3
    assert bool((w0[4] == 0).all()) and bool((w1[1] == 0).all()) and bool((w1[:, 2] == 0).all())


def test_expression_size_counts_soelistyo_lowe_nodes():
    dense = MishHead(HeadConfig(32, (16, 16, 16), 3))
    # eq. 5 of Soelistyo & Lowe 2024: n_I(4 n_{I-1} + 1) + sum 8 n_{i+1}(n_i + 1)
    assert expression_size(dense.linears) == 3 * 65 + 8 * 16 * 33 + 2 * 8 * 16 * 17 == 8771
    tiny = MishHead(HeadConfig(3, (2,), 1))
    with torch.no_grad():
        tiny.linears[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]]))
        tiny.linears[1].weight.copy_(torch.tensor([[0.5, 0.0]]))
    # hidden: 8(2 + 1) + 8(1 + 1); output: 4·1 + 1
    assert expression_size(tiny.linears) == 24 + 16 + 5
    prune_leaf_and_bias_weights(tiny.linears)  # hidden neuron 1 is a leaf now
    assert expression_size(tiny.linears) == 24 + 5
    assert active_inputs(tiny.linears) == (0, 1)


def test_expression_complexity_size_and_printing():
    e = Expression((("op", "+"), ("op", "sin"), ("x", 0), ("op", "*"), ("c", 2.0), ("x", 1)))
    assert (e.size, e.complexity, e.features) == (6, 8, (0, 1))
    assert e.to_string(["z3", "z7"]) == "(sin(z3) + 2·z7)"
    x = np.array([[0.5, 1.0], [1.0, -1.0]])
    assert np.allclose(e.evaluate(x), np.sin(x[:, 0]) + 2 * x[:, 1])
    div = Expression((("op", "/"), ("x", 0), ("op", "*"), ("x", 1), ("x", 0)))
    assert div.to_string() == "x0/(x1·x0)"


def test_symbolic_regression_recovers_a_known_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 3))
    y = 1.5 * x[:, 0] - x[:, 1] ** 2  # x2 is a distractor
    reg = SymbolicRegressor(population_size=200, generations=30, seed=0).fit(x, y)
    pred = reg.predict(x)
    assert 1 - np.mean((pred - y) ** 2) / np.var(y) > 0.9999
    assert reg.features_ == (0, 1) and reg.complexity_ <= 20
    # the front is ordered by complexity with losses falling
    losses = [e.loss for e in reg.pareto_front_]
    assert losses == sorted(losses, reverse=True)
    same = SymbolicRegressor(population_size=200, generations=30, seed=0).fit(x, y)
    assert same.formula_ == reg.formula_


def test_symbolic_regression_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown operators"):
        SymbolicRegressor(operators=("+", "tan")).fit(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        SymbolicRegressor().fit(np.full((4, 1), np.nan), np.zeros(4))
    with pytest.raises(ValueError, match="not fitted"):
        SymbolicRegressor().predict(np.zeros((4, 1)))


def test_train_head_with_rigl_reaches_the_target_sparsity():
    x, y = _data(256)
    torch.manual_seed(0)
    head = MishHead(HeadConfig(8, (16, 16, 16), 3))
    log = train_head(head, x, y, epochs=12, batch_size=32, rigl=RigLConfig(delta_t=10),
                     warmup_epochs=3)  # fmt: skip
    assert log["topology_updates"] > 0
    live = sum(head.live_weights())
    total = sum(layer.weight.numel() for layer in head.linears)
    assert live <= 0.049 * total + len(head.linears) / 2  # each layer rounds to whole weights


def test_latent_factor_information_finds_the_latent_that_reads_a_factor():
    from synthoct_bench.generators import PhantomGenerator
    from synthoct_bench.latent import sample_z

    gen = PhantomGenerator(image_size=32)
    z = sample_z(np.arange(2000), 0)
    pos = gen.parameters(z)["vertical_position"]
    rng = np.random.default_rng(0)
    features = np.stack([rng.normal(size=2000), pos + 0.01 * rng.normal(size=2000)], 1)
    info = latent_factor_information(features, z, gen)
    assert info["top_factor"]["z1"]["factor"] == "vertical_position"
    assert info["eta_factor_latents"]["vertical_position"][0] == 1
    # coverage on a hand-made MI table: latents 0-3, factors in η order plus one more
    made = {
        "factors": ["vertical_position", "tilt", "luminance", "speckle"],
        "normalised_mi": [[0.9, 0.0, 0.0, 0.1], [0.1, 0.5, 0.0, 0.0],
                          [0.0, 0.4, 0.1, 0.0], [0.0, 0.0, 0.6, 0.2]],
    }  # fmt: skip
    cover = eta_coverage(made, [0, 2], top=1)
    assert cover["vertical_position"] == {"latent": "z0", "rank": 1, "share_of_best": 1.0,
                                          "in_top": True}  # fmt: skip
    assert cover["tilt"]["latent"] == "z2" and cover["tilt"]["rank"] == 2
    assert abs(cover["tilt"]["share_of_best"] - 0.8) < 1e-12 and not cover["covers_all"]
    assert eta_coverage(made, [0, 1, 3], top=1)["covers_all"]
    assert eta_coverage(made, [0, 2, 3], top=2)["covers_all"]


@pytest.mark.slow
def test_tcvae_stages_run_score_and_report(tiny_dataset, tmp_path):
    from synthoct_bench.baselines.run import report_path, run_baseline
    from synthoct_bench.scoring import score

    params = dict(image_size=32, vae_steps=12, vae_batch_size=8, head_epochs=6, warmup_epochs=2,
                  delta_t=3, population_size=30, generations=3, progress=False)  # fmt: skip
    reports = {}
    for name in ("tcvae-dense", "tcvae-sparse", "tcvae-symbolic"):
        out = tmp_path / f"{name}.parquet"
        ids, pred = run_baseline(name, tiny_dataset, 9, "test", out, params=params,
                                 workdir=tmp_path / "work")  # fmt: skip
        assert pred.shape == (ids.size, 3) and np.isfinite(pred).all()
        report = score(out, tiny_dataset, 9, "test", n_bootstrap=50)
        assert np.isfinite(report.r2.value).all()
        reports[name] = json.loads(report_path(out).read_text())
    # one VAE for the three stages, the sparse head shared by sparse and symbolic
    assert len(list((tmp_path / "work" / "heads").iterdir())) == 1
    sparse = reports["tcvae-sparse"]["head"]
    assert sparse["live_fraction"] < 0.1 and sparse["expression_size"] < 8771
    symbolic = reports["tcvae-symbolic"]
    assert [f["eta"] for f in symbolic["symbolic"]] == ["Ka", "Imax", "IC50"]
    assert all(f["complexity"] <= 20 for f in symbolic["symbolic"])
    assert set(symbolic["factors"]["factors"]) >= {"vertical_position", "tilt", "luminance"}
    assert set(symbolic["factors"]["eta_coverage"]) >= {"vertical_position", "covers_all"}


def test_tcvae_baseline_checks_its_parameters():
    with pytest.raises(ValueError, match="stage must be one of"):
        TCVAEHeadBaseline(stage="lasso").fit(
            {"image": np.zeros((4, 32, 32), np.uint8)}, np.zeros((4, 3))
        )
