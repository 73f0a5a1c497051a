"""Every backward pass against central finite differences (float64, rel. err < 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import DTypeError
from layerwise.gradcheck import numerical_gradient, relative_error

TOL = 1e-6


def away_from_kinks(x: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    """ReLU's derivative jumps at 0; keep inputs where a finite difference is meaningful."""
    x = x.copy()
    x[np.abs(x) < margin] = 0.5
    return x


def assert_small(errors: dict[str, float], tol: float = TOL) -> None:
    assert errors, "gradcheck returned nothing"
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"gradient errors above {tol}: {bad}"


@pytest.mark.parametrize(
    "make",
    [
        lambda: lw.Linear(),
        lambda: lw.ReLU(),
        lambda: lw.Sigmoid(),
        lambda: lw.Logistic(),
        lambda: lw.Tanh(),
        lambda: lw.Softmax(),
        lambda: lw.Linear(inplace=True),
        lambda: lw.ReLU(inplace=True),
        lambda: lw.Sigmoid(inplace=True),
        lambda: lw.Tanh(inplace=True),
        lambda: lw.Softmax(inplace=True),
        lambda: lw.Rescale(0.37, dtype=np.float64),
        lambda: lw.Dense(5, 3, rng=0, dtype=np.float64),
        lambda: lw.Dense(1, 7, init="xavier", rng=1, dtype=np.float64),
    ],
    ids=[
        "Linear",
        "ReLU",
        "Sigmoid",
        "Logistic",
        "Tanh",
        "Softmax",
        "Linear-inplace",
        "ReLU-inplace",
        "Sigmoid-inplace",
        "Tanh-inplace",
        "Softmax-inplace",
        "Rescale",
        "Dense",
        "Dense-1in",
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_layer_gradients(make, seed):
    layer = make()
    n_in = layer.n_in if isinstance(layer, lw.Dense) else 5
    rng = np.random.default_rng(seed)
    x = away_from_kinks(rng.standard_normal((4, n_in)) * 2)
    if isinstance(layer, lw.Dense):
        layer.b = rng.standard_normal(layer.n_out)
    errors = lw.gradcheck(layer, x, seed=seed)
    expected_keys = {"x", *layer.params}
    assert set(errors) == expected_keys
    assert_small(errors)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("targets", ["labels", "one_hot", "soft"])
def test_cross_entropy_gradient(targets, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((6, 4)) * 2
    labels = rng.integers(0, 4, 6)
    y = {"labels": labels, "one_hot": np.eye(4)[labels], "soft": rng.dirichlet(np.ones(4), 6)}[targets]
    assert_small(lw.gradcheck(lw.CrossEntropyLogit(), z, y))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_logistic_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * 2
    y = rng.uniform(0, 1, shape)
    assert_small(lw.gradcheck(lw.LogisticLoss(), z, y))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mse_gradient(seed):
    rng = np.random.default_rng(seed)
    assert_small(lw.gradcheck(lw.MSE(), rng.standard_normal((5, 3)), rng.standard_normal((5, 3))))


ARCHITECTURES = [
    [(4, "Tanh"), (3, "Linear")],
    [(6, "ReLU"), (5, "Sigmoid"), (3, "Linear")],
    [(4, "Sigmoid"), (6, "Tanh"), (5, "ReLU"), (4, "Softmax"), (3, "Linear")],
    [(3, "Softmax"), (4, "Tanh"), (2, "Linear")],
    [(5, "Logistic"), (1, "Linear")],
]


def make_targets(loss, rng, m, n_out):
    if isinstance(loss, lw.CrossEntropyLogit):
        return rng.integers(0, n_out, m)
    if isinstance(loss, lw.LogisticLoss):
        return rng.uniform(0, 1, (m, n_out))
    return rng.standard_normal((m, n_out))


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: "-".join(f"{u}{n}" for u, n in a))
@pytest.mark.parametrize("loss", [None, "crossEntropyLogit", "logistic", "mse"])
def test_network_gradients(arch, loss):
    if loss == "logistic" and arch[-1][0] != 1:
        arch = [*arch[:-1], (1, "Linear")]
    rng = np.random.default_rng(7)
    net = lw.NeuralNetwork(5, arch, seed=3, dtype=np.float64)
    for layer in net.layers:  # nonzero biases exercise db
        if isinstance(layer, lw.Dense):
            layer.b = rng.standard_normal(layer.n_out) * 0.3
    x = rng.standard_normal((7, 5))
    loss_obj = None if loss is None else lw.losses.get_loss(loss)
    y = None if loss_obj is None else make_targets(loss_obj, rng, 7, net.n_outputs)
    errors = lw.gradcheck(net, x, y, loss=loss_obj)
    assert set(errors) == {"x", *(name for name, _ in net.named_parameters())}
    assert_small(errors)


def test_network_with_rescale_and_one_hot_targets():
    rng = np.random.default_rng(0)
    net = lw.NeuralNetwork(6, [(5, "Tanh"), (4, "Linear")], seed=0, dtype=np.float64, input_scale=1 / 3)
    x = rng.standard_normal((5, 6)) * 3
    y = np.eye(4)[rng.integers(0, 4, 5)]
    assert_small(lw.gradcheck(net, x, y, loss=lw.CrossEntropyLogit()))


def test_sequential_of_explicit_layers():
    rng = np.random.default_rng(1)
    net = lw.Sequential(
        [lw.Dense(3, 4, rng=0, dtype=np.float64), lw.Tanh(), lw.Dense(4, 4, rng=1, dtype=np.float64), lw.Softmax()]
    )
    assert_small(lw.gradcheck(net, rng.standard_normal((5, 3))))


# ----------------------------------------------------------------------------- negative tests


def test_broken_activation_backward_is_detected(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    assert_small(lw.gradcheck(lw.Tanh(), x))
    monkeypatch.setattr(lw.Tanh, "backward", lambda self, dy: dy * (1 - self.y))  # forgot the square
    assert lw.gradcheck(lw.Tanh(), x)["x"] > 1e-2


def test_broken_dense_weight_gradient_is_detected(monkeypatch):
    rng = np.random.default_rng(0)
    net = lw.NeuralNetwork(4, [(3, "Tanh"), (2, "Linear")], seed=0, dtype=np.float64)
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 2, 5)
    assert_small(lw.gradcheck(net, x, y, loss=lw.CrossEntropyLogit()))
    original = lw.Dense.backward

    def off_by_one_percent(self, dy, need_dx=True):
        dx = original(self, dy, need_dx)
        self.grads["W"] *= 1.01
        return dx

    monkeypatch.setattr(lw.Dense, "backward", off_by_one_percent)
    errors = lw.gradcheck(net, x, y, loss=lw.CrossEntropyLogit())
    assert errors["0.W"] > 1e-3 and errors["2.W"] > 1e-3
    assert errors["0.b"] < TOL  # bias gradients are untouched and still pass


def test_broken_loss_backward_is_detected(monkeypatch):
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((8, 3)), rng.integers(0, 3, 8)
    monkeypatch.setattr(lw.CrossEntropyLogit, "backward", lambda self: self.p - np.eye(3)[self.y])  # no 1/m
    assert lw.gradcheck(lw.CrossEntropyLogit(), z, y)["x"] > 0.5


def test_broken_softmax_backward_is_detected(monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.setattr(lw.Softmax, "backward", lambda self, dy: dy * self.y * (1 - self.y))  # diagonal only
    assert lw.gradcheck(lw.Softmax(), rng.standard_normal((3, 4)))["x"] > 1e-2


def test_gradcheck_refuses_float32_parameters():
    with pytest.raises(DTypeError):
        lw.gradcheck(lw.Dense(3, 2), np.ones((2, 3)))


def test_numerical_gradient_and_relative_error_helpers():
    a = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda: float(np.sum(a**3)), a)
    np.testing.assert_allclose(g, 3 * a**2, rtol=1e-8)
    np.testing.assert_array_equal(a, [1.0, -2.0, 3.0])  # restored after perturbing
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 2.2)
    assert relative_error(np.zeros(2), np.zeros(2)) == 0
