"""Model: fit / evaluate / predict, History, callbacks, determinism, dtypes, summary."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise import optim
from layerwise.callbacks import Callback, EarlyStopping, ModelCheckpoint


def blobs(n=150, d=4, k=3, seed=0, spread=0.6):
    """k well-separated Gaussian clusters: (x float32 (n, d), labels (n,))."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    x = centers[y] + spread * rng.standard_normal((n, d))
    return x.astype(np.float32), y


def make_model(seed=0, dtype=np.float32, loss="crossEntropyLogit", n_out=3, optimizer=None, **kw):
    net = lw.NeuralNetwork(4, [(8, "ReLU"), (n_out, "Linear")], seed=seed, dtype=dtype, **kw)
    return lw.Model(net, loss=loss, optimizer=optimizer or optim.Adam(1e-2))


# ----------------------------------------------------------------------------- fit / evaluate / predict


def test_fit_learns_and_predict_shapes():
    x, y = blobs()
    model = make_model()
    loss0, acc0 = model.evaluate(x, y)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    loss1, acc1 = model.evaluate(x, y)
    assert isinstance(loss1, float) and isinstance(acc1, float)
    assert loss1 < loss0 / 3 and acc1 >= 0.95 > acc0
    assert history.history["loss"][-1] < history.history["loss"][0]
    pred = model.predict(x)
    assert pred.shape == (150,) and np.issubdtype(pred.dtype, np.integer)
    assert np.mean(pred == y) == pytest.approx(acc1)
    proba = model.predict_proba(x)
    assert proba.shape == (150, 3)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), pred)
    logits = model.predict_logits(x)
    assert logits.shape == (150, 3)
    np.testing.assert_allclose(proba, lw.softmax(logits, axis=1), rtol=1e-6)


def test_predict_in_small_batches_equals_one_batch():
    x, y = blobs()
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_allclose(model.predict_logits(x, batch_size=7), model.predict_logits(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model.predict(x, batch_size=7), model.predict(x))


def test_evaluate_equals_loss_of_predict_logits():
    x, y = blobs()
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0)
    loss, acc = model.evaluate(x, y, batch_size=32)
    z = model.predict_logits(x).astype(np.float64)
    assert loss == pytest.approx(lw.CrossEntropyLogit().forward(z, y), rel=1e-5)
    assert acc == pytest.approx(np.mean(z.argmax(1) == y))


def test_logistic_model_predictions():
    x, y3 = blobs()
    y = (y3 == 0).astype(np.float64)
    model = make_model(loss="logistic", n_out=1)
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    proba = model.predict_proba(x)
    pred = model.predict(x)
    assert proba.shape == (150,) and pred.shape == (150,)
    assert set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    _, acc = model.evaluate(x, y)
    assert acc == pytest.approx(np.mean(pred == y)) and acc > 0.9


def test_mse_model_predictions_are_raw_outputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = x[:, 0] + x[:, 1] - x[:, 2]
    model = make_model(loss="mse", n_out=1)
    h = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert model.predict(x).shape == (64, 1)
    np.testing.assert_array_equal(model.predict(x), model.predict_logits(x))
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_logits(x))
    assert h.history["loss"][-1] < 0.2 * h.history["loss"][0]
    assert "accuracy" not in h.history  # a single regression output has no accuracy: left out
    loss, acc = model.evaluate(x, y)
    assert np.isnan(acc) and loss == pytest.approx(np.mean((model.predict(x)[:, 0] - y) ** 2), rel=1e-5)


# ----------------------------------------------------------------------------- History


@pytest.mark.parametrize("with_validation", [False, True])
def test_history_keys_one_value_per_epoch(with_validation):
    x, y = blobs()
    model = make_model()
    val = blobs(40, seed=1) if with_validation else None
    history = model.fit(x, y, epochs=3, batch_size=32, validation_data=val, verbose=0)
    assert model.history is history
    expected = {"loss", "accuracy"} | ({"val_loss", "val_accuracy"} if with_validation else set())
    assert expected <= set(history.history)
    if not with_validation:
        assert not any(k.startswith("val_") for k in history.history)
    for key in expected:
        assert len(history.history[key]) == 3
        assert all(isinstance(v, float) and np.isfinite(v) for v in history.history[key])
    assert history.epoch == [0, 1, 2]
    if with_validation:
        assert (history.history["val_loss"][-1], history.history["val_accuracy"][-1]) == pytest.approx(
            model.evaluate(*val)
        )


def test_epoch_loss_is_computed_before_each_update():
    """One batch per epoch: the logged loss is the loss of the weights the epoch started with."""
    x, y = blobs(32)
    model = make_model(dtype=np.float64)
    before = model.evaluate(x, y)
    h = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert h.history["loss"][0] == pytest.approx(before[0], rel=1e-12)
    assert h.history["accuracy"][0] == pytest.approx(before[1])


def test_epoch_loss_is_sample_weighted_mean_of_batches():
    x, y = blobs(10)
    model = make_model(dtype=np.float64, optimizer=optim.SGD(lr=1e-12))  # weights barely move
    start = model.net.flat_params.copy()
    h = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    model.net.flat_params[...] = start
    parts = [(model.evaluate(x[i : i + 4], y[i : i + 4])[0], len(x[i : i + 4])) for i in range(0, 10, 4)]
    expected = sum(loss * n for loss, n in parts) / 10
    assert h.history["loss"][0] == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- callbacks


class Inject(Callback):
    """Puts a scripted metric into the logs and records the weights after each epoch."""

    def __init__(self, values):
        self.values = values
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        logs["scripted"] = self.values[epoch]
        self.weights.append(self.model.net.flat_params.copy())


@pytest.mark.parametrize("restore", [False, True])
def test_early_stopping(restore):
    x, y = blobs()
    model = make_model()
    inject = Inject([3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    stop = EarlyStopping(monitor="scripted", patience=2, restore_best_weights=restore)
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[inject, stop])
    # Best at epoch 2; epochs 3 and 4 do not improve: patience 2 (as in Keras) stops after epoch 4.
    assert len(h.history["loss"]) == 5
    assert stop.stopped_epoch == 4
    if restore:
        np.testing.assert_array_equal(model.net.flat_params, inject.weights[2])
    else:
        np.testing.assert_array_equal(model.net.flat_params, inject.weights[4])


@pytest.mark.parametrize("patience,stopped", [(0, 3), (1, 3), (3, 5), (10, None)])
def test_early_stopping_patience_counts_epochs_without_improvement(patience, stopped):
    x, y = blobs()
    model = make_model()
    inject = Inject([3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    stop = EarlyStopping(monitor="scripted", patience=patience)
    h = model.fit(x, y, epochs=8, verbose=0, callbacks=[inject, stop])
    assert stop.stopped_epoch == stopped
    assert len(h.history["loss"]) == (8 if stopped is None else stopped + 1)


def test_early_stopping_min_delta():
    x, y = blobs()
    model = make_model()
    inject = Inject([1.0, 0.95, 0.9, 0.85, 0.8])  # improves, but by less than min_delta
    stop = EarlyStopping(monitor="scripted", patience=2, min_delta=0.1)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[inject, stop])
    assert stop.stopped_epoch == 2


def test_early_stopping_max_mode_with_validation_data():
    x, y = blobs()
    model = make_model()
    inject = Inject([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    stop = EarlyStopping(monitor="scripted", patience=2, mode="max", restore_best_weights=True)
    h = model.fit(x, y, epochs=6, verbose=0, validation_data=blobs(30, seed=2), callbacks=[inject, stop])
    assert stop.stopped_epoch == 3
    assert len(h.history["val_loss"]) == 4
    np.testing.assert_array_equal(model.net.flat_params, inject.weights[1])


def test_early_stopping_on_real_val_loss():
    """Validation labels are the training classes shifted by one, so learning makes val_loss worse."""
    x, y = blobs()
    xv, yv = blobs(60, seed=0)
    model = make_model(optimizer=optim.Adam(3e-2))
    stop = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)

    class Record(Callback):
        def __init__(self):
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.net.flat_params.copy())

    rec = Record()
    h = model.fit(x, y, epochs=10, verbose=0, validation_data=(xv, (yv + 1) % 3), callbacks=[rec, stop])
    assert stop.stopped_epoch is not None and stop.stopped_epoch < 9
    val = h.history["val_loss"]
    assert val[-1] > val[-2]
    best = int(np.argmin(val))
    assert stop.stopped_epoch == best + 1
    np.testing.assert_array_equal(model.net.flat_params, rec.weights[best])
    assert not np.array_equal(rec.weights[-1], rec.weights[best])


def test_early_stopping_unknown_monitor_is_an_error():
    x, y = blobs()
    with pytest.raises(lw.errors.ConfigError):
        make_model().fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping(monitor="val_loss")])


def test_model_checkpoint_writes_loadable_files(tmp_path):
    x, y = blobs()
    model = make_model()
    ckpt = ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", save_best_only=False)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[ckpt])
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["ckpt-1.npz", "ckpt-2.npz", "ckpt-3.npz"]
    last = lw.load(tmp_path / "ckpt-3.npz")
    np.testing.assert_array_equal(last.predict_logits(x), model.predict_logits(x))
    first = lw.load(tmp_path / "ckpt-1.npz")
    assert not np.array_equal(first.net.flat_params, last.net.flat_params)


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = blobs()
    model = make_model()
    inject = Inject([3.0, 1.0, 2.0, 0.5, 4.0])
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="scripted", save_best_only=True)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[inject, ckpt])
    np.testing.assert_array_equal(lw.load(path).net.flat_params, inject.weights[3])


def test_model_checkpoint_formats_metrics_in_the_name(tmp_path):
    x, y = blobs()
    model = make_model()
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        validation_data=blobs(20, seed=3),
        callbacks=[ModelCheckpoint(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.npz")],
    )
    names = sorted(p.name for p in tmp_path.glob("m-*.npz"))
    assert len(names) == 2 and names[0].startswith("m-01-") and names[1].startswith("m-02-")


# ----------------------------------------------------------------------------- determinism


def train(seed, y=None, model_seed=None, dtype=np.float32):
    x, labels = blobs()
    net = lw.NeuralNetwork(4, [(8, "Tanh"), (3, "Linear")], seed=seed, dtype=dtype)
    model = lw.Model(net, optimizer=optim.Adam(1e-2), seed=model_seed)
    h = model.fit(x, labels if y is None else y, epochs=3, batch_size=16, shuffle=True, verbose=0)
    return model, h


def test_same_seed_gives_bit_identical_weights():
    a, ha = train(0)
    b, hb = train(0)
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)
    assert ha.history["loss"] == hb.history["loss"]


def test_different_seed_gives_different_weights():
    a, _ = train(0)
    b, _ = train(1)
    assert not np.array_equal(a.net.flat_params, b.net.flat_params)


def test_model_seed_changes_only_the_shuffle():
    a, _ = train(0, model_seed=0)
    b, _ = train(0, model_seed=5)
    assert not np.array_equal(a.net.flat_params, b.net.flat_params)
    c, _ = train(0, model_seed=5)
    np.testing.assert_array_equal(b.net.flat_params, c.net.flat_params)


@pytest.mark.parametrize("one_hot_dtype", [np.float32, np.float64, np.int64])
def test_integer_labels_and_one_hot_train_identically(one_hot_dtype):
    _, labels = blobs()
    a, ha = train(0)
    b, hb = train(0, y=np.eye(3, dtype=one_hot_dtype)[labels])
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)
    assert ha.history["loss"] == hb.history["loss"]
    assert ha.history["accuracy"] == hb.history["accuracy"]


def test_shuffle_false_is_independent_of_model_seed():
    x, y = blobs()
    runs = []
    for ms in (0, 1):
        net = lw.NeuralNetwork(4, [(8, "Tanh"), (3, "Linear")], seed=0)
        model = lw.Model(net, optimizer="adam", seed=ms)
        model.fit(x, y, epochs=2, shuffle=False, verbose=0)
        runs.append(model.net.flat_params.copy())
    np.testing.assert_array_equal(*runs)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("input_dtype", [np.float32, np.float64, np.uint8])
def test_float64_end_to_end(input_dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 4)).astype(input_dtype)
    y = rng.integers(0, 3, 60)
    net = lw.NeuralNetwork(
        4, [(8, "ReLU"), (6, "Sigmoid"), (3, "Linear")], seed=0, dtype=np.float64, input_scale=1 / 255
    )
    model = lw.Model(net, optimizer=optim.Adam(1e-2))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x, y))
    assert net.dtype == np.float64
    assert net.flat_params.dtype == np.float64 and net.flat_grads.dtype == np.float64
    for p in net.parameters():
        assert p.dtype == np.float64
    for g in net.gradients():
        assert g.dtype == np.float64
    for slot in model.optimizer.state.values():
        assert all(a.dtype == np.float64 for a in slot)
    assert model.predict_logits(x).dtype == np.float64
    assert model.predict_proba(x).dtype == np.float64


@pytest.mark.parametrize("input_dtype", [np.float32, np.float64, np.int64])
def test_float32_network_outputs_float32(input_dtype):
    x, y = blobs()
    model = make_model()
    model.fit(x.astype(input_dtype), y, epochs=1, verbose=0)
    assert model.net.flat_params.dtype == np.float32
    assert model.predict_logits(x.astype(input_dtype)).dtype == np.float32


def test_float32_and_float64_networks_start_equal_up_to_rounding():
    a = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0, dtype=np.float32)
    b = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0, dtype=np.float64)
    np.testing.assert_array_equal(a.flat_params, b.flat_params.astype(np.float32))


# ----------------------------------------------------------------------------- network structure


def test_summary_lists_layers_and_total():
    net = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0)
    # 784*140 + 140 + 140*10 + 10: the two weight matrices and both bias vectors.
    assert net.n_params == 784 * 140 + 140 + 140 * 10 + 10 == 111_310
    text = net.summary()
    assert "Total parameters: 111,310" in text
    assert text.count("Dense") == 2 and "ReLU" in text and "Linear" in text
    assert "109,900" in text and "1,410" in text  # per-layer counts
    assert "(batch, 140)" in text and "(batch, 10)" in text
    model = lw.Model(net)
    assert "111,310" in model.summary() and "CrossEntropyLogit" in model.summary()


def test_architecture_strings_build_the_same_network():
    a = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0)
    for arch in ("[(140,ReLU),(10,Linear)]", "140:relu,10"):
        b = lw.NeuralNetwork(784, arch, seed=0)
        assert [type(layer) for layer in b.layers] == [type(layer) for layer in a.layers]
        np.testing.assert_array_equal(a.flat_params, b.flat_params)


def test_parameters_are_views_into_flat_params():
    net = lw.NeuralNetwork(5, [(4, "Tanh"), (3, "Linear")], seed=0, input_scale=0.5)
    params = net.parameters()
    assert [name for name, _ in net.named_parameters()] == ["1.W", "1.b", "3.W", "3.b"]
    assert sum(p.size for p in params) == net.n_params == net.flat_params.size
    for p, g in zip(params, net.gradients(), strict=True):
        assert np.shares_memory(p, net.flat_params)
        assert np.shares_memory(g, net.flat_grads)
        assert p.shape == g.shape
    net.flat_params[...] = np.arange(net.n_params)
    np.testing.assert_array_equal(np.concatenate([p.ravel() for p in params]), np.arange(net.n_params))
    params[0][0, 0] = -7
    assert net.flat_params[0] == -7
    net.layers[1].W = np.ones((5, 4))
    np.testing.assert_array_equal(net.flat_params[:20], 1)


def test_state_dict_round_trip():
    a = lw.NeuralNetwork(5, [(4, "Tanh"), (3, "Linear")], seed=0)
    b = lw.NeuralNetwork(5, [(4, "Tanh"), (3, "Linear")], seed=1)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    state = a.state_dict()
    assert sorted(state) == ["0.W", "0.b", "2.W", "2.b"]
    state["0.W"][...] = 0  # a copy: the network is unchanged
    assert a.layers[0].W.any()
    with pytest.raises(lw.errors.ShapeError):
        b.load_state_dict({"0.W": np.zeros((5, 4))})
    with pytest.raises(lw.errors.ShapeError):
        b.load_state_dict({**a.state_dict(), "0.W": np.zeros((4, 5))})
