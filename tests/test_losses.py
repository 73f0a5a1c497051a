"""Losses: values, gradients, shapes, stability and names."""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError
from layerwise.losses import get_loss


def ref_logistic(z: np.ndarray, y: np.ndarray) -> float:
    p = 1 / (1 + np.exp(-z))
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_logistic_values_and_gradient(shape, rng):
    z = rng.standard_normal(shape) * 3
    y = rng.integers(0, 2, shape).astype(np.float64)
    loss = lw.LogisticLoss()
    J = loss.forward(z, y)
    assert pytest.approx(ref_logistic(z, y), rel=1e-12) == J
    dz = loss.backward()
    assert dz.shape == z.shape
    np.testing.assert_allclose(dz, (1 / (1 + np.exp(-z)) - y) / 7, rtol=1e-12, atol=1e-17)


def test_logistic_accepts_column_or_flat_targets(rng):
    z = rng.standard_normal((5, 1))
    y = rng.uniform(0, 1, 5)
    a, b = lw.LogisticLoss(), lw.LogisticLoss()
    assert a.forward(z, y) == b.forward(z, y[:, None])
    np.testing.assert_array_equal(a.backward(), b.backward())


def test_logistic_is_stable_for_huge_logits():
    z = np.array([[1e4], [-1e4], [1e4], [-1e4]])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    loss = lw.LogisticLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        J = loss.forward(z, y)
        dz = loss.backward()
    assert pytest.approx(5000.0, rel=1e-15) == J  # per sample: 0, 0, 1e4, 1e4
    np.testing.assert_allclose(dz[:, 0], [0, 0, 0.25, -0.25], atol=1e-300)


def test_mse_values_and_gradient(rng):
    z = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 3))
    loss = lw.MSE()
    assert loss.forward(z, y) == pytest.approx(np.mean((z - y) ** 2), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), 2 * (z - y) / z.size, rtol=1e-14)


def test_mse_single_output_flat_targets(rng):
    z = rng.standard_normal((6, 1))
    y = rng.standard_normal(6)
    loss = lw.MSE()
    assert loss.forward(z, y) == pytest.approx(np.mean((z[:, 0] - y) ** 2), rel=1e-14)
    assert loss.backward().shape == (6, 1)


def test_cross_entropy_with_probability_targets(rng):
    z = rng.standard_normal((5, 4))
    y = rng.dirichlet(np.ones(4), 5)
    loss = lw.CrossEntropyLogit()
    p = lw.softmax(z, axis=1)
    assert loss.forward(z, y) == pytest.approx(-np.mean(np.sum(y * np.log(p), axis=1)), rel=1e-13)
    np.testing.assert_allclose(loss.backward(), (p - y) / 5, rtol=1e-13, atol=1e-17)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_keeps_dtype(dtype, rng):
    z = rng.standard_normal((4, 3)).astype(dtype)
    loss = lw.CrossEntropyLogit()
    assert isinstance(loss.forward(z, np.array([0, 1, 2, 0])), float)
    assert loss.backward().dtype == dtype


def test_accuracy():
    z = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert lw.CrossEntropyLogit().accuracy(z, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert lw.CrossEntropyLogit().accuracy(z, np.eye(2)[[0, 1, 0]]) == 1.0
    assert lw.LogisticLoss().accuracy(np.array([[1.0], [-1.0]]), np.array([1.0, 1.0])) == 0.5
    assert lw.MSE().accuracy(z, np.array([0, 1, 0])) == 1.0
    assert math.isnan(lw.MSE().accuracy(np.zeros((3, 1)), np.zeros(3)))


@pytest.mark.parametrize(
    "name,cls",
    [
        ("crossEntropyLogit", lw.CrossEntropyLogit),
        ("cross_entropy", lw.CrossEntropyLogit),
        ("CATEGORICAL-CROSSENTROPY", lw.CrossEntropyLogit),
        ("logistic", lw.LogisticLoss),
        ("binary_crossentropy", lw.LogisticLoss),
        ("MSE", lw.MSE),
        ("mean_squared_error", lw.MSE),
    ],
)
def test_get_loss_names(name, cls):
    assert type(get_loss(name)) is cls
    assert type(get_loss(cls)) is cls
    inst = cls()
    assert get_loss(inst) is inst


@pytest.mark.parametrize("name", ["hinge", "", None, 1])
def test_get_loss_unknown(name):
    with pytest.raises(ConfigError):
        get_loss(name)


def test_mse_on_class_labels_is_mse_on_their_one_hot_rows(rng):
    """(n,) integer labels for a multi-output network mean classes: the same step as with one-hot targets."""
    x = rng.normal(size=(20, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=20)
    models = []
    for targets in (labels, np.eye(3, dtype=np.float32)[labels]):
        net = lw.Sequential([lw.Dense(5), lw.ReLU(), lw.Dense(3)], input_shape=(4,), seed=3)
        model = lw.Model(net, loss="mse", optimizer="sgd", seed=0)
        history = model.fit(x, targets, epochs=2, batch_size=8, verbose=0)
        models.append((model, history.history["loss"]))
    (a, loss_a), (b, loss_b) = models
    assert loss_a == loss_b
    assert all(np.array_equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters(), strict=True))
    assert a.evaluate(x, labels) == b.evaluate(x, np.eye(3, dtype=np.float32)[labels])
    with pytest.raises(lw.errors.LabelError, match="y"):  # labels still checked against the outputs
        a.fit(x, np.full(20, 3), verbose=0)
