"""Issue 5, item 2 (and issue 9, item 6): a diverging run stops with a clear error and keeps
weights whose outputs are finite.

Two ways to diverge are covered: weights that are huge but finite make the
loss overflow, and an update that overflows the weights themselves to inf/NaN.
Either way the model goes back to the weights from before that update (or those of
the last completed epoch), which predict finite outputs on the batch that diverged.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import layerwise as lw
from layerwise.callbacks import Callback
from layerwise.errors import DivergenceError, LayerwiseError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point here


@pytest.fixture(scope="module")
def mnist_like():
    """64 random 'images' of 784 pixels in [0, 1] with 10 classes: the shape of MNIST."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 784)).astype(np.float32) / 255
    y = rng.integers(0, 10, 64)
    return x, y


def make_model(optimizer, dtype=np.float32) -> lw.Model:
    net = lw.NeuralNetwork(784, [(16, "ReLU"), (10, "Linear")], seed=0, dtype=dtype)
    return lw.Model(net, optimizer=optimizer)


def diverge(model: lw.Model, x, y, **kw) -> DivergenceError:
    args = {"epochs": 3, "batch_size": 16, "verbose": 0, **kw}
    with pytest.raises(DivergenceError) as info:
        model.fit(x, y, **args)
    err = info.value
    assert isinstance(err, LayerwiseError) and isinstance(err, FloatingPointError)
    assert "diverged" in str(err) and "learning rate" in str(err)
    return err


def test_huge_but_finite_weights_overflow_the_loss(mnist_like):
    """SGD lr=1e30: after one step the weights are ~1e29 (finite); the next loss is NaN.

    Those weights are finite but useless (every prediction NaN): the model goes back to
    the weights from before that step, which are the initial ones.
    """
    x, y = mnist_like
    model = make_model(lw.optim.SGD(1e30))
    initial = model.net.flat_params.copy()
    err = diverge(model, x, y)
    assert re.search(r"at epoch 1, step 2\b", str(err)), str(err)
    assert "nan" in str(err) or "inf" in str(err)
    assert "whose outputs on that batch are finite" in str(err)
    params = model.net.flat_params
    np.testing.assert_array_equal(params, initial)
    assert np.isfinite(model.predict_logits(x)).all()
    for p in model.net.parameters():  # the per-layer views agree with the flat buffer
        assert np.isfinite(p).all()


@pytest.mark.parametrize(
    "optimizer",
    [lw.optim.SGD(1e39), lw.optim.SGD(1e39, momentum=0.9), lw.optim.Adam(1e38), lw.optim.RMSProp(1e38)],
    ids=["sgd", "sgd-momentum", "adam", "rmsprop"],
)
def test_overflowed_weights_are_restored_from_the_snapshot(mnist_like, optimizer):
    """lr beyond float32's range: step 1's update makes every weight inf or NaN; fit undoes it."""
    x, y = mnist_like
    model = make_model(optimizer)
    initial = model.net.flat_params.copy()
    err = diverge(model, x, y)
    assert re.search(r"at epoch 1, step 2\b", str(err)), str(err)
    assert "weights from before the last update, whose outputs on that batch are finite" in str(err)
    assert np.isfinite(model.net.flat_params).all()
    # The last finite weights are those from before step 1: the initial ones.
    np.testing.assert_array_equal(model.net.flat_params, initial)


def test_overflow_on_the_last_update_of_training_is_caught(mnist_like):
    """One step per epoch, one epoch: no later loss would ever see the inf weights.

    Before the end-of-epoch check, fit returned normally with NaN weights.
    """
    x, y = mnist_like
    model = make_model(lw.optim.SGD(1e39))
    initial = model.net.flat_params.copy()
    err = diverge(model, x, y, epochs=1, batch_size=len(x))
    assert "epoch 1" in str(err)
    np.testing.assert_array_equal(model.net.flat_params, initial)


class BlowUpAfter(Callback):
    """At the end of epoch ``epoch`` remember the weights, then set an absurd learning rate."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.weights: np.ndarray | None = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.weights = self.model.net.flat_params.copy()
            self.model.optimizer.lr = 1e39


def test_error_names_a_later_epoch_and_keeps_that_epochs_weights(mnist_like):
    x, y = mnist_like
    model = make_model(lw.optim.SGD(0.01))
    blow_up = BlowUpAfter(epoch=1)  # 0-based: the second epoch trains fine
    err = diverge(model, x, y, epochs=5, callbacks=[blow_up])
    # Epoch 3 (1-based): its first update overflows, its second step sees the NaN loss.
    assert re.search(r"at epoch 3, step 2\b", str(err)), str(err)
    assert model.history is not None and len(model.history.history["loss"]) == 2
    np.testing.assert_array_equal(model.net.flat_params, blow_up.weights)


def test_float64_network_diverges_cleanly(mnist_like):
    x, y = mnist_like
    model = make_model(lw.optim.SGD(1e200), dtype=np.float64)
    err = diverge(model, x, y)
    assert "epoch 1" in str(err)
    assert np.isfinite(model.net.flat_params).all()


def test_model_is_usable_after_divergence(mnist_like, tmp_path):
    """Finite weights mean the model still predicts, saves and loads (load refuses NaN)."""
    x, y = mnist_like
    model = make_model(lw.optim.SGD(1e39, momentum=0.9))
    diverge(model, x, y)
    assert np.isfinite(model.predict_proba(x)).all()
    model.save(tmp_path / "after.npz")
    loaded = lw.load(tmp_path / "after.npz")
    np.testing.assert_array_equal(loaded.net.flat_params, model.net.flat_params)
    # ... and training can go on with a sane learning rate.
    model.optimizer = lw.optim.SGD(0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(model.net.flat_params).all()


def test_sane_learning_rate_does_not_trip_the_check(mnist_like):
    x, y = mnist_like
    model = make_model(lw.optim.SGD(0.05))
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert len(history.history["loss"]) == 3
    assert all(np.isfinite(history.history["loss"]))
