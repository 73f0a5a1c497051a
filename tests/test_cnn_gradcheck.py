"""The CNN layers' backward passes against central finite differences (float64, rel. err < 1e-6).

Only the public layer API is used (constructor, build, forward, backward, params,
grads), so these tests cover whichever implementation a layer runs internally.
"""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise.gradcheck import numerical_gradient

TOL = 1e-6


def assert_small(errors: dict[str, float], expected_keys: set[str], tol: float = TOL) -> None:
    assert set(errors) == expected_keys, f"checked {sorted(errors)}, expected {sorted(expected_keys)}"
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"gradient errors above {tol}: {bad}"


def distinct(rng: np.random.Generator, shape: tuple[int, ...], spacing: float = 0.01) -> np.ndarray:
    """Random values at least ``spacing`` apart: max pooling has no ties, so finite differences are well defined."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2).reshape(shape) * spacing


def randomise(layer: lw.Layer, rng: np.random.Generator) -> None:
    """Non-trivial parameters (zero biases, unit gammas would hide mistakes)."""
    for p in layer.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if p.ndim == 1 and "gamma" in layer.params else 0.0)


# ----------------------------------------------------------------------------- Conv2D

CONV_CASES = [
    # filters, kernel_size, stride, padding, x shape (batch, C, H, W)
    (2, 3, 1, 0, (2, 3, 7, 9)),
    (3, 3, 2, 0, (2, 2, 7, 9)),
    (2, 3, 1, 1, (1, 3, 7, 9)),
    (2, 3, 2, 1, (2, 1, 7, 9)),
    (3, 3, 1, "same", (2, 2, 7, 9)),
    (2, 3, 2, "same", (1, 2, 7, 9)),
    (2, (2, 4), 2, "same", (2, 2, 7, 9)),  # even kernel, stride 2: asymmetric padding
    (2, (2, 4), 1, "same", (1, 1, 6, 5)),
    (3, (3, 2), 1, "valid", (2, 2, 7, 9)),
    (2, (1, 3), (2, 1), (1, 0), (2, 3, 5, 8)),  # per-axis stride and padding
    (2, 5, 1, 0, (1, 1, 5, 5)),  # kernel covers the whole image: 1x1 output
    (4, 1, 1, 0, (2, 3, 4, 3)),  # 1x1 convolution: a Dense layer per pixel
    (1, 3, 3, 2, (2, 2, 8, 7)),  # stride equal to the kernel, padding larger than 1
    (3, 2, 2, 0, (1, 5, 7, 9)),  # odd size, stride 2: the last row and column fall off
]


@pytest.mark.parametrize(("filters", "kernel", "stride", "padding", "shape"), CONV_CASES)
def test_conv2d_gradients(filters, kernel, stride, padding, shape):
    rng = np.random.default_rng(len(shape) + filters)
    layer = lw.Conv2D(filters, kernel, stride=stride, padding=padding, rng=1, dtype=np.float64)
    layer.build(shape[1:])
    randomise(layer, rng)
    x = rng.standard_normal(shape)
    out = layer.forward(x.copy())
    assert out.shape == (shape[0], *layer.output_shape(shape[1:]))
    assert_small(lw.gradcheck(layer, x, seed=3), {"x", "W", "b"})


def test_conv2d_gradients_in_a_network_with_skipped_input_gradient():
    """The first Conv2D skips dx in training; its dW and db must still be right."""
    rng = np.random.default_rng(5)
    net = lw.Sequential([lw.Conv2D(3, 3, stride=2, padding="same"), lw.Tanh()], input_shape=(2, 7, 9), dtype=np.float64)
    randomise(net.layers[0], rng)
    x = rng.standard_normal((2, 2, 7, 9))
    dy = rng.standard_normal((2, 3, 4, 5))
    net.forward(x, training=True)
    assert net.backward(dy, need_input_grad=False) is None
    skipped = {k: g.copy() for k, g in net.layers[0].grads.items()}
    net.forward(x, training=True)
    net.backward(dy)
    for k, g in net.layers[0].grads.items():
        np.testing.assert_array_equal(skipped[k], g)
    assert_small(lw.gradcheck(net, x), {"x", "0.W", "0.b"})


# ----------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("pool_cls", [lw.MaxPool2D, lw.AvgPool2D])
@pytest.mark.parametrize(
    ("pool", "stride", "shape"),
    [
        (2, None, (2, 3, 6, 6)),
        (2, None, (2, 2, 7, 9)),  # odd sizes: the last row/column is dropped
        (3, None, (1, 2, 7, 9)),
        (2, 1, (2, 2, 5, 6)),  # overlapping windows: one pixel feeds several outputs
        (3, 1, (1, 3, 7, 9)),
        (3, 2, (2, 2, 7, 9)),
        (2, 2, (1, 1, 7, 7)),
        ((2, 3), (1, 2), (2, 2, 6, 9)),  # non-square windows and strides
    ],
)
def test_pool_gradients(pool_cls, pool, stride, shape):
    rng = np.random.default_rng(7)
    layer = pool_cls(pool, stride)
    x = distinct(rng, shape)
    assert layer.forward(x.copy()).shape == (shape[0], *layer.output_shape(shape[1:]))
    errors = lw.gradcheck(layer, x, seed=1)
    assert_small(errors, {"x"})


def test_maxpool_sends_each_gradient_to_the_largest_value():
    """A hand-made case: dx is dy at the argmax of each window, zero elsewhere; overlapping windows add up."""
    x = np.array([[[[1.0, 5.0, 2.0], [4.0, 3.0, 0.0], [7.0, 6.0, 8.0]]]])
    layer = lw.MaxPool2D(2, stride=1)
    y = layer.forward(x.copy())
    np.testing.assert_array_equal(y, [[[[5.0, 5.0], [7.0, 8.0]]]])
    dx = layer.backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 11.0, 0.0], [0.0, 0.0, 0.0], [100.0, 0.0, 1000.0]]]])


# ----------------------------------------------------------------------------- Flatten, Dropout


def test_flatten_gradients():
    rng = np.random.default_rng(2)
    assert_small(lw.gradcheck(lw.Flatten(), rng.standard_normal((3, 2, 4, 5))), {"x"})


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_dropout_gradients_training_with_fixed_mask(rate):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 30))
    layer = lw.Dropout(rate)
    layer.rng = np.random.default_rng(11)
    state = layer.rng.bit_generator.state
    assert_small(lw.gradcheck(layer, x, training=True), {"x"})
    # The check really ran in training mode: the mask dropped something, and the generator is back.
    assert layer.mask is not None and (layer.mask == 0).any() and (layer.mask > 0).any()
    assert layer.rng.bit_generator.state == state


def test_dropout_gradients_inference_is_identity():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 7))
    layer = lw.Dropout(0.5)
    assert_small(lw.gradcheck(layer, x), {"x"})
    np.testing.assert_array_equal(layer.forward(x.copy()), x)


def test_gradcheck_detects_a_wrong_dropout_backward():
    """Training-mode gradcheck can fail: a backward that forgets the mask is caught."""

    class Maskless(lw.Dropout):
        def backward(self, dy, need_dx=True):
            return dy / (1 - self.rate)

    rng = np.random.default_rng(4)
    errors = lw.gradcheck(Maskless(0.5), rng.standard_normal((5, 8)), training=True)
    assert errors["x"] > 0.1


# ----------------------------------------------------------------------------- BatchNorm


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
# (Not batch 2 of 1x1 images: with two values per channel x̂ = ±1 whatever x is, dJ/dx is pure eps.)
@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 4, 5), (3, 3, 1, 1)], ids=["2d", "4d", "4d-1x1"])
def test_batchnorm_gradients(shape, training):
    rng = np.random.default_rng(8)
    layer = lw.BatchNorm(dtype=np.float64)
    layer.build(shape[1:])
    randomise(layer, rng)
    layer.buffers["running_mean"][...] = rng.standard_normal(shape[1])
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, shape[1])
    before = {k: b.copy() for k, b in layer.buffers.items()}
    x = rng.standard_normal(shape) * 2 + 1
    assert_small(lw.gradcheck(layer, x, training=training), {"x", "gamma", "beta"})
    # gradcheck puts the running statistics back after its many training-mode passes.
    for k, b in layer.buffers.items():
        np.testing.assert_array_equal(b, before[k])


def test_batchnorm_inference_gradient_differs_from_training():
    """The two modes really differ (a layer ignoring ``training`` would pass each check only by luck)."""
    rng = np.random.default_rng(9)
    layer = lw.BatchNorm(dtype=np.float64)
    layer.build((3,))
    x = rng.standard_normal((5, 3))
    dy = rng.standard_normal((5, 3))
    layer.forward(x.copy(), training=True)
    dx_train = layer.backward(dy.copy())
    layer.buffers["running_var"][...] = 4.0
    layer.forward(x.copy(), training=False)
    dx_infer = layer.backward(dy.copy())
    np.testing.assert_allclose(dx_infer, dy / np.sqrt(4.0 + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(dx_train.sum(axis=0), 0, atol=1e-12)  # batch statistics remove the mean
    assert not np.allclose(dx_train, dx_infer)


# ----------------------------------------------------------------------------- a whole CNN


def small_cnn(seed: int = 0) -> lw.Sequential:
    net = lw.Sequential(
        [
            lw.Conv2D(3, 3),
            lw.ReLU(),
            lw.MaxPool2D(2),
            lw.Conv2D(4, 3, padding=1),
            lw.BatchNorm(),
            lw.ReLU(),
            lw.AvgPool2D(2),
            lw.Flatten(),
            lw.Dropout(0.3),
            lw.Dense(5),
        ],
        input_shape=(1, 10, 10),
        dtype=np.float64,
        seed=seed,
    )
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:
        randomise(layer, rng)
    bn = net.layers[4]
    bn.buffers["running_mean"][...] = rng.standard_normal(4) * 0.1
    bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, 4)
    net.set_rng(np.random.default_rng(seed + 200))
    return net


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_whole_cnn_with_cross_entropy(training):
    net = small_cnn()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 10, 10))
    labels = np.array([0, 3, 4])
    loss = lw.CrossEntropyLogit()
    errors = lw.gradcheck(net, x, labels, loss=loss, training=training)
    names = {"x", *(name for name, _ in net.named_parameters())}
    assert {"4.gamma", "4.beta", "0.W", "3.W", "9.W"} <= names
    if training:
        # Batch statistics remove any per-channel constant, so the bias of the Conv2D feeding
        # BatchNorm has an exactly-zero gradient; a relative error of two zeros is noise.
        bias = net.layers[3].grads["b"]
        assert np.abs(bias).max() < 1e-12
        state = net.layers[8].rng.bit_generator.state

        def f() -> float:
            net.layers[8].rng.bit_generator.state = state
            return loss.forward(net.forward(x.copy(), training=True), labels)

        assert np.abs(numerical_gradient(f, net.layers[3].params["b"])).max() < 1e-8
        errors.pop("3.b")
        names.discard("3.b")
    assert_small(errors, names)
