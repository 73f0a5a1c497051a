"""Issue 9, items 4, 5 and 6: caller arrays stay untouched, no NaN is a result, callbacks check their arguments.

- ``net.forward``, ``net.backward`` and ``predict`` never modify the caller's arrays,
  whatever position an in-place layer holds (also in a saved and loaded Sequential
  whose first layer is an activation); editing the array ``forward`` returned does
  not change the next ``backward``.
- ``predict``/``predict_proba``/``evaluate`` raise ``NonFiniteError`` naming the first
  sample whose outputs are not finite; after a divergence the model keeps weights
  whose outputs on the diverging batch are finite; ``load_state_dict`` refuses NaN.
- ``Model.fit``'s callbacks and the callbacks' own arguments are checked up front.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import layerwise as lw
from layerwise.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint
from layerwise.errors import ConfigError, DivergenceError, DTypeError, InputError, NonFiniteError, ShapeError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

IN_PLACE = {
    "relu": lw.layers.ReLU,
    "sigmoid": lw.layers.Sigmoid,
    "tanh": lw.layers.Tanh,
    "softmax": lw.layers.Softmax,
    "dropout": lambda: lw.layers.Dropout(0.5),
}


def stack(kind: str, position: int, n_dense: int = 2) -> list:
    """Dense layers with the in-place layer ``kind`` inserted at ``position`` (0 = first, n_dense = last)."""
    layers: list = [lw.layers.Dense(6) for _ in range(n_dense - 1)] + [lw.layers.Dense(4)]
    layers.insert(position, IN_PLACE[kind]())
    return layers


def cases():
    for kind, position in itertools.product(IN_PLACE, range(3)):
        yield pytest.param(kind, position, id=f"{kind}-at-{position}")
    # Two in-place layers back to back, at the start and at the end.
    yield pytest.param("relu+tanh-first", None, id="relu+tanh-first")
    yield pytest.param("sigmoid+relu-last", None, id="sigmoid+relu-last")


def build(kind: str, position: int | None, dtype=np.float64) -> lw.Sequential:
    if kind == "relu+tanh-first":
        layers = [lw.layers.ReLU(), lw.layers.Tanh(), lw.layers.Dense(6), lw.layers.Dense(4)]
    elif kind == "sigmoid+relu-last":
        layers = [lw.layers.Dense(6), lw.layers.Dense(4), lw.layers.Sigmoid(), lw.layers.ReLU()]
    else:
        layers = stack(kind, position)
    return lw.Sequential(layers, input_shape=(5,), dtype=dtype, seed=1)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize(("kind", "position"), list(cases()))
def test_caller_arrays_are_never_modified(kind, position, training):
    net = build(kind, position)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))
    dy = rng.standard_normal((7, 4))
    x_copy, dy_copy = x.copy(), dy.copy()
    net.set_rng(np.random.default_rng(3))
    y = net.forward(x, training=training)
    np.testing.assert_array_equal(x, x_copy)
    y_copy = y.copy()
    dx = net.backward(dy)
    np.testing.assert_array_equal(dy, dy_copy)
    np.testing.assert_array_equal(y, y_copy)  # backward does not touch what forward returned either
    assert not np.shares_memory(dx, x) or dx is x  # never written into x


@pytest.mark.parametrize(("kind", "position"), list(cases()))
def test_editing_the_output_does_not_change_the_next_backward(kind, position):
    """The caller owns what forward returns: scribbling on it leaves the gradients as they were."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((7, 5)), rng.standard_normal((7, 4))
    grads = []
    for scribble in (False, True):
        net = build(kind, position)
        net.set_rng(np.random.default_rng(3))
        y = net.forward(x, training=True)
        if scribble:
            y[...] = -1.5  # every activation's derivative differs there
        dx = net.backward(dy)
        grads.append((net.flat_grads.copy(), dx.copy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("first", ["ReLU", "Sigmoid", "Tanh", "Softmax"])
def test_saved_and_loaded_network_with_an_activation_first_keeps_x(tmp_path, first):
    """Version-1 files stored ``inplace: true`` on activations; a loaded network must not act on it."""
    layers = [getattr(lw.layers, first)(inplace=True), lw.layers.Dense(6), lw.layers.ReLU(inplace=True),
              lw.layers.Dense(3)]  # fmt: skip
    model = lw.Model(lw.Sequential(layers, input_shape=(5,), seed=0))
    model.save(tmp_path / "m.npz")
    loaded = lw.load(tmp_path / "m.npz")
    x = np.random.default_rng(0).standard_normal((9, 5)).astype(np.float32)  # the network's dtype: no cast
    x_copy = x.copy()
    for predict in (loaded.predict, loaded.predict_proba, loaded.predict_logits):
        predict(x)
        np.testing.assert_array_equal(x, x_copy)
    loaded.evaluate(x, np.arange(9) % 3)
    loaded.fit(x, np.arange(9) % 3, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(x, x_copy)


# -- no NaN or inf as a result ------------------------------------------------------------------
@pytest.fixture
def model() -> lw.Model:
    net = lw.NeuralNetwork(4, [(8, "ReLU"), (3, "Linear")], seed=0)
    return lw.Model(net)


@pytest.mark.parametrize("call", ["predict", "predict_proba", "predict_logits", "evaluate"])
def test_overflowing_input_is_an_error_naming_the_sample(model, call):
    x = np.random.default_rng(0).random((10, 4))
    x[6, 2] = 1e300  # fits float64, overflows the float32 network
    args = (x, np.zeros(10, int)) if call == "evaluate" else (x,)
    with pytest.raises(NonFiniteError) as info:
        getattr(model, call)(*args, batch_size=4)  # sample 6 is in the second batch
    message = str(info.value)
    assert isinstance(info.value, FloatingPointError)
    assert message.startswith("x: ") and "sample 6" in message and "1e+300" in message and "float32" in message


def test_validation_data_that_overflows_is_named(model):
    x = np.random.default_rng(0).random((10, 4))
    bad = x.copy()
    bad[3] = 1e300
    with pytest.raises(NonFiniteError, match=r"validation_data\[0\]: .*sample 3"):
        model.fit(x, np.zeros(10, int), validation_data=(bad, np.zeros(10, int)), verbose=0)


def test_weights_that_overflow_are_an_error(model):
    model.net.flat_params[...] = 1e30  # finite, but every output overflows
    with pytest.raises(NonFiniteError, match="sample 0.*weights"):
        model.predict(np.ones((3, 4)))


def test_after_divergence_every_prediction_is_finite():
    """lr=1e30: the first update makes the weights ~1e29 (finite); the next loss is NaN.

    The model goes back to weights whose outputs on that batch are finite, so it still predicts.
    """
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 784)).astype(np.float32), rng.integers(0, 10, 64)
    model = lw.Model(lw.NeuralNetwork(784, [(16, "ReLU"), (10, "Linear")], seed=0), optimizer=lw.optim.SGD(1e30))
    with pytest.raises(DivergenceError, match="whose outputs on that batch are finite"):
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert np.isfinite(model.predict_proba(x)).all()
    loss, _ = model.evaluate(x, y)
    assert np.isfinite(loss)


def test_divergence_on_the_last_update_of_an_epoch_is_caught():
    """One step per epoch: no later loss sees the huge weights, the end-of-epoch check does."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 784)).astype(np.float32), rng.integers(0, 10, 32)
    model = lw.Model(lw.NeuralNetwork(784, [(16, "ReLU"), (10, "Linear")], seed=0), optimizer=lw.optim.SGD(1e30))
    initial = model.net.flat_params.copy()
    with pytest.raises(DivergenceError, match="last update of epoch 1"):
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    np.testing.assert_array_equal(model.net.flat_params, initial)
    assert np.isfinite(model.predict_logits(x)).all()


def test_divergence_caused_by_the_data_says_so():
    """A sample of 1e38 overflows float32 even with the initial weights: nothing better to keep; the error says why."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 16)).astype(np.float32), rng.integers(0, 3, 32)
    x[5] = 1e38
    model = lw.Model(lw.NeuralNetwork(16, [(8, "ReLU"), (3, "Linear")], seed=0), optimizer=lw.optim.SGD(0.01))
    initial = model.net.flat_params.copy()
    with pytest.raises(DivergenceError, match="are the inputs scaled"):
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    np.testing.assert_array_equal(model.net.flat_params, initial)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_state_dict_refuses_non_finite_values(model, bad):
    state = model.net.state_dict()
    before = model.net.flat_params.copy()
    state["0.W"] = state["0.W"].copy()
    state["0.W"][1, 2] = bad
    state["2.b"] = state["2.b"] + 1  # a good change that must not be half-applied
    with pytest.raises(InputError, match=r"state\['0.W'\].*NaN or inf"):
        model.net.load_state_dict(state)
    np.testing.assert_array_equal(model.net.flat_params, before)


def test_load_state_dict_refuses_non_numeric_values(model):
    state = model.net.state_dict()
    with pytest.raises(DTypeError, match=r"state\['0.b'\]"):
        model.net.load_state_dict({**state, "0.b": np.array(["a"] * 8)})
    with pytest.raises(ShapeError, match="state"):
        model.net.load_state_dict([1, 2])
    model.net.load_state_dict({k: v.astype(np.float64) for k, v in state.items()})  # other float dtypes are fine


# -- callbacks ---------------------------------------------------------------------------------
def data():
    rng = np.random.default_rng(0)
    return rng.random((16, 4)), np.arange(16) % 3


def test_callbacks_none_means_no_callbacks(model):
    history = model.fit(*data(), epochs=1, verbose=0, callbacks=None)
    assert len(history.history["loss"]) == 1


@pytest.mark.parametrize(
    ("callbacks", "needle"),
    [
        (5, "callbacks: expected a list"),
        ("early", "callbacks: expected a list"),
        ([EarlyStopping(), "x"], "callbacks[1]"),
        (EarlyStopping(), "pass [it]"),
        ([None], "callbacks[0]"),
    ],  # fmt: skip
    ids=["int", "str", "str-in-list", "bare-callback", "none-in-list"],
)
def test_bad_callbacks_argument(model, callbacks, needle):
    before = model.net.flat_params.copy()
    with pytest.raises(ConfigError) as info:
        model.fit(*data(), epochs=1, verbose=0, callbacks=callbacks)
    assert needle in str(info.value)
    np.testing.assert_array_equal(model.net.flat_params, before)  # refused before training


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: EarlyStopping(patience="2"), "patience"),
        (lambda: EarlyStopping(patience=-1), "patience"),
        (lambda: EarlyStopping(patience=True), "patience"),
        (lambda: EarlyStopping(min_delta="0.1"), "min_delta"),
        (lambda: EarlyStopping(min_delta=float("nan")), "min_delta"),
        (lambda: EarlyStopping(monitor=3), "monitor"),
        (lambda: EarlyStopping(mode=["min"]), "mode"),
        (lambda: EarlyStopping(restore_best_weights="yes"), "restore_best_weights"),
        (lambda: ModelCheckpoint("ckpt-{epok}.npz"), "{epok}"),
        (lambda: ModelCheckpoint("ckpt-{epoch:q}.npz"), "cannot be formatted"),
        (lambda: ModelCheckpoint("ckpt-{}.npz"), "{}"),
        (lambda: ModelCheckpoint("ckpt-{0}.npz"), "{0}"),
        (lambda: ModelCheckpoint("ckpt-{epoch.x}.npz"), "cannot be formatted"),
        (lambda: ModelCheckpoint("ckpt-{epoch.npz"), "not a valid template"),
        (lambda: ModelCheckpoint(None), "filepath"),
        (lambda: ModelCheckpoint("m.npz", save_best_only="no"), "save_best_only"),
        (lambda: LearningRateScheduler(0.1), "schedule"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_callback_arguments_are_config_errors(make, needle):
    with pytest.raises(ConfigError) as info:
        make()
    assert needle in str(info.value), str(info.value)


def test_checkpoint_template_keys(model, tmp_path):
    template = str(tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.npz")
    model.fit(*data(), epochs=2, verbose=0, callbacks=[ModelCheckpoint(template)])
    assert sorted(p.name[:7] for p in tmp_path.iterdir()) == ["ckpt-01", "ckpt-02"]
    # A metric this fit does not log: the error names it and says why, after the first epoch.
    with pytest.raises(ConfigError, match="'val_loss'.*validation_data"):
        model.fit(*data(), epochs=1, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "{val_loss}.npz"))])


def test_schedule_returning_garbage(model):
    with pytest.raises(ConfigError, match=r"schedule\(0\) returned 'fast'"):
        model.fit(*data(), epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: "fast")])
