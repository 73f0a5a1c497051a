"""The layer protocol end to end: shape inference, summary, training, save/load, user layers, errors, in-place work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError, ShapeError

FIXTURES = Path(__file__).parent / "fixtures"


def import_torch() -> Any:
    """torch, a test dependency: skip without it locally, fail without it in CI (as tests/test_torch_parity.py)."""
    if os.environ.get("CI"):
        import torch

        return torch
    return pytest.importorskip("torch")


def keras_style() -> lw.Sequential:
    return lw.Sequential(
        [lw.Conv2D(8, 3), lw.ReLU(), lw.MaxPool2D(2), lw.Flatten(), lw.Dense(10)], input_shape=(1, 28, 28), seed=0
    )


def with_batchnorm(seed: int = 0) -> lw.Sequential:
    """Both kinds of BatchNorm (over channels and over features) and a Dropout."""
    return lw.Sequential(
        [
            lw.Conv2D(4, 3, padding="same"),
            lw.BatchNorm(),
            lw.ReLU(),
            lw.MaxPool2D(2),
            lw.Flatten(),
            lw.Dense(16),
            lw.BatchNorm(),
            lw.ReLU(),
            lw.Dropout(0.25),
            lw.Dense(10),
        ],
        input_shape=(1, 10, 10),
        seed=seed,
    )


def random_data(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 10, n)


# ----------------------------------------------------------------------------- building and summary


def test_keras_style_network_infers_shapes_and_summarises():
    net = keras_style()
    assert net.shapes == [(1, 28, 28), (8, 26, 26), (8, 26, 26), (8, 13, 13), (1352,)]
    assert net.output_shape == (10,)
    assert net.layers[4].params["W"].shape == (1352, 10)
    text = net.summary()
    lines = text.splitlines()
    for i, (shape, count) in enumerate(
        [
            ("(batch, 8, 26, 26)", "80"),
            ("(batch, 8, 26, 26)", "0"),
            ("(batch, 8, 13, 13)", "0"),
            ("(batch, 1352)", "0"),
            ("(batch, 10)", "13,530"),
        ]
    ):
        row = next(line for line in lines if line.startswith(f"{i} "))
        assert shape in row and row.split()[-1] == count, row
    assert "Total parameters: 13,610" in text and "(batch, 1, 28, 28)" in text


def test_parameter_counts_equal_pytorch():
    torch = import_torch()
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(1352, 10)
    )
    net = keras_style()
    assert net.n_params == sum(p.numel() for p in tnet.parameters())
    ours = [sum(p.size for p in layer.params.values()) for layer in net.layers]
    theirs = [sum(p.numel() for p in m.parameters()) for m in tnet]
    assert ours == theirs
    # The same per-sample output shapes as torch, layer by layer.
    t = torch.zeros(1, 1, 28, 28)
    for m, shape in zip(tnet, [*net.shapes[1:], net.output_shape], strict=True):
        t = m(t)
        assert tuple(t.shape[1:]) == shape


def test_keras_style_network_trains_with_fit():
    x, y = random_data(64, (1, 28, 28))
    model = lw.Model(keras_style(), optimizer=lw.optim.Adam(3e-3))
    start = model.net.flat_params.copy()
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses  # memorises random labels
    assert not np.array_equal(model.net.flat_params, start)
    assert model.predict(x).shape == (64,)


# ----------------------------------------------------------------------------- save / load


def test_save_load_predicts_bit_identically_with_batchnorm_buffers(tmp_path):
    x, y = random_data(48, (1, 10, 10))
    model = lw.Model(with_batchnorm(), optimizer=lw.optim.Adam(1e-3))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    buffers = dict(model.net.named_buffers())
    assert set(buffers) == {"1.running_mean", "1.running_var", "6.running_mean", "6.running_var"}
    assert not np.allclose(buffers["1.running_var"], 1) and not np.allclose(buffers["6.running_mean"], 0)
    model.save(tmp_path / "cnn.npz")
    loaded = lw.load(tmp_path / "cnn.npz")
    assert [type(layer) for layer in loaded.net.layers] == [type(layer) for layer in model.net.layers]
    assert loaded.net.summary() == model.net.summary()
    for name, value in model.net.state_dict().items():  # parameters and buffers, exactly
        np.testing.assert_array_equal(loaded.net.state_dict()[name], value, err_msg=name)
        assert loaded.net.state_dict()[name].dtype == value.dtype
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))
    # Inference uses the running statistics: with fresh (0, 1) ones the outputs would differ.
    fresh = with_batchnorm()
    fresh.load_state_dict(
        {k: v for k, v in model.net.state_dict().items() if "running" not in k}
        | {k: (np.zeros_like(v) if "mean" in k else np.ones_like(v)) for k, v in buffers.items()}
    )
    assert not np.allclose(fresh.forward(x), loaded.predict_logits(x))


def test_every_layer_option_survives_save_load(tmp_path):
    """Non-square kernels, per-axis strides and paddings, "same", non-default BatchNorm and Dropout settings."""
    net = lw.Sequential(
        [
            lw.Conv2D(3, (2, 4), stride=(2, 1), padding=(1, 2)),
            lw.BatchNorm(momentum=0.3, eps=1e-3),
            lw.Tanh(),
            lw.AvgPool2D((2, 3), stride=(1, 2)),
            lw.Conv2D(4, 3, stride=2, padding="same"),
            lw.Sigmoid(),
            lw.MaxPool2D(2, stride=1),
            lw.Flatten(),
            lw.Dropout(0.3),
            lw.Dense(7),
            lw.ReLU(),
            lw.Dense(5),
        ],
        input_shape=(2, 13, 11),
        seed=2,
    )
    assert net.shapes[1:5] == [(3, 7, 12), (3, 7, 12), (3, 7, 12), (3, 6, 5)] and net.output_shape == (5,)
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 2, 13, 11), dtype=np.float32), rng.integers(0, 5, 20)
    model = lw.Model(net, optimizer=lw.optim.SGD(0.1, momentum=0.9))
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    model.save(tmp_path / "options.npz")
    loaded = lw.load(tmp_path / "options.npz")
    assert loaded.net.config() == net.config()
    assert [repr(layer) for layer in loaded.net.layers] == [repr(layer) for layer in net.layers]
    assert loaded.net.layers[1].momentum == 0.3 and loaded.net.layers[1].eps == 1e-3
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))


@lw.register_layer("ProtocolTestScale")
class Scale(lw.Layer):
    """A user layer: y = x·s + shift per feature/channel; s (C,) is trained, shift (C,) is a buffer."""

    def __init__(self, init: float = 1.0, dtype: Any = None) -> None:
        super().__init__(dtype)
        self.init = float(init)

    def param_shapes(self, input_shape):
        return {"s": (input_shape[0],)}

    def buffer_shapes(self, input_shape):
        return {"shift": (input_shape[0],)}

    def build(self, input_shape, rng=None):
        super().build(input_shape)
        self._set_params(s=np.full(input_shape[0], self.init))
        self.buffers = {"shift": np.zeros(input_shape[0], self.dtype)}

    def _per_channel(self, v: np.ndarray, ndim: int) -> np.ndarray:
        return v.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, x, training=False):
        self.x = x
        return x * self._per_channel(self.params["s"], x.ndim) + self._per_channel(self.buffers["shift"], x.ndim)

    def backward(self, dy, need_dx=True):
        axes = (0, *range(2, dy.ndim))
        np.sum(dy * self.x, axis=axes, out=self.grads["s"])
        return dy * self._per_channel(self.params["s"], dy.ndim) if need_dx else None

    def get_config(self):
        return {"init": self.init}


def test_registered_user_layer_round_trips(tmp_path):
    layers = [lw.Conv2D(3, 3), Scale(0.5), lw.ReLU(), lw.Flatten(), lw.Dense(8), Scale(2.0), lw.Dense(10)]
    net = lw.Sequential(layers, input_shape=(1, 8, 8), seed=1)
    assert lw.gradcheck(
        lw.Sequential([lw.Conv2D(2, 3), Scale(0.5)], input_shape=(1, 5, 5), dtype=np.float64),
        np.random.default_rng(0).standard_normal((2, 1, 5, 5)),
    ) == pytest.approx({"x": 0, "0.W": 0, "0.b": 0, "1.s": 0}, abs=1e-6)
    x, y = random_data(32, (1, 8, 8))
    model = lw.Model(net, optimizer=lw.optim.Adam(1e-2))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.allclose(net.layers[1].params["s"], 0.5)  # the optimizer trained s
    net.layers[1].buffers["shift"][...] = [0.25, -0.5, 1.0]
    net.layers[5].buffers["shift"][...] = np.arange(8) / 8
    model.save(tmp_path / "user.npz")
    loaded = lw.load(tmp_path / "user.npz")
    assert isinstance(loaded.net.layers[1], Scale) and loaded.net.layers[5].init == 2.0
    np.testing.assert_array_equal(loaded.net.layers[1].buffers["shift"], [0.25, -0.5, 1.0])
    np.testing.assert_array_equal(loaded.net.layers[5].params["s"], net.layers[5].params["s"])
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))


def test_unregistered_user_layer_cannot_be_saved(tmp_path):
    class Shift(lw.Layer):
        def forward(self, x, training=False):
            return x + 1

        def backward(self, dy, need_dx=True):
            return dy

    net = lw.Sequential([lw.Flatten(), Shift(), lw.Dense(10)], input_shape=(1, 4, 4))
    model = lw.Model(net)
    with pytest.raises(ConfigError, match=r"Shift.*not a registered layer.*register_layer"):
        model.save(tmp_path / "shift.npz")
    assert not (tmp_path / "shift.npz").exists()


def test_register_layer_refuses_a_taken_name():
    class Other(lw.Layer):
        pass

    with pytest.raises(ConfigError, match="ProtocolTestScale"):
        lw.register_layer("ProtocolTestScale")(Other)
    assert lw.layers.LAYERS["ProtocolTestScale"] is Scale


def test_version_1_model_file_still_loads_and_predicts_exactly():
    model = lw.load(FIXTURES / "v1_mlp.npz")
    expected = np.load(FIXTURES / "v1_mlp_expected.npz")
    assert model.net.input_shape == (784,)
    logits = model.predict_logits(expected["x"])
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits, expected["logits"])


# ----------------------------------------------------------------------------- errors


SHAPE_ERRORS = {
    "dense-784-after-conv": (
        lambda: [lw.Conv2D(8, 3), lw.ReLU(), lw.MaxPool2D(2), lw.Dense(784, 10)],
        r"layers\[3\].*\(784,\).*\(8, 13, 13\)",
    ),
    "dense-without-flatten": (
        lambda: [lw.Conv2D(8, 3), lw.ReLU(), lw.Dense(10)],
        r"layers\[2\].*Dense.*\(8, 26, 26\).*Flatten",
    ),
    "wrong-n-in-after-flatten": (
        lambda: [lw.Conv2D(8, 3), lw.Flatten(), lw.Dense(784, 10)],
        r"layers\[2\].*\(784,\).*\(5408,\)",
    ),
    "conv-after-dense": (lambda: [lw.Flatten(), lw.Dense(16), lw.Conv2D(4, 3)], r"layers\[2\].*Conv2D.*\(16,\)"),
    "pool-too-large": (
        lambda: [lw.Conv2D(4, 3), lw.MaxPool2D(2), lw.Conv2D(4, 3), lw.MaxPool2D(12)],
        r"layers\[3\].*MaxPool2D",
    ),
    "kernel-too-large": (lambda: [lw.Conv2D(4, 30)], r"layers\[0\].*Conv2D.*30x30"),
}


@pytest.mark.parametrize("case", SHAPE_ERRORS)
def test_shape_errors_name_the_layer(case):
    make, match = SHAPE_ERRORS[case]
    with pytest.raises(ShapeError, match=match):
        lw.Sequential(make(), input_shape=(1, 28, 28))


def test_dense_units_without_input_shape_asks_for_it():
    with pytest.raises(ConfigError, match="input_shape"):
        lw.Sequential([lw.Dense(10)])
    with pytest.raises(ConfigError, match="input_shape"):
        lw.Sequential([lw.Flatten(), lw.Dense(32), lw.ReLU(), lw.Dense(10)])


def test_a_layers_explicit_dtype_is_not_silently_cast():
    """An unbuilt layer given dtype=float64 makes the network float64, or clashes; it is never cast to float32."""
    net = lw.Sequential(
        [lw.Conv2D(2, 3), lw.BatchNorm(dtype=np.float64), lw.Flatten(), lw.Dense(4)], input_shape=(1, 5, 5)
    )
    assert net.dtype == np.float64 and net.flat_params.dtype == np.float64
    assert all(b.dtype == np.float64 for _, b in net.named_buffers())
    assert net.forward(np.ones((2, 1, 5, 5))).dtype == np.float64
    with pytest.raises(ConfigError, match="dtype"):
        lw.Sequential(
            [lw.Conv2D(2, 3, dtype=np.float64), lw.Flatten(), lw.Dense(4)], input_shape=(1, 5, 5), dtype="float32"
        )
    with pytest.raises(ConfigError, match="mix"):
        lw.Sequential([lw.Conv2D(2, 3, dtype=np.float64), lw.BatchNorm(dtype=np.float32)], input_shape=(1, 5, 5))


# ----------------------------------------------------------------------------- in-place safety

IN_PLACE = [lw.ReLU, lw.Sigmoid, lw.Tanh, lw.Softmax, lambda: lw.Dropout(0.5)]
IN_PLACE_IDS = ["ReLU", "Sigmoid", "Tanh", "Softmax", "Dropout"]


def image_net(make, where: str) -> tuple[list[lw.Layer], tuple[int, ...]]:
    if where == "first":
        layers = [make(), lw.Conv2D(3, 3, padding=1), lw.MaxPool2D(2), lw.Flatten(), lw.Dense(4)]
    elif where == "middle":
        layers = [lw.Conv2D(3, 3, padding=1), lw.MaxPool2D(2), make(), lw.Flatten(), lw.Dense(4)]
    elif where == "last":
        layers = [lw.Conv2D(3, 3, padding=1), lw.MaxPool2D(2), lw.Flatten(), lw.Dense(4), make()]
    elif where == "everywhere":
        layers = [
            make(),
            lw.Conv2D(3, 3, padding=1),
            make(),
            lw.MaxPool2D(2),
            make(),
            make(),
            lw.Flatten(),
            make(),
            lw.Dense(6),
            make(),
            lw.BatchNorm(),
            make(),
            lw.Dense(4),
            make(),
        ]
    else:  # "mlp": the flat path, adjacent in-place layers between Dense layers
        return [make(), lw.Dense(6), make(), make(), lw.Dense(5), make(), lw.Dense(4), make()], (7,)
    return layers, (2, 6, 6)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("where", ["first", "middle", "last", "everywhere", "mlp"])
@pytest.mark.parametrize("make", IN_PLACE, ids=IN_PLACE_IDS)
def test_forward_and_backward_never_modify_the_callers_arrays(make, where, training):
    layers, shape = image_net(make, where)
    net = lw.Sequential(layers, input_shape=shape, dtype=np.float64, seed=4)
    reference = lw.Sequential(image_net(make, where)[0], input_shape=shape, dtype=np.float64, seed=4)
    for layer in reference.layers:
        layer.inplace = False
    if where in ("middle", "everywhere", "mlp"):  # the planner gave some layer its in-place licence
        assert any(layer.inplace for layer in net.layers)
    rng = np.random.default_rng(5)
    handed_out = []  # (array, copy) of everything returned, checked again after the next passes
    for step in range(2):  # two passes on different data: nothing kept from the first may leak out later
        x = rng.standard_normal((3, *shape))
        dy = rng.standard_normal((3, *net.output_shape))
        x_copy, dy_copy = x.copy(), dy.copy()
        net.set_rng(np.random.default_rng(6 + step))
        reference.set_rng(np.random.default_rng(6 + step))
        y = net.forward(x, training=training)
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(y, reference.forward(x.copy(), training=training))
        handed_out.append((y, y.copy()))
        dx = net.backward(dy)
        np.testing.assert_array_equal(dy, dy_copy)
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(dx, reference.backward(dy.copy()))
        np.testing.assert_array_equal(net.flat_grads, reference.flat_grads)
        handed_out.append((dx, dx.copy()))
        for i, (array, copy) in enumerate(handed_out):  # outputs of this and earlier passes are the caller's now
            np.testing.assert_array_equal(array, copy, err_msg=f"returned array {i} changed by pass {step}")


def test_fit_does_not_modify_the_training_data():
    """Model.fit without shuffling hands the network views of x; a first in-place-capable layer must copy."""
    net = lw.Sequential([lw.Dropout(0.5), lw.ReLU(), lw.Flatten(), lw.Dense(10)], input_shape=(1, 4, 4), seed=0)
    x, y = random_data(32, (1, 4, 4))
    x -= 0.5
    x_copy = x.copy()
    lw.Model(net).fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_array_equal(x, x_copy)


# ----------------------------------------------------------------------------- Dropout in Model


def test_fit_with_dropout_is_reproducible_by_seed():
    x, y = random_data(64, (1, 10, 10), seed=2)

    def train(model_seed: int | None) -> np.ndarray:
        model = lw.Model(with_batchnorm(seed=7), optimizer=lw.optim.Adam(1e-3), seed=model_seed)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return model.net.flat_params.copy()

    first = train(None)
    np.testing.assert_array_equal(first, train(None))
    np.testing.assert_array_equal(train(3), train(3))
    assert not np.array_equal(first, train(3))  # another seed: other batches and masks


class RecordingDropout(lw.Dropout):
    """Dropout that remembers the ``training`` flag of every forward pass, and the masks it drew."""

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__(rate)
        self.calls: list[bool] = []
        self.masks: list[np.ndarray] = []

    def forward(self, x, training=False):
        self.calls.append(bool(training))
        y = super().forward(x, training)
        if training:
            self.masks.append(self.mask.copy())
        return y


def test_fit_trains_with_dropout_and_inference_runs_without():
    drop = RecordingDropout(0.5)
    net = lw.Sequential(
        [lw.Conv2D(4, 3), lw.ReLU(), lw.MaxPool2D(2), lw.Flatten(), drop, lw.Dense(10)], input_shape=(1, 10, 10), seed=1
    )
    model = lw.Model(net, optimizer=lw.optim.Adam(1e-3))
    x, y = random_data(40, (1, 10, 10), seed=3)
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    # One training pass per step (fit may add inference passes, e.g. to check the last update).
    assert drop.calls[:4] == [True] * 4 and drop.calls.count(True) == 4
    assert all(0.3 < np.mean(mask == 0) < 0.7 for mask in drop.masks)
    drop.calls.clear()
    loss, _ = model.evaluate(x, y)
    first = model.predict_logits(x)
    labels = model.predict(x)
    proba = model.predict_proba(x)
    assert drop.calls and not any(drop.calls)
    assert drop.mask is None
    np.testing.assert_array_equal(model.predict_logits(x), first)  # deterministic
    np.testing.assert_array_equal(labels, first.argmax(axis=1))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(first, net.forward(x, training=False))
    assert loss == pytest.approx(lw.CrossEntropyLogit().forward(first, y), rel=1e-6)
    # A training-mode pass really is different: the dropout noise shows in the outputs.
    assert not np.allclose(net.forward(x, training=True), first)
