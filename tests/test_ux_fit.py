"""Keras habits that work: validation_split, class/sample weights (against PyTorch), batch hooks,
train_on_batch, LearningRateScheduler(epoch, lr), evaluate(return_dict=True), validation on the bar."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import layerwise as lw
from layerwise.callbacks import Callback, LearningRateScheduler
from layerwise.errors import ConfigError, InputError, ShapeError
from layerwise.schedules import StepDecay


def blobs(n: int = 120, n_in: int = 6, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, n_in)) * 2
    return centres[y] + rng.standard_normal((n, n_in)), y


def model64(seed: int = 0, optimizer: lw.optim.Optimizer | None = None, loss: str = "crossEntropyLogit") -> lw.Model:
    out = 1 if loss == "logistic" else 3
    net = lw.NeuralNetwork(6, [(5, "Tanh"), (out, "Linear")], seed=seed, dtype=np.float64)
    return lw.Model(net, loss=loss, optimizer=optimizer or lw.optim.SGD(0.1))


# -- validation_split -------------------------------------------------------------------------
def test_validation_split_is_the_last_fraction_as_keras():
    x, y = blobs(101)
    split = int(101 * (1 - 0.2))  # Keras: the first int(n·(1 − split)) samples train
    a, b = model64(), model64()
    ha = a.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
    hb = b.fit(x[:split], y[:split], epochs=3, batch_size=16, validation_data=(x[split:], y[split:]), verbose=0)
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)
    assert ha.history == {k: v for k, v in hb.history.items() if k != "seconds"} | {"seconds": ha.history["seconds"]}
    assert ha.params["samples"] == split == 80 and len(ha.history["val_loss"]) == 3
    assert ha.history["val_loss"][-1] == pytest.approx(b.evaluate(x[split:], y[split:])[0])


def test_validation_split_errors():
    x, y = blobs(20)
    model = model64()
    with pytest.raises(ConfigError, match="either validation_data or validation_split"):
        model.fit(x, y, validation_split=0.1, validation_data=(x, y), verbose=0)
    for bad in (1.0, -0.1, 1.5, "0.1", True):
        with pytest.raises(ConfigError, match="validation_split"):
            model.fit(x, y, validation_split=bad, verbose=0)
    with pytest.raises(ConfigError, match="leaves no training samples"):
        model.fit(x, y, validation_split=0.99, verbose=0)


def test_verbose_1_shows_validation_metrics_on_the_bar_line(capsys):
    x, y = blobs(200)
    model64().fit(x, y, epochs=2, batch_size=50, validation_split=0.25, verbose=1)
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("Epoch")]
    for epoch in (1, 2):
        last = [line for line in lines if line.startswith(f"Epoch {epoch}/2")][-1]  # the line left on screen
        assert "val_loss=" in last and "val_acc=" in last and "loss=" in last, last
    model64().fit(x, y, epochs=1, batch_size=50, verbose=1)
    assert "val_" not in capsys.readouterr().err


# -- weights, against PyTorch -------------------------------------------------------------------
def torch_loss_and_grads(model: lw.Model, x: np.ndarray, y: np.ndarray, loss_fn) -> tuple[float, list[np.ndarray]]:
    """The same two-layer network in torch (float64, same weights): loss and [dW0, db0, dW1, db1]."""
    d1, d2 = model.net.layers[0], model.net.layers[2]
    params = [torch.tensor(p.copy(), requires_grad=True) for p in (d1.W, d1.b, d2.W, d2.b)]
    z = torch.tanh(torch.tensor(x) @ params[0] + params[1]) @ params[2] + params[3]
    loss = loss_fn(z)
    loss.backward()
    return loss.item(), [p.grad.numpy() for p in params]


def check_step(model: lw.Model, x, y, loss_fn, **weights) -> None:
    """train_on_batch's loss and the gradients it stepped with equal torch's to 1e-6 (rel) / 1e-9 (abs)."""
    expected_loss, expected_grads = torch_loss_and_grads(model, x, y, loss_fn)
    loss, _ = model.train_on_batch(x, y, **weights)
    assert loss == pytest.approx(expected_loss, rel=1e-6, abs=1e-12)
    for mine, theirs in zip(model.net.gradients(), expected_grads, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-9)


def test_class_weight_matches_torch_weighted_cross_entropy():
    x, y = blobs(40)
    class_weight = {0: 0.2, 1: 3.0, 2: 1.5}
    w = torch.tensor([class_weight[k] for k in range(3)], dtype=torch.float64)
    yt = torch.tensor(y)
    loss_fn = lambda z: torch.nn.CrossEntropyLoss(weight=w)(z, yt)  # noqa: E731  (reduction="mean": Σwℓ/Σw)
    check_step(model64(), x, y, loss_fn, class_weight=class_weight)
    # one-hot targets give the same
    check_step(model64(), x, np.eye(3)[y], loss_fn, class_weight=class_weight)
    # a class left out weighs 1
    partial = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64)
    check_step(model64(), x, y, lambda z: torch.nn.CrossEntropyLoss(weight=partial)(z, yt), class_weight={1: 4})


def test_sample_weight_is_the_weighted_mean_of_per_sample_losses():
    """Chosen semantics: Σ wᵢℓᵢ / Σ wᵢ (as class weights); with class_weight too, the weights multiply."""
    x, y = blobs(40)
    rng = np.random.default_rng(1)
    sw = rng.uniform(0, 2, 40)
    sw[:5] = 0
    yt, swt = torch.tensor(y), torch.tensor(sw)
    per_sample = lambda z: torch.nn.functional.cross_entropy(z, yt, reduction="none")  # noqa: E731
    check_step(model64(), x, y, lambda z: (per_sample(z) * swt).sum() / swt.sum(), sample_weight=sw)
    both = swt * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)[yt]
    check_step(
        model64(), x, y, lambda z: (per_sample(z) * both).sum() / both.sum(), sample_weight=sw,
        class_weight={0: 2.0, 2: 0.5},
    )  # fmt: skip
    # scaling every weight changes nothing
    a, b = model64(), model64()
    a.train_on_batch(x, y, sample_weight=sw)
    b.train_on_batch(x, y, sample_weight=sw * 7)
    np.testing.assert_allclose(a.net.flat_params, b.net.flat_params, rtol=1e-12)


@pytest.mark.parametrize("loss", ["logistic", "mse"])
def test_sample_weight_for_other_losses_matches_torch(loss):
    x, y = blobs(30, classes=2)
    sw = np.random.default_rng(2).uniform(0.1, 3, 30)
    swt = torch.tensor(sw)
    if loss == "logistic":
        yt = torch.tensor(y, dtype=torch.float64)[:, None]
        per = lambda z: torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")[:, 0]  # noqa: E731
        target = y
    else:
        target = np.eye(3)[y]
        per = lambda z: ((z - torch.tensor(target)) ** 2).mean(dim=1)  # noqa: E731
    check_step(model64(loss=loss), x, target, lambda z: (per(z) * swt).sum() / swt.sum(), sample_weight=sw)


def test_fit_with_weights_and_evaluate_with_weights():
    x, y = blobs(64)
    sw = np.random.default_rng(3).uniform(0, 2, 64)
    a, b = model64(), model64()
    a.fit(x, y, epochs=1, batch_size=64, shuffle=False, sample_weight=sw, verbose=0)
    b.train_on_batch(x, y, sample_weight=sw)
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)
    # evaluate: Σ wℓ / Σ w over all samples, whatever the batch size; accuracy unweighted
    yt, swt = torch.tensor(y), torch.tensor(sw)
    expected, _ = torch_loss_and_grads(
        a, x, y, lambda z: (torch.nn.functional.cross_entropy(z, yt, reduction="none") * swt).sum() / swt.sum()
    )
    for batch_size in (7, 64):
        loss, acc = a.evaluate(x, y, batch_size=batch_size, sample_weight=sw)
        assert loss == pytest.approx(expected, rel=1e-10) and acc == a.evaluate(x, y)[1]
    result = a.evaluate(x, y, return_dict=True)
    assert set(result) == {"loss", "accuracy"} and (result["loss"], result["accuracy"]) == a.evaluate(x, y)
    regression = lw.Model(lw.NeuralNetwork(6, [(1, "Linear")], seed=0, dtype=np.float64), loss="mse")
    assert set(regression.evaluate(x, x[:, 0], return_dict=True)) == {"loss"}  # no accuracy for regression


def test_weight_errors_name_the_argument():
    x, y = blobs(10)
    model = model64()
    with pytest.raises(ShapeError, match=r"sample_weight: expected shape \(10,\)"):
        model.fit(x, y, sample_weight=np.ones(9), verbose=0)
    with pytest.raises(InputError, match="sample_weight: expected finite weights >= 0"):
        model.train_on_batch(x, y, sample_weight=-np.ones(10))
    with pytest.raises(InputError, match="every weight is zero"):
        model.evaluate(x, y, sample_weight=np.zeros(10))
    with pytest.raises(ConfigError, match="class_weight: keys must be class labels 0..2"):
        model.fit(x, y, class_weight={3: 1.0}, verbose=0)
    with pytest.raises(ConfigError, match="class_weight: expected a dict"):
        model.fit(x, y, class_weight=[1, 2, 3], verbose=0)
    with pytest.raises(ConfigError, match="needs a classification loss"):
        model64(loss="mse").fit(x, np.eye(3)[y], class_weight={0: 2}, verbose=0)


# -- batch hooks, train_on_batch ------------------------------------------------------------------
class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch, dict(logs or {})))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, dict(logs or {}), self.model.net.flat_params.copy()))


def test_batch_hooks_are_called_once_per_batch_with_the_batch_logs():
    x, y = blobs(50)
    rec = Recorder()
    model = model64()
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, callbacks=[rec], verbose=0)
    # 4 batches per epoch (16, 16, 16, 2), each begin then end, numbered from 0 in each epoch
    assert [(c[0], c[1]) for c in rec.calls] == [(k, b) for _ in range(2) for b in range(4) for k in ("begin", "end")]
    sizes = [c[2]["size"] for c in rec.calls if c[0] == "end"]
    assert sizes == [16, 16, 16, 2] * 2 and [c[2] for c in rec.calls if c[0] == "begin"][3] == {"size": 2}
    # the logs are that batch's loss and accuracy before its update: replay with train_on_batch
    replay = model64()
    ends = [c for c in rec.calls if c[0] == "end"]
    for i, (_, batch, logs, weights_after) in enumerate(ends):
        lo = batch * 16
        loss, acc = replay.train_on_batch(x[lo : lo + 16], y[lo : lo + 16])
        assert logs == {"size": sizes[i], "loss": loss, "accuracy": acc}
        np.testing.assert_array_equal(replay.net.flat_params, weights_after)
    # the epoch's loss is the batch-size-weighted mean of the batch losses
    first = [c[2] for c in ends[:4]]
    expected = sum(c["loss"] * c["size"] for c in first) / 50
    assert model.history.history["loss"][0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["mlp-dropout", "cnn-batchnorm"])
def test_train_on_batch_equals_one_step_of_fit(kind):
    rng = np.random.default_rng(4)
    if kind == "mlp-dropout":
        layers, shape = [lw.Dense(12), lw.ReLU(), lw.Dropout(0.3), lw.Dense(3)], (6,)
    else:
        layers = [lw.Conv2D(3, 3), lw.BatchNorm(), lw.ReLU(), lw.MaxPool2D(2), lw.Flatten(), lw.Dense(3)]
        shape = (1, 8, 8)
    x = rng.standard_normal((24, *shape)).astype(np.float32)
    y = rng.integers(0, 3, 24)

    def make() -> lw.Model:
        import copy

        net = lw.Sequential(copy.deepcopy(layers), input_shape=shape, seed=3)
        return lw.Model(net, optimizer=lw.optim.Adam(1e-2), seed=5)

    a, b = make(), make()
    a.fit(x, y, epochs=1, batch_size=24, shuffle=False, verbose=0)
    loss, acc = b.train_on_batch(x, y)
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)
    for (name, buf_a), (_, buf_b) in zip(a.net.named_buffers(), b.net.named_buffers(), strict=True):
        np.testing.assert_array_equal(buf_a, buf_b, err_msg=name)
    assert loss == a.history.history["loss"][0] and acc == a.history.history["accuracy"][0]
    # and a second step: the optimizer state (Adam's t, moments) and the dropout stream carry on alike
    a.fit(x, y, epochs=1, batch_size=24, shuffle=False, verbose=0)
    b.train_on_batch(x, y)
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)
    assert b.train_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_train_on_batch_divergence_keeps_finite_weights():
    """SGD lr=1e30 on float32 (as tests/test_divergence.py): the second step's loss is NaN."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 784)).astype(np.float32) / 255, rng.integers(0, 10, 16)
    model = lw.Model(lw.NeuralNetwork(784, [(16, "ReLU"), (10, "Linear")], seed=0), optimizer=lw.optim.SGD(1e30))
    initial = model.net.flat_params.copy()
    model.train_on_batch(x, y)
    with pytest.raises(lw.errors.DivergenceError, match="in train_on_batch") as info:
        model.train_on_batch(x, y)
    assert "learning rate" in str(info.value)
    np.testing.assert_array_equal(model.net.flat_params, initial)  # the weights whose outputs are finite


# -- LearningRateScheduler --------------------------------------------------------------------
def test_learning_rate_scheduler_takes_epoch_or_epoch_and_lr():
    x, y = blobs(20)
    seen: list[tuple[int, float]] = []

    def keras_style(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5

    model = model64(optimizer=lw.optim.SGD(0.1))
    model.fit(x, y, epochs=3, callbacks=[LearningRateScheduler(keras_style)], verbose=0)
    assert seen == [(0, 0.1), (1, 0.05), (2, 0.025)] and model.history.history["lr"] == [0.05, 0.025, 0.0125]
    model = model64(optimizer=lw.optim.SGD(0.1))
    model.fit(x, y, epochs=3, callbacks=[LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], verbose=0)
    assert model.history.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    model.fit(x, y, epochs=3, callbacks=[LearningRateScheduler(StepDecay(0.2, 1, 0.5))], verbose=0)
    assert model.history.history["lr"] == [0.2, 0.1, 0.05]
    model.fit(x, y, epochs=2, callbacks=[LearningRateScheduler(lambda epoch, lr=None: 0.3)], verbose=0)
    assert model.history.history["lr"] == [0.3, 0.3]
    for bad in (lambda: 0.1, lambda a, b, c: 0.1):
        with pytest.raises(ConfigError, match=r"schedule\(epoch\) or schedule\(epoch, lr\)"):
            LearningRateScheduler(bad)
    assert not math.isnan(model.evaluate(x, y)[0])
