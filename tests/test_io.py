"""Saving and loading (happy paths): exact round trips, no pickles, exact resume."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import layerwise as lw
from layerwise import optim
from layerwise.io import save_model

OPTIMIZERS = {
    "adam": lambda: optim.Adam(3e-3, betas=(0.85, 0.995), eps=1e-7),
    "adamw": lambda: optim.AdamW(1e-3, weight_decay=0.05),
    "sgd": lambda: optim.SGD(0.05),
    "sgd-nesterov": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "rmsprop": lambda: optim.RMSProp(1e-3, alpha=0.9),
}


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 12)).astype(np.uint8)
    y = (x[:, :3].sum(axis=1) // 256).clip(0, 2)
    return x, y


def trained(dtype, opt="adam", loss="crossEntropyLogit", arch=None, epochs=2):
    x, y = data()
    arch = arch or [(10, "ReLU"), (6, "Tanh"), (3, "Linear")]
    net = lw.NeuralNetwork(12, arch, seed=3, dtype=dtype, input_scale=1 / 255)
    model = lw.Model(net, loss=loss, optimizer=OPTIMIZERS[opt]())
    if loss == "logistic":
        y = (y > 0).astype(np.float64)
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model, x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_round_trip_reproduces_everything(tmp_path, dtype, opt):
    model, x, _ = trained(dtype, opt)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = lw.load(path)
    assert isinstance(loaded, lw.Model)
    # Architecture, dtype and weights.
    assert [layer.config() for layer in loaded.net.layers] == [layer.config() for layer in model.net.layers]
    assert loaded.net.dtype == dtype and loaded.net.flat_params.dtype == dtype
    np.testing.assert_array_equal(loaded.net.flat_params, model.net.flat_params)
    for (n1, p1), (n2, p2) in zip(model.net.named_parameters(), loaded.net.named_parameters(), strict=True):
        assert n1 == n2 and p1.dtype == p2.dtype == dtype
        np.testing.assert_array_equal(p1, p2)
        assert np.shares_memory(p2, loaded.net.flat_params)
    # Predictions, bit for bit.
    logits = loaded.predict_logits(x)
    assert logits.dtype == dtype
    np.testing.assert_array_equal(logits, model.predict_logits(x))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    # Loss and optimizer, with its state.
    assert type(loaded.loss) is type(model.loss)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.config() == model.optimizer.config()
    a, b = model.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert a["iterations"] == b["iterations"] == 12
    assert set(a["slots"]) == set(b["slots"])
    for slot in a["slots"]:
        for u, v in zip(a["slots"][slot], b["slots"][slot], strict=True):
            assert v.dtype == dtype
            np.testing.assert_array_equal(u, v)
    assert loaded.seed == model.seed
    assert loaded.train_config == model.train_config


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ["adam", "sgd-nesterov", "rmsprop"])
def test_training_continues_identically_after_loading(tmp_path, dtype, opt):
    model, x, y = trained(dtype, opt)
    model.save(tmp_path / "m.npz")
    loaded = lw.load(tmp_path / "m.npz")
    h1 = model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    h2 = loaded.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_array_equal(loaded.net.flat_params, model.net.flat_params)
    assert h1.history["loss"] == h2.history["loss"]


@pytest.mark.parametrize("loss", ["logistic", "mse"])
def test_round_trip_other_losses(tmp_path, loss):
    arch = [(5, "Sigmoid"), (1, "Linear")] if loss == "logistic" else [(5, "Softmax"), (3, "Linear")]
    if loss == "mse":
        x, y = data()
        net = lw.NeuralNetwork(12, arch, seed=0, dtype=np.float64, input_scale=1 / 255)
        model = lw.Model(net, loss="mse", optimizer="sgd")
        model.fit(x, np.eye(3)[y], epochs=1, verbose=0)
    else:
        model, x, _ = trained(np.float64, "adam", loss=loss, arch=arch, epochs=1)
    model.save(tmp_path / "m.npz")
    loaded = lw.load(tmp_path / "m.npz")
    assert type(loaded.loss) is type(model.loss)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_untrained_model_round_trip(tmp_path):
    net = lw.NeuralNetwork(4, [(3, "Tanh"), (2, "Linear")], seed=0)
    model = lw.Model(net, optimizer="ADAM")
    model.save(tmp_path / "fresh.npz")
    loaded = lw.load(tmp_path / "fresh.npz")
    np.testing.assert_array_equal(loaded.net.flat_params, net.flat_params)
    assert loaded.optimizer.iterations == 0
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_files_hold_no_pickles(tmp_path, dtype):
    model, _, _ = trained(dtype, "adam", epochs=1)
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
        arrays = {name: npz[name] for name in names}  # would raise on any object array
    assert "__header__" in names
    assert {"net/1.W", "net/1.b", "net/3.W", "net/3.b", "net/5.W", "net/5.b"} <= names
    assert {"optimizer/m/0", "optimizer/v/0"} <= names
    for name, a in arrays.items():
        assert not a.dtype.hasobject, name
        assert a.dtype.kind in "uif", name
    assert arrays["optimizer/m/0"].shape == (model.net.n_params,)
    assert arrays["net/1.W"].dtype == dtype
    header = json.loads(arrays["__header__"].tobytes().decode())
    assert header["dtype"] == np.dtype(dtype).name
    assert header["loss"] == "CrossEntropyLogit"
    assert header["optimizer"]["name"] == "Adam"
    with zipfile.ZipFile(path) as zf:
        assert all(info.filename.endswith(".npy") for info in zf.infolist())


def test_save_creates_folders_and_overwrites(tmp_path):
    model, x, y = trained(np.float32, "sgd", epochs=1)
    path = tmp_path / "a" / "b" / "model.npz"
    model.save(path)
    first = lw.load(path).net.flat_params.copy()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(path)
    second = lw.load(path).net.flat_params
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, model.net.flat_params)
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temporary files left


def test_load_accepts_str_paths(tmp_path):
    model, x, _ = trained(np.float32, "sgd", epochs=1)
    model.save(str(tmp_path / "m.npz"))
    np.testing.assert_array_equal(lw.load(str(tmp_path / "m.npz")).predict(x), model.predict(x))


@pytest.mark.parametrize("shuffle", [False, True])
def test_checkpoint_resume_is_bit_identical(tmp_path, shuffle):
    """Train 3 epochs straight, or 1 epoch + checkpoint + load + resume: the same weights."""
    x, y = data()

    def fresh():
        net = lw.NeuralNetwork(12, [(8, "ReLU"), (3, "Linear")], seed=5, dtype=np.float64, input_scale=1 / 255)
        return lw.Model(net, optimizer=optim.Adam(1e-2))

    straight = fresh()
    h_straight = straight.fit(x, y, epochs=3, batch_size=16, shuffle=shuffle, verbose=0)

    first = fresh()
    h_first = first.fit(x, y, epochs=1, batch_size=16, shuffle=shuffle, verbose=0)
    state = dict(first.train_state, history=h_first.history)
    save_model(first, tmp_path / "ckpt.npz", train_state=state)
    resumed = lw.load(tmp_path / "ckpt.npz")
    assert resumed.train_state["epoch"] == 1
    h_resumed = resumed.fit(x, y, epochs=3, batch_size=16, shuffle=shuffle, verbose=0, resume=resumed.train_state)
    np.testing.assert_array_equal(resumed.net.flat_params, straight.net.flat_params)
    assert h_resumed.history["loss"] == h_straight.history["loss"]
