"""Silent mistakes made loud: input scaled twice or not at all, softmax under a logits loss, stacked linear layers.

Each case is the mistake as a user makes it (real MNIST pixels where the data is on
this machine, else pixel-like random data), and the correct version next to it must
stay silent.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import layerwise as lw
from layerwise.data import load
from layerwise.errors import ConfigError
from layerwise.guards import ArchitectureWarning, InputScaleWarning, LayerwiseWarning


@pytest.fixture(scope="module")
def pixels() -> tuple[np.ndarray, np.ndarray]:
    """256 MNIST training images as uint8 rows (n, 784) and their labels (random pixels without the data)."""
    try:
        (x, y), _ = load("mnist", download=False)
        return x[:256].reshape(256, 784), y[:256]
    except lw.errors.DatasetNotFoundError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (256, 784)).astype(np.uint8), rng.integers(0, 10, 256)


def mlp(input_scale: float | None) -> lw.Model:
    net = lw.NeuralNetwork(784, [(16, "ReLU"), (10, "Linear")], seed=0, input_scale=input_scale)
    return lw.Model(net, optimizer=lw.optim.Adam(1e-3))


def scale_warnings(model: lw.Model, x: np.ndarray, y: np.ndarray, how: str = "fit") -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if how == "fit":
            model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        else:
            model.train_on_batch(x[:32], y[:32])
    return [w for w in caught if issubclass(w.category, InputScaleWarning)]


def test_double_scaling_warns_once_per_fit_naming_the_fix(pixels):
    x, y = pixels
    caught = scale_warnings(mlp(1 / 255), x.astype(np.float32) / 255, y)
    assert len(caught) == 1, [str(w.message) for w in caught]  # two epochs, one warning
    message = str(caught[0].message)
    assert "already lie in [0, 1]" in message and "Rescale(scale=1/255)" in message and "0..255" in message
    assert caught[0].filename == __file__  # points at the user's line, not inside layerwise
    assert issubclass(InputScaleWarning, LayerwiseWarning) and issubclass(InputScaleWarning, UserWarning)
    assert len(scale_warnings(mlp(1 / 255), x.astype(np.float64) / 255, y, how="train_on_batch")) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int64])
def test_raw_pixels_without_rescale_warn(pixels, dtype):
    x, y = pixels
    caught = scale_warnings(mlp(None), x.astype(dtype), y)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "whole numbers from 0 to 255" in message and "input_scale=1/255" in message and "255" in message


def test_correctly_scaled_data_is_silent(pixels):
    x, y = pixels
    assert scale_warnings(mlp(1 / 255), x, y) == []  # raw uint8 into a Rescale: right
    assert scale_warnings(mlp(1 / 255), x.astype(np.float32), y) == []  # raw floats 0..255 into a Rescale
    assert scale_warnings(mlp(None), x.astype(np.float32) / 255, y) == []  # scaled data, no Rescale
    standardised = (x - x.mean()) / x.std()
    assert scale_warnings(mlp(None), standardised, y) == []
    # Small whole-number features (0/1 masks) are not pixels either.
    assert scale_warnings(mlp(None), (x > 127).astype(np.float32), y) == []
    # A first BatchNorm normalises whatever comes in.
    net = lw.Sequential([lw.BatchNorm(), lw.Dense(10)], input_shape=(784,), seed=0)
    assert scale_warnings(lw.Model(net), x, y) == []


def test_softmax_last_layer_under_logits_loss_is_refused(pixels):
    x, y = pixels
    net = lw.NeuralNetwork(784, [(16, "ReLU"), (10, "Softmax")], seed=0, input_scale=1 / 255)
    model = lw.Model(net)  # building it is fine: a Softmax network may be used for inference
    before = net.flat_params.copy()
    for train in (lambda: model.fit(x, y, epochs=1, verbose=0), lambda: model.train_on_batch(x[:8], y[:8])):
        with pytest.raises(ConfigError, match="last layer is Softmax") as info:
            train()
        assert "Linear" in str(info.value) and len(str(info.value)) < 200
    np.testing.assert_array_equal(net.flat_params, before)  # refused before any step
    # Softmax then Linear (the identity) is still softmax twice.
    net2 = lw.Sequential([lw.Dense(10), lw.Softmax(), lw.Linear()], input_shape=(784,), seed=0)
    with pytest.raises(ConfigError, match="Softmax"):
        lw.Model(net2).fit(x / 255, y, verbose=0)
    # A network that gives probabilities: predict_proba returns them, not a softmax of them.
    proba = model.predict_proba(x[:5])
    np.testing.assert_allclose(proba, model.predict_logits(x[:5]))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    # Under MSE (probabilities against one-hot rows) a Softmax output is legitimate.
    lw.Model(net, loss="mse").fit(x, np.eye(10)[y], epochs=1, verbose=0)


def test_sigmoid_last_layer_under_logistic_loss_is_refused():
    net = lw.NeuralNetwork(4, [(3, "Tanh"), (1, "Sigmoid")], seed=0)
    with pytest.raises(ConfigError, match="logistic applies the sigmoid itself"):
        lw.Model(net, loss="logistic").fit(np.ones((4, 4)) / 3, np.array([0, 1, 0, 1]), verbose=0)


@pytest.mark.parametrize(
    "arch",
    ["[(140,Linear),(10,Linear)]", [(140, "Linear"), (10, "Linear")], [(30, "ReLU"), (20, "Linear"), (10, "Linear")]],
)
def test_stacked_linear_layers_warn_at_construction(arch):
    with pytest.warns(ArchitectureWarning, match="no nonlinearity between them") as caught:
        lw.NeuralNetwork(784, arch, seed=0)
    assert "one linear layer" in str(caught[0].message) and caught[0].filename == __file__
    with pytest.warns(ArchitectureWarning, match="layers 0 and 3"):  # Dropout and Flatten are linear too
        lw.Sequential([lw.Dense(8), lw.Dropout(0.2), lw.Flatten(), lw.Dense(4)], input_shape=(5,))


@pytest.mark.parametrize(
    "make",
    [
        lambda: lw.NeuralNetwork(784, [(10, "Linear")], seed=0),  # the homework's single layer
        lambda: lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0, input_scale=1 / 255),
        lambda: lw.NeuralNetwork(2, [(2, "Linear")], init="zeros", dtype=np.float64),  # Problem 3
        lambda: lw.NeuralNetwork(784, [(100, "Sigmoid"), (50, "Tanh"), (10, "Linear")], seed=0),
        lambda: lw.Sequential(
            [lw.Conv2D(4, 3), lw.MaxPool2D(2), lw.Flatten(), lw.Dense(10)], input_shape=(1, 8, 8), seed=0
        ),
        lambda: lw.Sequential([lw.Dense(8), lw.BatchNorm(), lw.ReLU(), lw.Dense(3)], input_shape=(5,), seed=0),
    ],
    ids=["single-linear", "homework", "problem-3", "deep", "cnn", "batchnorm"],
)
def test_networks_with_nonlinearities_are_silent(make):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayerwiseWarning)
        make()
