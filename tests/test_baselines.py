"""Trivial baselines hit their expected R², and the ResNet18 baseline trains, saves, resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthoct_bench.baselines import (
    AverageBaseline,
    OracleBaseline,
    RandomBaseline,
    ResNet18Baseline,
)
from synthoct_bench.latent import add_noise, sample_z, select_eta


def r2(ref: np.ndarray, pred: np.ndarray) -> float:
    return 1.0 - ((ref - pred) ** 2).sum() / ((ref - ref.mean(axis=0)) ** 2).sum()


@pytest.fixture(scope="module")
def latents():
    ids = np.arange(20_000)
    eta = select_eta(sample_z(ids, seed=0))
    return ids, eta


@pytest.mark.parametrize("noise", [0, 1, 9, 49])
def test_oracle_reaches_theoretical_max(latents, noise):
    ids, eta = latents
    eta_hat = add_noise(eta, noise, ids, seed=0)
    X = {"subject_id": ids, "eta": eta}
    pred = OracleBaseline(noise).fit(X).predict(X)
    assert r2(eta_hat, pred) == pytest.approx(1 / (1 + noise), abs=0.02)


def test_average_and_random(latents):
    ids, eta = latents
    eta_hat = add_noise(eta, 9, ids, seed=0)
    X = {"subject_id": ids}
    average = AverageBaseline().fit(X, eta_hat).predict(X)
    assert r2(eta_hat, average) == pytest.approx(0.0, abs=0.01)
    random = RandomBaseline(seed=0).predict(X)
    assert random.shape == (ids.size, 3)
    assert r2(eta_hat, random) == pytest.approx(-1.0, abs=0.05)
    # keyed by subject: a subset of ids gets the same rows, another seed other draws
    np.testing.assert_array_equal(RandomBaseline(0).predict({"subject_id": ids[5:9]}), random[5:9])
    assert not np.allclose(RandomBaseline(1).predict({"subject_id": ids[:4]}), random[:4])


def test_average_learns_the_mean_of_y():
    gen = np.random.default_rng(0)
    y = gen.normal(loc=[1.5, -2.0, 0.25], size=(50, 3))
    model = AverageBaseline().fit({"subject_id": np.arange(50)}, y)
    np.testing.assert_allclose(model.mean_, y.mean(axis=0))
    assert np.abs(model.mean_).min() > 0.1
    pred = model.predict({"subject_id": np.arange(7)})
    assert pred.shape == (7, 3) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, np.tile(y.mean(axis=0), (7, 1)))
    with pytest.raises(ValueError, match="not fitted"):
        AverageBaseline().predict({"subject_id": np.arange(3)})
    with pytest.raises(ValueError, match="shape"):
        AverageBaseline().fit({"subject_id": np.arange(4)}, y)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="noise-free eta"):
        OracleBaseline(9).predict({"eta": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="noise"):
        OracleBaseline(-1).fit({"eta": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="integers"):
        RandomBaseline().predict({"subject_id": np.zeros(3)})
    with pytest.raises(ValueError, match="reads column 'eta'"):
        OracleBaseline(9).fit({"subject_id": np.arange(4)})
    with pytest.raises(TypeError, match="mapping"):
        RandomBaseline().predict(np.arange(3))


@pytest.mark.parametrize(
    ("make", "changes"),
    [
        (AverageBaseline, {}),
        (lambda: RandomBaseline(seed=3), {"seed": 7}),
        (lambda: OracleBaseline(9), {"noise": 49}),
        (lambda: ResNet18Baseline(epochs=3), {"input_size": 64, "lr": 1e-4, "device": "cpu"}),
    ],
)
def test_get_params_set_params_round_trip(make, changes):
    model = make()
    params = model.get_params()
    assert type(model)(**params).get_params() == params  # sklearn's clone
    assert model.set_params(**changes) is model
    assert model.get_params() == {**params, **changes}
    assert model.set_params(**params).get_params() == params
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(no_such_parameter=1)


def toy_images(n: int, seed: int = 0, size: int = 32):
    """Images whose mean brightness and a left/right gradient encode two of three targets."""
    gen = np.random.default_rng(seed)
    y = gen.normal(size=(n, 3))
    xs = np.linspace(-1, 1, size)
    base = 128 + 40 * np.tanh(y[:, 0])[:, None, None] + 40 * np.tanh(y[:, 1])[:, None, None] * xs
    noise = gen.normal(scale=5, size=(n, size, size))
    return np.clip(base + noise, 0, 255).astype(np.uint8), y.astype(np.float32)


def toy_data(n: int, seed: int = 0, size: int = 32):
    """(X, y): the toy images as the column mapping every baseline's fit/predict takes."""
    images, y = toy_images(n, seed, size)
    return {"subject_id": np.arange(n), "image": images}, y


def small_params(**kw) -> dict:
    base = dict(epochs=2, batch_size=16, input_size=32, progress=False, device="cpu", seed=0)
    base.update(kw)
    return base


def test_resnet_loss_falls_and_predicts():
    torch.set_num_threads(2)
    x, y = toy_data(96)
    xv, yv = toy_data(48, seed=1)
    model = ResNet18Baseline(**small_params(epochs=3)).fit(x, y, eval_set=(xv, yv))
    hist = model.history_
    assert len(hist) == 3
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    pred = model.predict(xv)
    assert pred.shape == (48, 3) and np.isfinite(pred).all()
    assert "val_loss" in hist[0]
    assert np.all(np.asarray(model.calibration_["slope"]) >= 0)


def test_a_diverging_resnet_stops_with_one_line_instead_of_predicting_nan():
    from synthoct_bench.checkpoint import TrainingDiverged

    x, y = toy_data(32)
    model = ResNet18Baseline(**small_params(epochs=3, lr=1e30, calibrate=False))
    with pytest.raises(TrainingDiverged, match=r"training diverged: .* at step \d+; lower --lr"):
        model.fit(x, y)


def test_checkpoint_resume_round_trip(tmp_path):
    torch.set_num_threads(2)
    x, y = toy_data(64)
    xv, yv = toy_data(32, seed=1)
    full = ResNet18Baseline(**small_params(calibrate=False), checkpoint_dir=tmp_path / "full")
    full.fit(x, y, eval_set=(xv, yv))

    # first run stops after one epoch, second resumes from its checkpoint
    cut = ResNet18Baseline(
        **small_params(epochs=1, calibrate=False), checkpoint_dir=tmp_path / "cut"
    )
    cut.fit(x, y, eval_set=(xv, yv))
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert state["epoch"] == 1 and state["batch"] == 0
    assert (tmp_path / "cut" / f"{state['checkpoint']}.optimizer.safetensors").is_file()
    resumed = ResNet18Baseline(**small_params(calibrate=False), checkpoint_dir=tmp_path / "cut")
    resumed.fit(x, y, eval_set=(xv, yv), resume=True)
    assert [h["epoch"] for h in resumed.history_] == [1, 2]
    for a, b in zip(full.history_, resumed.history_, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    np.testing.assert_allclose(full.predict(xv), resumed.predict(xv), rtol=1e-4, atol=1e-5)

    # save_pretrained / from_pretrained round trip, no pickle involved
    full.save_pretrained(tmp_path / "saved")
    again = ResNet18Baseline.from_pretrained(tmp_path / "saved", device="cpu")
    np.testing.assert_allclose(again.predict(xv), full.predict(xv), rtol=1e-6, atol=1e-6)


def test_save_pretrained_round_trip(tmp_path):
    torch.set_num_threads(2)
    x, y = toy_data(48)
    xv, yv = toy_data(32, seed=1)
    model = ResNet18Baseline(**small_params(epochs=1, lr=5e-4, seed=4), checkpoint_dir=tmp_path)
    model.fit(x, y, eval_set=(xv, yv))
    assert model.save_pretrained(tmp_path / "saved") == tmp_path / "saved"
    again = ResNet18Baseline.from_pretrained(tmp_path / "saved", device="cpu")
    np.testing.assert_array_equal(again.predict(xv), model.predict(xv))
    assert again.get_params() == {**model.get_params(), "checkpoint_dir": None}
    assert again.history_ == model.history_ and again.calibration_ == model.calibration_
    assert again.model_.config == model.model_.config
    # folders written before the network input side was called input_size still load
    for name in ("config.json", "training.json"):
        path = tmp_path / "saved" / name
        path.write_text(path.read_text().replace('"input_size"', '"image_size"'))
        assert '"image_size"' in path.read_text()
    old = ResNet18Baseline.from_pretrained(tmp_path / "saved", device="cpu")
    assert old.input_size == 32 and old.model_.config.input_size == 32
    np.testing.assert_array_equal(old.predict(xv), model.predict(xv))
    with pytest.raises(ValueError, match="not fitted"):
        ResNet18Baseline().predict(xv)


def test_resume_refuses_changed_settings(tmp_path):
    x, y = toy_data(32)
    ResNet18Baseline(**small_params(epochs=1), checkpoint_dir=tmp_path).fit(x, y, eval_set=(x, y))
    with pytest.raises(ValueError, match="batch_size"):
        ResNet18Baseline(**small_params(batch_size=8), checkpoint_dir=tmp_path).fit(
            x, y, eval_set=(x, y), resume=True
        )


def test_trivial_baselines_on_a_dataset(tiny_dataset):
    from synthoct_bench.baselines.run import predict_trivial
    from synthoct_bench.dataset import read_columns

    train = read_columns(tiny_dataset, "train", ["eta_ebe_s9"])["eta_ebe_s9"]
    test = read_columns(tiny_dataset, "test", ["subject_id", "eta"])
    ids, average = predict_trivial("average", tiny_dataset, 9, "test")
    np.testing.assert_array_equal(ids, test["subject_id"])
    mean = train.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(average, np.tile(mean, (ids.size, 1)))
    _, oracle = predict_trivial("oracle", tiny_dataset, 9, "test")
    np.testing.assert_allclose(oracle, test["eta"] / np.sqrt(10.0), rtol=1e-6)
    _, random = predict_trivial("random", tiny_dataset, 9, "test", seed=2)
    np.testing.assert_array_equal(random, RandomBaseline(2).predict(test))


def test_every_baseline_fits_the_same_columns(tiny_dataset):
    """One X, as read_columns returns it (PNG bytes and all), fits and predicts every baseline."""
    from synthoct_bench.dataset import read_columns

    columns = ["subject_id", "image", "eta"]
    X = read_columns(tiny_dataset, "train", columns)
    y = read_columns(tiny_dataset, "train", ["eta_ebe_s9"])["eta_ebe_s9"]
    X_test = read_columns(tiny_dataset, "test", columns)
    resnet = ResNet18Baseline(**small_params(epochs=1))
    for model in (AverageBaseline(), RandomBaseline(1), OracleBaseline(9), resnet):
        assert model.fit(X, y) is model
        pred = model.predict(X_test)
        assert pred.shape == (X_test["subject_id"].size, 3) and np.isfinite(pred).all()
        for name in model.input_columns:  # each names what it reads
            assert name in X


def test_run_baseline_trains_saves_and_reuses_the_resnet(tiny_dataset, tmp_path):
    from synthoct_bench.baselines.run import run_baseline

    params = {"epochs": 1, "input_size": 16, "device": "cpu", "progress": False}
    with pytest.warns(UserWarning, match="no calibration: 3 validation images"):
        ids, pred = run_baseline("resnet18", tiny_dataset, 9, "test", params=params,
                                 workdir=tmp_path)  # fmt: skip
    assert pred.shape == (ids.size, 3) and (tmp_path / "checkpoints" / "state.json").is_file()
    assert np.isfinite(pred).all() and (pred.std(axis=0) > 0).all()
    again_ids, again = run_baseline(
        "resnet18", tiny_dataset, 9, "test", model_dir=tmp_path / "model", params=params
    )
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again, pred, rtol=1e-6, atol=1e-6)
    # a saved model predicts in the precision asked for (--amp on/off), not the saved one
    on, off = ({**params, "amp": amp} for amp in (True, False))
    _, pred_on = run_baseline("resnet18", tiny_dataset, 9, "test", model_dir=tmp_path / "model",
                              params=on)  # fmt: skip
    _, pred_off = run_baseline("resnet18", tiny_dataset, 9, "test", model_dir=tmp_path / "model",
                               params=off)  # fmt: skip
    assert np.isfinite(pred_on).all() and np.isfinite(pred_off).all()
    assert not np.array_equal(pred_on, pred_off)
    # the same model at lower precision: bf16 keeps ~3 digits, and a net trained for one
    # epoch amplifies them unevenly (0.27 apart at worst on an AMX CPU), so the check is
    # that the two agree far better than either varies across subjects
    assert np.corrcoef(pred_on.ravel(), pred_off.ravel())[0, 1] > 0.9
    spread = np.abs(pred_off - pred_off.mean(axis=0)).mean()
    assert np.abs(pred_on - pred_off).mean() < 0.25 * spread


def test_resnet_also_takes_a_torch_dataset(tiny_dataset):
    """Data too large for memory: X (and X_val) as a torch Dataset of (image, target), y None."""
    from synthoct_bench.dataset.torch_data import TorchImageDataset

    train, val, test = (
        TorchImageDataset(tiny_dataset, noise=9, split=s) for s in ("train", "validation", "test")
    )
    model = ResNet18Baseline(**small_params(epochs=1, input_size=16)).fit(
        train, eval_set=(val, None)
    )
    assert model.predict(test).shape == (len(test), 3)
    with pytest.raises(ValueError, match="y is required"):
        ResNet18Baseline().fit({"image": np.zeros((4, 16, 16), np.uint8)})


def test_mixed_precision_is_on_where_bf16_is_native_unless_set(monkeypatch):
    """amp=None follows the hardware (read at fit and at predict), and bf16 training learns.

    How close bf16 lands to float32 is a benchmark question: on a few dozen toy images
    the gap depends on the CPU's bf16 kernels (emulated ones differ from AMX), so the
    test asks only that the loss falls as it does in float32."""
    from synthoct_bench.baselines import training

    torch.set_num_threads(2)
    x, y = toy_data(48)
    xv, yv = toy_data(24, seed=1)
    params = small_params(epochs=2, calibrate=False)
    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    fp32 = ResNet18Baseline(**params).fit(x, y, eval_set=(xv, yv))
    assert {h["precision"] for h in fp32.history_} == {"fp32"}
    pred_fp32 = fp32.predict(xv)
    off = ResNet18Baseline(**{**params, "amp": False}).fit(x, y, eval_set=(xv, yv))
    np.testing.assert_array_equal(off.predict(xv), pred_fp32)
    forced = ResNet18Baseline(**{**params, "amp": True}).fit(x, y, eval_set=(xv, yv))
    assert {h["precision"] for h in forced.history_} == {"bf16"}
    pred_bf16 = forced.predict(xv)
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    auto = ResNet18Baseline(**params).fit(x, y, eval_set=(xv, yv))
    assert {h["precision"] for h in auto.history_} == {"bf16"}
    np.testing.assert_array_equal(auto.predict(xv), pred_bf16)
    assert np.isfinite(pred_bf16).all() and not np.array_equal(pred_bf16, pred_fp32)
    for model in (fp32, forced):  # the second epoch at least a quarter below the first
        first, last = (h["train_loss"] for h in model.history_)
        assert last < 0.75 * first


def test_every_gpu_gets_mixed_precision_fp16_where_bf16_is_missing(monkeypatch):
    """bf16 by compute capability (T4 and V100 only emulate it), asked of the device."""
    from synthoct_bench.baselines.training import native_bf16

    asked = []

    def capability(device):
        asked.append(device)
        return {0: (7, 5), 1: (9, 0)}[device.index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    assert ResNet18Baseline()._precision(torch.device("cuda:0")) == (True, torch.float16)
    assert ResNet18Baseline()._precision(torch.device("cuda:1")) == (True, torch.bfloat16)
    assert ResNet18Baseline(amp=False)._precision(torch.device("cuda:1"))[0] is False
    assert {d.index for d in asked} == {0, 1}
    assert native_bf16(torch.device("mps")) is False
    assert native_bf16(torch.device("meta")) is False


def test_resume_keeps_this_runs_adam_kernel_whatever_the_checkpoint_used(tmp_path, monkeypatch):
    """A checkpoint from an unfused Adam (as written before Adam was fused) resumes into
    a fused one, and the other way round, without the saved flag taking over."""
    from synthoct_bench.baselines import training

    torch.set_num_threads(2)
    x, y = toy_data(64)
    xv, yv = toy_data(32, seed=1)
    built = []
    real_adam = training._adam

    def unfused(params, lr, device):
        built.append(torch.optim.Adam(params, lr=lr))
        return built[-1]

    def fused(params, lr, device):
        built.append(real_adam(params, lr, device))
        return built[-1]

    for first, second, want in ((unfused, fused, True), (fused, unfused, None)):
        ckpt = tmp_path / first.__name__
        monkeypatch.setattr(training, "_adam", first)
        ResNet18Baseline(**small_params(epochs=1), checkpoint_dir=ckpt).fit(x, y, eval_set=(xv, yv))
        monkeypatch.setattr(training, "_adam", second)
        resumed = ResNet18Baseline(**small_params(epochs=2), checkpoint_dir=ckpt)
        resumed.fit(x, y, eval_set=(xv, yv), resume=True)
        assert [h["epoch"] for h in resumed.history_] == [1, 2]
        assert built[-1].param_groups[0]["fused"] is want
        assert built[-1].state  # the saved moments were loaded and stepped on
