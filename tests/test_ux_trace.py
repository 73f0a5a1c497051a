"""``net.trace()`` and forward/backward hooks: every layer's arrays of one step, and the step unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError
from layerwise.trace import Trace


def mlp() -> tuple[lw.Model, np.ndarray, np.ndarray]:
    net = lw.NeuralNetwork(784, [(32, "ReLU"), (16, "Sigmoid"), (10, "Linear")], seed=0, input_scale=1 / 255)
    rng = np.random.default_rng(0)
    return (
        lw.Model(net, optimizer=lw.optim.Adam(1e-2), seed=1),
        rng.integers(0, 256, (20, 784)),
        rng.integers(0, 10, 20),
    )


def cnn() -> tuple[lw.Model, np.ndarray, np.ndarray]:
    layers = [lw.Rescale(1 / 255), lw.Conv2D(4, 3, padding="same"), lw.BatchNorm(), lw.ReLU(), lw.MaxPool2D(2),
              lw.Dropout(0.25), lw.Flatten(), lw.Dense(12), lw.Tanh(), lw.Dense(10)]  # fmt: skip
    net = lw.Sequential(layers, input_shape=(1, 12, 12), seed=0)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (8, 1, 12, 12)).astype(np.uint8)
    return lw.Model(net, optimizer=lw.optim.SGD(0.1, momentum=0.9), seed=2), x, rng.integers(0, 10, 8)


@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
def test_trace_of_one_step_has_every_array_and_changes_nothing(make):
    traced, x, y = make()
    plain = make()[0]  # the same model, built again
    plain.train_on_batch(x, y)  # the step, unobserved (the plain passes: no hooks at all)
    assert plain.net._hooks is None
    inplace = [layer.inplace for layer in traced.net.layers]
    with traced.trace() as t:
        loss, _ = traced.train_on_batch(x, y)
    assert traced.net._hooks is None and [layer.inplace for layer in traced.net.layers] == inplace
    # bit for bit the same step
    np.testing.assert_array_equal(traced.net.flat_params, plain.net.flat_params)
    np.testing.assert_array_equal(traced.net.flat_grads, plain.net.flat_grads)
    for (name, a), (_, b) in zip(traced.net.named_buffers(), plain.net.named_buffers(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    net = traced.net
    assert len(t.layers) == len(net.layers)
    shape = (len(x), *net.input_shape)
    for i, (rec, layer) in enumerate(zip(t.layers, net.layers, strict=True)):
        out_shape = (len(x), *(net.shapes[i + 1] if i + 1 < len(net.layers) else net.output_shape))
        assert rec.index == i and rec.name == repr(layer) and rec.training is True
        assert rec.input.shape == shape and rec.output.shape == out_shape, (i, rec.name)
        assert rec.grad_output.shape == out_shape and rec.grad_input.shape == shape, (i, rec.name)
        assert set(rec.grads) == set(layer.params) == set(rec.params)
        for k, g in rec.grads.items():
            assert g.shape == layer.params[k].shape
            np.testing.assert_array_equal(g, layer.grads[k])  # the gradients the update used
        shape = out_shape
    # the chain: each layer's output is the next one's input, its dJ/dx the previous one's dJ/dy
    for a, b in zip(t.layers, t.layers[1:], strict=False):
        np.testing.assert_array_equal(a.output, b.input)
        np.testing.assert_array_equal(b.grad_input, a.grad_output)
    np.testing.assert_array_equal(t.layers[0].input, x)
    # the recorded output is the network's logits: the loss from them is the step's loss
    assert traced.loss.forward(t.layers[-1].output.astype(np.float64), y) == pytest.approx(loss, rel=1e-5)


def test_dense_pre_activation_survives_the_in_place_activation():
    model, x, y = mlp()
    relu = model.net.layers[2]
    assert relu.inplace  # the hot path overwrites the Dense output in place...
    with model.net.trace() as t:
        model.train_on_batch(x, y)
    dense, act = t.layers[1], t.layers[2]
    # ...but the trace keeps both: z = xW + b (with negatives) and relu(z)
    z = t.layers[1].input.astype(np.float32) @ dense.params["W"] + dense.params["b"]
    np.testing.assert_allclose(dense.output, z, rtol=1e-5, atol=1e-5)
    assert (dense.output < 0).any() and (act.output >= 0).all()
    np.testing.assert_array_equal(act.output, np.maximum(dense.output, 0))
    np.testing.assert_array_equal(act.grad_input, act.grad_output * (dense.output > 0))
    # the weights recorded are those before the update
    assert not np.array_equal(dense.params["W"], model.net.layers[1].W)
    assert "W" in t.summary() and t.summary().count("\n") == len(model.net.layers)


def test_trace_input_gradient_matches_finite_differences():
    """grad_input of layer 0 is dJ/dx: checked against central differences in float64."""
    net = lw.NeuralNetwork(5, [(4, "Tanh"), (3, "Linear")], seed=0, dtype=np.float64)
    model = lw.Model(net, optimizer=lw.optim.SGD(1e-300))  # a step that moves nothing
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 5)), np.array([0, 2, 1])
    with net.trace() as t:
        model.train_on_batch(x, y)
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        for sign in (1, -1):
            xp = x.copy()
            xp[idx] += sign * 1e-6
            numeric[idx] += sign * model.loss.forward(net.forward(xp), y) / 2e-6
    np.testing.assert_allclose(t.layers[0].grad_input, numeric, rtol=1e-6, atol=1e-9)


def test_last_forward_pass_wins_and_inference_is_traced_too():
    model, x, y = mlp()
    with model.trace() as t:
        model.train_on_batch(x, y)
        model.predict(x[:3])  # a later forward pass replaces the record; no backward after it
    assert isinstance(t, Trace) and t.layers[0].input.shape[0] == 3 and t.layers[0].training is False
    assert all(rec.grad_output is None for rec in t.layers)
    empty = model.trace()
    assert empty.layers == [] and "nothing traced" in empty.summary()


def test_hooks_pytorch_style_and_removal():
    model, x, y = mlp()
    net = model.net
    forward_calls, backward_calls = [], []
    h1 = net.register_forward_hook(lambda layer, inp, out: forward_calls.append((layer, inp.shape, out.shape)))
    h2 = net.register_backward_hook(lambda layer, gin, gout: backward_calls.append((layer, gin.shape, gout.shape)))
    model.train_on_batch(x, y)
    assert [c[0] for c in forward_calls] == net.layers
    assert [c[0] for c in backward_calls] == net.layers[::-1]
    assert backward_calls[-1][1] == (20, 784)  # every dx is computed inside hooks, down to the data's
    h1.remove()
    h1.remove()  # twice is harmless
    assert net._hooks is not None
    h2.remove()
    assert net._hooks is None  # back to the plain passes
    forward_calls.clear()
    model.train_on_batch(x, y)
    assert forward_calls == []
    with net.register_forward_hook(lambda *a: forward_calls.append(1)):
        net.forward(x[:2].astype(np.float32))
    assert len(forward_calls) == len(net.layers) and net._hooks is None
    with pytest.raises(ConfigError, match="expected a function"):
        net.register_forward_hook("print")


def test_internal_checks_are_not_traced():
    """fit's end-of-epoch divergence check runs a forward pass: a trace keeps the training step's."""
    model, x, y = mlp()
    with model.trace() as t:
        model.fit(x, y, epochs=1, batch_size=20, verbose=0)
    assert t.layers[0].training is True and t.layers[-1].grad_output is not None
