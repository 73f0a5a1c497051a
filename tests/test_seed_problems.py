"""The seed homework's Problems 1-3, checked number for number."""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerwise as lw
from layerwise import optim
from layerwise.callbacks import Callback
from layerwise.compat import crossEntropyLogit

# ----------------------------------------------------------------------------- helpers


def closed_form_jacobian(z: np.ndarray) -> np.ndarray:
    """J[i, j] = dp_j/dz_i = p_j (delta_ij - p_i), written out entry by entry."""
    p = np.exp(z - z.max())
    p /= p.sum()
    n = len(z)
    return np.array([[p[j] * ((i == j) - p[i]) for j in range(n)] for i in range(n)])


def fd_jacobian(z: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central differences of softmax: row i is (p(z + h e_i) - p(z - h e_i)) / 2h.

    The step actually taken, (z_i + eps) - (z_i - eps), is used as the divisor, so
    the result stays accurate for logits around 1e3 where z_i + eps rounds.
    """
    n = len(z)
    J = np.empty((n, n))
    for i in range(n):
        zp, zm = z.copy(), z.copy()
        zp[i] += eps
        zm[i] -= eps
        J[i] = (lw.softmax(zp) - lw.softmax(zm)) / (zp[i] - zm[i])
    return J


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max()))


class SeedCrossEntropyLogit:
    """The seed's Problem 2(b) class, verbatim: arrays are (classes, samples)."""

    def __init__(self):
        self.p = np.zeros((1, 1))

    def doForward(self, z, y):
        newZ = z - np.max(z, axis=0)
        self.p = np.exp(newZ) / np.sum(np.exp(newZ), axis=0)
        J = -(np.sum(y * np.log(self.p))) / y.shape[1]
        return J

    def doBackward(self, y):
        return (self.p - y) / y.shape[1]


# ----------------------------------------------------------------------------- Problem 1


@pytest.mark.parametrize("n", [1, 2, 3, 10, 50])
@pytest.mark.parametrize("scale", [0.1, 1.0, 2.0, 5.0, 30.0])
def test_softmax_jacobian_matches_closed_form_and_finite_differences(n, scale, rng):
    for _ in range(3):
        z = rng.standard_normal(n) * scale
        J = lw.softmax_jacobian(z)
        assert J.shape == (n, n)
        assert J.dtype == np.float64
        np.testing.assert_allclose(J, closed_form_jacobian(z), rtol=1e-13, atol=1e-16)
        # Finite differences resolve p to ~1e-11 only: meaningful while J is not tiny,
        # i.e. for moderate logit gaps.  Larger scales are checked against the closed form.
        if n > 1 and scale <= 2.0:
            assert rel_err(J, fd_jacobian(z)) < 1e-7


def test_softmax_jacobian_orientation_is_dp_j_dz_i(rng):
    """J[i, j] = dp_j/dz_i: the seed's layout.  Symmetric anyway, but the diagonal is p(1-p)."""
    z = rng.standard_normal(6)
    p = lw.softmax(z)
    J = lw.softmax_jacobian(z)
    np.testing.assert_allclose(np.diag(J), p * (1 - p), rtol=1e-14)
    np.testing.assert_allclose(J, J.T, rtol=1e-14)
    # Each row sums to zero: the probabilities always sum to 1.
    np.testing.assert_allclose(J.sum(axis=1), 0, atol=1e-16)


@pytest.mark.parametrize("batch,n", [(1, 4), (7, 3), (16, 10)])
def test_softmax_jacobian_batched(batch, n, rng):
    Z = rng.standard_normal((batch, n)) * 3
    J = lw.softmax_jacobian(Z)
    assert J.shape == (batch, n, n)
    for b in range(batch):
        np.testing.assert_allclose(J[b], closed_form_jacobian(Z[b]), rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(J[b], lw.softmax_jacobian(Z[b]), rtol=0, atol=0)
        assert rel_err(J[b], fd_jacobian(Z[b])) < 1e-7


@pytest.mark.parametrize("shape", [(8,), (5, 8)])
def test_softmax_jacobian_saturated_logits_of_size_1e3(shape, rng):
    """z * 1000: p is (nearly) one-hot, the Jacobian (nearly) zero -- but finite and exact."""
    Z = rng.standard_normal(shape) * 1000
    J = lw.softmax_jacobian(Z)
    assert np.isfinite(J).all()
    rows = Z.reshape(-1, shape[-1])
    for b, z in enumerate(rows):
        Jb = J.reshape(-1, shape[-1], shape[-1])[b]
        np.testing.assert_allclose(Jb, closed_form_jacobian(z), rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(Jb.sum(axis=1), 0, atol=1e-15)
    p = lw.softmax(Z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1, rtol=1e-15)


@pytest.mark.parametrize("offset", [1e3, -1e3])
def test_softmax_jacobian_finite_differences_at_logits_of_size_1e3(offset, rng):
    """Logits near +-1000 that are not saturated: FD is meaningful and must agree."""
    for _ in range(3):
        z = offset + rng.standard_normal(6) * 2
        J = lw.softmax_jacobian(z)
        assert np.isfinite(J).all()
        assert np.abs(J).max() > 1e-3  # really not saturated
        np.testing.assert_allclose(J, closed_form_jacobian(z), rtol=1e-12, atol=1e-16)
        assert rel_err(J, fd_jacobian(z)) < 1e-7
        # Shift invariance: the Jacobian only depends on differences of logits.
        np.testing.assert_allclose(J, lw.softmax_jacobian(z - offset), rtol=1e-10, atol=1e-14)


def test_softmax_jacobian_batched_large_scale_matches_rows(rng):
    Z = 1000 + rng.standard_normal((4, 5))
    J = lw.softmax_jacobian(Z)
    for b in range(4):
        assert rel_err(J[b], fd_jacobian(Z[b])) < 1e-7


# ----------------------------------------------------------------------------- Problem 2


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n)[labels]


@pytest.mark.parametrize("m,n", [(1, 2), (5, 3), (32, 10)])
@pytest.mark.parametrize("targets", ["labels", "one_hot"])
def test_cross_entropy_backward_is_p_minus_y_over_m(m, n, targets, rng):
    z = rng.standard_normal((m, n)) * 3
    labels = rng.integers(0, n, m)
    Y = one_hot(labels, n)
    y = labels if targets == "labels" else Y
    loss = lw.CrossEntropyLogit()
    J = loss.forward(z, y)
    p = lw.softmax(z, axis=1)
    np.testing.assert_allclose(J, -np.mean(np.log(p[np.arange(m), labels])), rtol=1e-13)
    dz = loss.backward()
    assert dz.shape == (m, n)
    np.testing.assert_allclose(dz, (p - Y) / m, rtol=1e-13, atol=1e-17)
    # The seed's doForward / doBackward names give the same numbers.
    loss2 = lw.CrossEntropyLogit()
    assert loss2.doForward(z, y) == J
    np.testing.assert_array_equal(loss2.doBackward(y), dz)


@pytest.mark.parametrize("targets", ["labels", "one_hot"])
@pytest.mark.parametrize("shift", [1000.0, -1000.0, 1e4])
def test_cross_entropy_is_shift_invariant(targets, shift, rng):
    z = rng.standard_normal((16, 5)) * 2
    labels = rng.integers(0, 5, 16)
    y = labels if targets == "labels" else one_hot(labels, 5)
    loss = lw.CrossEntropyLogit()
    J0, dz0 = loss.forward(z, y), loss.backward()
    J1, dz1 = loss.forward(z + shift, y), loss.backward()
    tol = 1e-12 if abs(shift) <= 1000 else 1e-11  # z + 1e4 itself rounds at 2e-12
    assert abs(J1 - J0) <= tol
    np.testing.assert_allclose(dz1, dz0, atol=tol)


@pytest.mark.parametrize("targets", ["labels", "one_hot"])
def test_cross_entropy_huge_logits_are_finite_and_exact(targets):
    z = np.array([[1e4, -1e4], [1e4, -1e4], [-1e4, 1e4], [0.0, 1e4]])
    labels = np.array([0, 1, 1, 0])
    y = labels if targets == "labels" else one_hot(labels, 2)
    loss = lw.CrossEntropyLogit()
    J = loss.forward(z, y)
    dz = loss.backward()
    assert math.isfinite(J)
    assert np.isfinite(dz).all()
    # Per sample: 0, 2e4, 0, 1e4  -> mean 7500.
    assert pytest.approx(7500.0, rel=1e-15) == J
    expected = (np.array([[1, 0], [1, 0], [0, 1], [0, 1]]) - one_hot(labels, 2)) / 4
    np.testing.assert_allclose(dz, expected, atol=1e-300)


@pytest.mark.parametrize("sign", [1, -1])
def test_cross_entropy_random_logits_of_1e4_never_nan(sign, rng):
    z = sign * rng.uniform(-1e4, 1e4, (64, 10))
    labels = rng.integers(0, 10, 64)
    for y in (labels, one_hot(labels, 10)):
        loss = lw.CrossEntropyLogit()
        J = loss.forward(z, y)
        assert math.isfinite(J) and J >= 0
        assert np.isfinite(loss.backward()).all()
    assert np.isfinite(lw.softmax(z, axis=1)).all()


@pytest.mark.parametrize("classes,samples", [(2, 1), (3, 4), (10, 32)])
def test_compat_cross_entropy_logit_matches_the_seeds_class(classes, samples, rng):
    z = rng.standard_normal((classes, samples)) * 4
    Y = one_hot(rng.integers(0, classes, samples), classes).T  # (classes, samples)
    seed, mine = SeedCrossEntropyLogit(), crossEntropyLogit()
    J_seed, J_mine = seed.doForward(z, Y), mine.doForward(z, Y)
    assert abs(J_seed - J_mine) < 1e-12
    d_seed, d_mine = seed.doBackward(Y), mine.doBackward(Y)
    assert d_mine.shape == (classes, samples)
    np.testing.assert_allclose(d_mine, d_seed, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.p, seed.p, rtol=0, atol=1e-12)


def test_compat_cross_entropy_logit_soft_targets_match_the_seed(rng):
    z = rng.standard_normal((4, 6))
    Y = rng.dirichlet(np.ones(4), 6).T  # probability columns
    seed, mine = SeedCrossEntropyLogit(), crossEntropyLogit()
    assert abs(seed.doForward(z, Y) - mine.doForward(z, Y)) < 1e-12
    np.testing.assert_allclose(mine.doBackward(Y), seed.doBackward(Y), atol=1e-12)


# ----------------------------------------------------------------------------- Problem 3

LOSS_1 = math.log(2)  # 0.693147
LOSS_2 = math.log1p(math.exp(-0.5))  # 0.474077
W_1 = np.array([[0.25, -0.25], [-0.25, 0.25]])
W_2_ENTRY = 0.25 + (1 - 1 / (1 + math.exp(-0.5))) / 2  # 0.43877...


class RecordWeights(Callback):
    def __init__(self) -> None:
        self.W: list[np.ndarray] = []
        self.b: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        dense = self.model.net.layers[0]
        self.W.append(dense.W.copy())
        self.b.append(dense.b.copy())


def seed_model(dtype):
    net = lw.NeuralNetwork(2, [(2, "Linear")], init="zeros", dtype=dtype)
    return lw.Model(net, loss="crossEntropyLogit", optimizer=optim.SGD(lr=1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("targets", ["one_hot", "labels"])
def test_problem3_two_iterations(dtype, targets):
    model = seed_model(dtype)
    dense = model.net.layers[0]
    np.testing.assert_array_equal(dense.W, 0)
    X = np.eye(2, dtype=dtype)
    Y = np.eye(2) if targets == "one_hot" else np.array([0, 1])
    rec = RecordWeights()
    history = model.fit(X, Y, epochs=2, batch_size=2, shuffle=False, callbacks=[rec], verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2
    assert losses[0] == pytest.approx(0.693147, abs=1e-6)
    assert losses[1] == pytest.approx(0.474077, abs=1e-6)
    assert losses[0] == pytest.approx(LOSS_1, abs=1e-6)
    assert losses[1] == pytest.approx(LOSS_2, abs=1e-6)
    assert history.history["accuracy"] == [0.5, 1.0]  # ties argmax to class 0 at W = 0
    tight = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(rec.W[0], W_1, atol=tight)
    np.testing.assert_allclose(rec.W[1], [[0.4388, -0.4388], [-0.4388, 0.4388]], atol=1e-4)
    np.testing.assert_allclose(rec.W[1], W_2_ENTRY * np.array([[1, -1], [-1, 1]]), atol=tight)
    # b stays 0: db sums (p - y)/m over the two samples, which cancel (up to rounding).
    for b in rec.b:
        np.testing.assert_allclose(b, 0, atol=tight * 1e-1)
    np.testing.assert_array_equal(dense.W, rec.W[1])
    assert dense.W.dtype == dtype and dense.b.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_problem3_one_step_then_another_fit_continues(dtype):
    model = seed_model(dtype)
    X, Y = np.eye(2, dtype=dtype), np.eye(2)
    h1 = model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    dense = model.net.layers[0]
    np.testing.assert_allclose(dense.W, W_1, atol=1e-7)
    np.testing.assert_array_equal(dense.b, 0)  # first step: p = 1/2 exactly, db = 0 exactly
    assert h1.history["loss"] == [pytest.approx(LOSS_1, abs=1e-6)]
    h2 = model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    assert h2.history["loss"] == [pytest.approx(LOSS_2, abs=1e-6)]
    np.testing.assert_allclose(dense.W, [[0.4388, -0.4388], [-0.4388, 0.4388]], atol=1e-4)
    np.testing.assert_allclose(dense.b, 0, atol=1e-7)


def test_problem3_by_hand_with_the_seed_names():
    """The same two iterations driven manually through doForward / doBackward."""
    net = lw.NeuralNetwork(2, [(2, "Linear")], init="zeros", dtype=np.float64)
    loss = lw.CrossEntropyLogit()
    X, Y = np.eye(2), np.eye(2)
    dense = net.layers[0]
    expected_J = [LOSS_1, LOSS_2]
    for it in range(2):
        z = net.doForward(X)
        assert loss.doForward(z, Y) == pytest.approx(expected_J[it], abs=1e-15)
        net.doBackward(loss.doBackward(Y))
        if it == 0:
            np.testing.assert_allclose(dense.dW, [[-0.25, 0.25], [0.25, -0.25]], atol=1e-15)
        np.testing.assert_allclose(dense.db, 0, atol=1e-15)
        optim.SGD(lr=1.0).step(net.parameters(), net.gradients())
        if it == 0:
            np.testing.assert_allclose(dense.W, W_1, atol=1e-15)
    np.testing.assert_allclose(dense.W, W_2_ENTRY * np.array([[1, -1], [-1, 1]]), atol=1e-15)
