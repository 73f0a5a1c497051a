"""layerwise against PyTorch: losses, every gradient, and optimizer steps.

torch is a test dependency: without it these tests skip locally but fail when
the environment variable CI is set.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise import optim

try:
    import torch
    import torch.nn.functional as F  # noqa: N812 (the usual name)
except ImportError:  # pragma: no cover - exercised only where torch is missing
    if os.environ.get("CI"):
        raise
    pytest.skip("torch is not installed (set CI=1 to make this an error)", allow_module_level=True)

torch.set_num_threads(1)

# ----------------------------------------------------------------------------- networks

TORCH_ACTIVATION = {
    lw.Linear: lambda t: t,
    lw.ReLU: torch.relu,
    lw.Sigmoid: torch.sigmoid,
    lw.Tanh: torch.tanh,
    lw.Softmax: lambda t: torch.softmax(t, dim=1),
}


def to_torch(net: lw.Sequential):
    """A torch forward function with nn.Linear copies of the Dense layers: (forward, [(dense, linear)])."""
    steps, pairs = [], []
    for layer in net.layers:
        if isinstance(layer, lw.Dense):
            lin = torch.nn.Linear(layer.n_in, layer.n_out, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))  # torch: (out, in)
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
            steps.append(lin)
            pairs.append((layer, lin))
        elif isinstance(layer, lw.Rescale):
            steps.append(lambda t, s=layer.scale: t * s)
        else:
            steps.append(TORCH_ACTIVATION[type(layer)])

    def forward(t):
        for step in steps:
            t = step(t)
        return t

    return forward, pairs


ARCHITECTURES = [
    [(8, "ReLU"), (4, "Linear")],
    [(7, "Tanh"), (6, "Sigmoid"), (4, "Linear")],
    [(9, "Sigmoid"), (8, "ReLU"), (5, "Softmax"), (4, "Linear")],
    [(6, "Softmax"), (6, "Tanh"), (5, "ReLU"), (4, "Linear")],
    [(12, "ReLU"), (10, "ReLU"), (4, "Tanh")],
]


def targets(loss: str, rng, m: int, n_out: int, one_hot: bool):
    """(numpy targets for layerwise, torch targets)."""
    if loss == "crossEntropyLogit":
        labels = rng.integers(0, n_out, m)
        if one_hot:
            Y = np.eye(n_out)[labels]
            return Y, torch.from_numpy(Y)  # torch takes probability rows too
        return labels, torch.from_numpy(labels)
    if loss == "logistic":
        y = rng.integers(0, 2, (m, n_out)).astype(np.float64) if one_hot else rng.uniform(0, 1, (m, n_out))
        return y, torch.from_numpy(y)
    y = rng.standard_normal((m, n_out))
    return y, torch.from_numpy(y)


TORCH_LOSS = {
    "crossEntropyLogit": lambda z, y: F.cross_entropy(z, y, reduction="mean"),
    "logistic": lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="mean"),
    "mse": lambda z, y: F.mse_loss(z, y, reduction="mean"),
}


@pytest.mark.parametrize("arch_index", range(len(ARCHITECTURES)))
@pytest.mark.parametrize("loss", ["crossEntropyLogit", "logistic", "mse"])
@pytest.mark.parametrize("variant", [False, True], ids=["labels-or-soft", "one-hot-or-hard"])
@pytest.mark.parametrize("input_scale", [None, 0.25])
def test_loss_and_every_gradient_match_torch(arch_index, loss, variant, input_scale):
    arch = ARCHITECTURES[arch_index]
    if loss == "logistic":
        arch = [*arch[:-1], (1, arch[-1][1])]
    seed = 100 * arch_index + len(loss)
    rng = np.random.default_rng(seed)
    net = lw.NeuralNetwork(10, arch, seed=seed, dtype=np.float64, input_scale=input_scale)
    for layer in net.layers:
        if isinstance(layer, lw.Dense):
            layer.b = rng.standard_normal(layer.n_out) * 0.5
    m = 16
    x = rng.standard_normal((m, 10)) * 2
    y, y_t = targets(loss, rng, m, net.n_outputs, variant)

    loss_obj = lw.losses.get_loss(loss)
    z = net.forward(x.copy())
    J = loss_obj.forward(z, y)
    dx = net.backward(loss_obj.backward())

    forward, pairs = to_torch(net)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    z_t = forward(x_t)
    J_t = TORCH_LOSS[loss](z_t, y_t)
    J_t.backward()

    np.testing.assert_allclose(z, z_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(J - J_t.item()) <= 1e-10 * max(1.0, abs(J_t.item()))
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for dense, lin in pairs:
        np.testing.assert_allclose(dense.dW, lin.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dense.db, lin.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["crossEntropyLogit", "logistic"])
@pytest.mark.parametrize("scale", [100.0, 1e4])
def test_losses_match_torch_at_extreme_logits(loss, scale):
    rng = np.random.default_rng(3)
    n_out = 1 if loss == "logistic" else 5
    z = rng.standard_normal((20, n_out)) * scale
    y, y_t = targets(loss, rng, 20, n_out, one_hot=True)
    loss_obj = lw.losses.get_loss(loss)
    J = loss_obj.forward(z, y)
    dz = loss_obj.backward()
    z_t = torch.from_numpy(z).requires_grad_(True)
    J_t = TORCH_LOSS[loss](z_t, y_t)
    J_t.backward()
    assert np.isfinite(J) and np.isfinite(dz).all()
    assert pytest.approx(J_t.item(), rel=1e-12) == J
    np.testing.assert_allclose(dz, z_t.grad.numpy(), rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "sgd": (lambda: optim.SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd-momentum": (
        lambda: optim.SGD(lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "sgd-nesterov": (
        lambda: optim.SGD(lr=0.05, momentum=0.8, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    ),
    "sgd-momentum-wd": (
        lambda: optim.SGD(lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    ),
    "sgd-nesterov-wd": (
        lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    ),
    "adam": (lambda: optim.Adam(1e-3), lambda p: torch.optim.Adam(p, lr=1e-3)),
    "adam-custom": (
        lambda: optim.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    ),
    "adam-wd": (
        lambda: optim.Adam(lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
    ),
    "adamw": (
        lambda: optim.AdamW(lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ),
    "adamw-default": (lambda: optim.AdamW(), lambda p: torch.optim.AdamW(p)),
    "rmsprop": (lambda: optim.RMSProp(lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop-custom": (
        lambda: optim.RMSProp(lr=0.003, alpha=0.9, eps=1e-6, weight_decay=0.05),
        lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.9, eps=1e-6, weight_decay=0.05),
    ),
}

SHAPES = [(5, 4), (4,), (4, 3), (3,)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_steps", [1, 5])
@pytest.mark.parametrize("flat", [False, True], ids=["arrays", "flat"])
def test_optimizer_steps_match_torch(name, dtype, n_steps, flat):
    rng = np.random.default_rng(len(name) + n_steps)
    shapes = [(sum(int(np.prod(s)) for s in SHAPES),)] if flat else SHAPES
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads_seq = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n_steps)]
    make_mine, make_torch = OPTIMIZERS[name]
    opt = make_mine()
    tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    topt = make_torch(tparams)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for grads in grads_seq:
        opt.step(params, [g.copy() for g in grads])
        for tp, g in zip(tparams, grads, strict=True):
            tp.grad = torch.from_numpy(g.copy())
        topt.step()
        for p, tp in zip(params, tparams, strict=True):
            assert p.dtype == dtype
            np.testing.assert_allclose(p, tp.detach().numpy(), rtol=tol, atol=tol)
    assert opt.iterations == n_steps


@pytest.mark.parametrize("name", ["sgd-momentum", "sgd-nesterov", "adam", "adamw", "rmsprop"])
def test_training_a_network_matches_torch(name):
    """A few full training steps on a network: forward, loss, backward, update, in both libraries."""
    rng = np.random.default_rng(0)
    net = lw.NeuralNetwork(6, [(8, "Tanh"), (7, "ReLU"), (3, "Linear")], seed=0, dtype=np.float64)
    forward, pairs = to_torch(net)
    tparams = [t for _, lin in pairs for t in (lin.weight, lin.bias)]
    make_mine, make_torch = OPTIMIZERS[name]
    model = lw.Model(net, loss="crossEntropyLogit", optimizer=make_mine())
    topt = make_torch(tparams)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    model.fit(x, y, epochs=3, batch_size=10, shuffle=False, verbose=0)
    for _ in range(3):
        for lo in range(0, 40, 10):
            topt.zero_grad()
            F.cross_entropy(forward(torch.from_numpy(x[lo : lo + 10])), torch.from_numpy(y[lo : lo + 10])).backward()
            topt.step()
    for dense, lin in pairs:
        np.testing.assert_allclose(dense.W, lin.weight.detach().numpy().T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dense.b, lin.bias.detach().numpy(), rtol=1e-10, atol=1e-12)
