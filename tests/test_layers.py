"""Layers: forward values, backward semantics, in-place behaviour and the seed's names."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError, ShapeError
from layerwise.layers import ACTIVATIONS, get_activation, layer_from_config

REFERENCE = {
    lw.Linear: lambda x: x,
    lw.ReLU: lambda x: np.maximum(x, 0),
    lw.Sigmoid: lambda x: 1 / (1 + np.exp(-x)),
    lw.Tanh: np.tanh,
    lw.Softmax: lambda x: (
        np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)
    ),
}
DERIVATIVE = {  # dJ/dx for dJ/dy = dy, element-wise activations only
    lw.Linear: lambda x, dy: dy,
    lw.ReLU: lambda x, dy: dy * (x > 0),
    lw.Sigmoid: lambda x, dy: dy * np.exp(-x) / (1 + np.exp(-x)) ** 2,
    lw.Tanh: lambda x, dy: dy / np.cosh(x) ** 2,
}


@pytest.mark.parametrize("cls", list(REFERENCE))
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_forward_backward_values(cls, inplace, dtype, rng):
    x = (rng.standard_normal((6, 5)) * 3).astype(dtype)
    dy = rng.standard_normal((6, 5)).astype(dtype)
    x_ref, dy_ref = x.astype(np.float64), dy.astype(np.float64)
    layer = cls(inplace=inplace)
    x_in, dy_in = x.copy(), dy.copy()
    y = layer.forward(x_in)
    assert y.shape == x.shape and y.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(y, REFERENCE[cls](x_ref), rtol=tol, atol=tol)
    if cls is not lw.Linear:
        # In place means the input buffer is reused; otherwise it is left untouched.
        assert np.shares_memory(y, x_in) == inplace
        if not inplace:
            np.testing.assert_array_equal(x_in, x)
    dx = layer.backward(dy_in)
    assert dx.shape == x.shape and dx.dtype == dtype
    if cls is lw.Softmax:
        # Problem 1 in action: dx = J @ dy with J[i, j] = dp_j/dx_i, row by row.
        J = lw.softmax_jacobian(x_ref)
        expected = np.einsum("bij,bj->bi", J, dy_ref)
    else:
        expected = DERIVATIVE[cls](x_ref, dy_ref)
    np.testing.assert_allclose(dx, expected, rtol=10 * tol, atol=10 * tol)
    if cls not in (lw.Linear,) and not inplace:
        np.testing.assert_array_equal(dy_in, dy)


def test_logistic_is_sigmoid():
    assert lw.Logistic is lw.Sigmoid


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_softmax_do_not_overflow(dtype):
    x = np.array([[-1e4, 0.0, 1e4], [1e3, -1e3, 50.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = lw.Sigmoid().forward(x.copy())
        p = lw.Softmax().forward(x.copy())
    np.testing.assert_allclose(y[0], [0, 0.5, 1], atol=0)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(p[0], [0, 0, 1], atol=0)


def test_relu_gradient_is_zero_at_and_below_zero():
    layer = lw.ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0, 0, 1]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_forward_and_backward(dtype, rng):
    layer = lw.Dense(4, 3, rng=0, dtype=dtype)
    assert layer.W.shape == (4, 3) and layer.b.shape == (3,)
    assert layer.W.dtype == dtype and layer.b.dtype == dtype
    np.testing.assert_array_equal(layer.b, 0)
    layer.b = np.array([1.0, -2.0, 0.5])
    x = rng.standard_normal((5, 4)).astype(dtype)
    y = layer.forward(x)
    assert y.shape == (5, 3) and y.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, x @ layer.W + layer.b, rtol=tol, atol=tol)
    dy = rng.standard_normal((5, 3)).astype(dtype)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ layer.W.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.dW, x.T @ dy, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.db, dy.sum(0), rtol=tol, atol=tol)
    # Gradients are overwritten, not accumulated.
    layer.forward(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.dW, x.T @ dy, rtol=tol, atol=tol)
    assert layer.backward(dy, need_dx=False) is None


def test_dense_seed_names_and_assignment_copies(rng):
    layer = lw.Dense(3, 2, dtype=np.float64)
    W_before = layer.params["W"]
    new = rng.standard_normal((3, 2))
    layer.W = new
    assert layer.params["W"] is W_before  # copied into the existing array
    np.testing.assert_array_equal(layer.W, new)
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(layer.doForward(x), layer.forward(x))
    dy = rng.standard_normal((4, 2))
    np.testing.assert_array_equal(layer.doBackward(dy), dy @ new.T)
    with pytest.raises(ShapeError):
        layer.W = np.zeros((2, 3))


@pytest.mark.parametrize("init", ["he", "xavier", "uniform", "zeros"])
def test_dense_initialisers(init):
    layer = lw.Dense(200, 100, init=init, rng=0, dtype=np.float64)
    W = layer.W
    if init == "zeros":
        np.testing.assert_array_equal(W, 0)
    elif init == "he":
        assert W.std() == pytest.approx(np.sqrt(2 / 200), rel=0.05)
    elif init == "xavier":
        assert np.abs(W).max() <= np.sqrt(6 / 300)
        assert W.std() == pytest.approx(np.sqrt(2 / 300), rel=0.05)
    else:
        assert W.min() >= 0 and W.max() <= 0.1
    # Same seed, same weights; float32 equals float64 up to rounding.
    np.testing.assert_array_equal(W, lw.Dense(200, 100, init=init, rng=0, dtype=np.float64).W)
    np.testing.assert_array_equal(lw.Dense(200, 100, init=init, rng=0, dtype=np.float32).W, W.astype(np.float32))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_dense_rejects_bad_sizes(bad):
    with pytest.raises(ConfigError):
        lw.Dense(bad, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rescale_takes_uint8(dtype):
    layer = lw.Rescale(1 / 255, dtype=dtype)
    x = np.array([[0, 128, 255]], dtype=np.uint8)
    y = layer.forward(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, [[0, 128 / 255, 1]], rtol=1e-6)
    np.testing.assert_allclose(layer.backward(np.ones((1, 3), dtype)), np.full((1, 3), 1 / 255), rtol=1e-6)
    assert layer.params == {}


@pytest.mark.parametrize(
    "name", ["ReLU", "relu", "RELU", "Linear", "identity", "Sigmoid", "logistic", "tanh", "softmax"]
)
def test_get_activation_names(name):
    cls = get_activation(name)
    assert cls is ACTIVATIONS[name.lower()]
    assert get_activation(cls) is cls
    assert get_activation(cls()) is cls


@pytest.mark.parametrize("name", ["gelu", "", None, 3])
def test_get_activation_unknown(name):
    with pytest.raises(ConfigError):
        get_activation(name)


@pytest.mark.parametrize(
    "layer",
    [lw.Dense(3, 2), lw.ReLU(), lw.Sigmoid(inplace=True), lw.Tanh(), lw.Softmax(), lw.Linear(), lw.Rescale(0.5)],
    ids=repr,
)
def test_layer_from_config_round_trip(layer):
    rebuilt = layer_from_config(layer.config(), dtype=np.float64)
    assert type(rebuilt) is type(layer)
    assert rebuilt.config() == layer.config()
    for p in rebuilt.params.values():
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p, 0)


def test_layer_from_config_unknown():
    with pytest.raises(ConfigError):
        layer_from_config({"type": "Conv2D"})


def test_batchnorm_gives_the_same_numbers_for_either_memory_layout():
    # BatchNorm works on (batch·H·W, C) rows: a view of the channels-last memory a Conv2D hands
    # on, a copy of NCHW memory.  Both give the same numbers, and the output (and dx) keep
    # channels-last memory for the next layer.
    from layerwise.layers import _fast

    rng = np.random.default_rng(5)
    nchw = rng.standard_normal((3, 4, 5, 6))
    last = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dy = rng.standard_normal(nchw.shape)
    results = []
    for x in (nchw, last):
        bn = lw.BatchNorm(dtype=np.float64)
        bn.build((4, 5, 6))
        bn.params["gamma"][...] = [0.5, 1.5, 2.0, -1.0]
        bn.params["beta"][...] = [0.1, 0.2, 0.3, 0.4]
        y = bn.forward(x, training=True)
        dx = bn.backward(dy)
        assert _fast.is_channels_last(y) and _fast.is_channels_last(dx)
        assert np.array_equal(x, nchw)  # the caller's array is untouched
        results.append((y, dx, bn.grads["gamma"].copy(), bn.buffers["running_var"].copy()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # and the per-channel formulas themselves, on the NCHW axes
    mean, var = nchw.mean(axis=(0, 2, 3)), nchw.var(axis=(0, 2, 3))
    expected = (nchw - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    expected = expected * np.array([0.5, 1.5, 2.0, -1.0])[:, None, None] + np.array([0.1, 0.2, 0.3, 0.4])[:, None, None]
    np.testing.assert_allclose(results[0][0], expected, rtol=1e-10, atol=1e-12)
