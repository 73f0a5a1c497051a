"""``to_torch`` / ``from_torch``: the same network in both frameworks, checked by PyTorch autograd and torch.optim.

For each network, in float32 (1e-6) and float64 (1e-10): the outputs in inference
and in training mode, the loss, every parameter gradient and the input gradient of
one training step, the BatchNorm running statistics after it and the weights after
one SGD step agree between layerwise and the torch module made from it (and the
other way round, for modules written in torch).  Dropout draws its masks from each
framework's own generator, so the training comparisons leave it out; its inference
behaviour (the identity) is covered with the outputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError, ShapeError
from layerwise.interop import from_torch, to_torch

try:
    import torch
    import torch.nn.functional as F  # noqa: N812 (the usual name)
except ImportError:  # pragma: no cover - exercised only where torch is missing
    if os.environ.get("CI"):
        raise
    pytest.skip("torch is not installed (set CI=1 to make this an error)", allow_module_level=True)

torch.set_num_threads(1)
nn = torch.nn
TOL = {np.float32: 1e-6, np.float64: 1e-10}


def cnn(dtype, dropout: float = 0.0) -> lw.Sequential:
    return lw.Sequential(
        [
            lw.Conv2D(4, 3, stride=2, padding="same"),  # asymmetric padding: ZeroPad2d + Conv2d in torch
            lw.BatchNorm(),
            lw.ReLU(),
            lw.MaxPool2D(2),
            lw.Dropout(dropout),
            lw.Conv2D(5, (2, 3), padding=1),
            lw.Tanh(),
            lw.AvgPool2D((2, 1), stride=(1, 2)),
            lw.Flatten(),
            lw.Dense(12),
            lw.BatchNorm(),
            lw.Sigmoid(),
            lw.Dense(10),
            lw.Linear(),
        ],
        input_shape=(2, 13, 12),
        seed=0,
        dtype=dtype,
    )


def mlp(dtype, dropout: float = 0.0) -> lw.Sequential:
    layers = [lw.Dense(20), lw.BatchNorm(), lw.Tanh(), lw.Dropout(dropout), lw.Dense(15), lw.ReLU(), lw.Dense(10)]
    return lw.Sequential([*layers, lw.Softmax()], input_shape=(30,), seed=1, dtype=dtype)


def torch_lenet(dtype) -> nn.Sequential:
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(2, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Dropout(0.0),
        nn.Sequential(nn.Flatten(), nn.Linear(16 * 2 * 2, 30)), nn.BatchNorm1d(30), nn.Sigmoid(),
        nn.Linear(30, 10), nn.Identity(),
    )  # fmt: skip
    return module.to(dtype)


def pairs(net: lw.Sequential, module: nn.Sequential) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """(name, layerwise parameter, its gradient, transposed?) for each torch parameter, matched by position."""
    ours = [(f"{i}.{k}", layer.params[k], layer.grads[k], type(layer) is lw.Dense and k == "W")
            for i, layer in enumerate(net.layers) for k in layer.params]  # fmt: skip
    theirs = list(module.named_parameters())
    assert len(ours) == len(theirs)
    return [(f"{a[0]} ~ {name}", *a[1:]) for a, (name, _) in zip(ours, theirs, strict=True)]


def compare_training_step(net: lw.Sequential, module: nn.Sequential, x: np.ndarray, y: np.ndarray) -> None:
    tol = TOL[net.dtype.type]
    close = lambda a, b, what: np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)  # noqa: E731
    module.train()
    xt = torch.tensor(x, requires_grad=True)
    zt = module(xt)
    loss_t = F.cross_entropy(zt, torch.tensor(y))
    loss_t.backward()
    z = net.forward(x.copy(), training=True)
    loss = lw.CrossEntropyLogit()
    close(z, zt.detach().numpy(), "training-mode outputs")
    close(loss.forward(z, y), loss_t.item(), "loss")
    dx = net.backward(loss.backward())
    close(dx, xt.grad.numpy(), "input gradient")
    params = dict(module.named_parameters())
    for (name, _, grad, transposed), torch_name in zip(pairs(net, module), params, strict=True):
        close(grad.T if transposed else grad, params[torch_name].grad.numpy(), f"gradient {name}")
    buffers = {k: v for k, v in module.state_dict().items() if "running" in k}
    ours = [b for _, b in net.named_buffers()]
    assert len(ours) == len(buffers)
    for value, (name, theirs) in zip(ours, buffers.items(), strict=True):
        close(value, theirs.numpy(), f"buffer {name}")
    # One SGD step on those gradients, in each framework.  (Not Adam: the bias of a convolution followed by
    # BatchNorm has a gradient of exactly 0 in theory and rounding noise in practice, which Adam's first step
    # g / (|g| + eps) would blow up to a sizeable step of either sign in float32.)
    opt_t = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    opt_t.step()
    lw.optim.SGD(0.1, momentum=0.9).step([net.flat_params], [net.flat_grads])
    for (name, param, _, transposed), torch_name in zip(pairs(net, module), params, strict=True):
        close(param.T if transposed else param, params[torch_name].detach().numpy(), f"after SGD {name}")


def inputs(net: lw.Sequential, dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((16, *net.input_shape)) * 2 + 0.3).astype(dtype)
    return x, rng.integers(0, 10, len(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [cnn, mlp], ids=["cnn", "mlp"])
def test_to_torch_agrees_in_inference_and_one_training_step(make, dtype):
    net = make(dtype, dropout=0.4)
    x, y = inputs(net, dtype)
    net.forward(x, training=True)  # BatchNorm statistics away from their initial values
    module = to_torch(net)
    module.eval()
    tol = TOL[dtype]
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(x), module(torch.tensor(x)).numpy(), rtol=tol, atol=tol)
    net = make(dtype)  # without dropout for the training step (random masks differ)
    net.forward(x, training=True)
    compare_training_step(net, to_torch(net), x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_from_torch_agrees_in_inference_and_one_training_step(dtype):
    module = torch_lenet(dtype)
    with torch.no_grad():
        module.train()(torch.randn(8, 2, 13, 13, dtype=dtype))  # move the running statistics
    net = from_torch(module, (2, 13, 13))
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    assert net.dtype == np_dtype
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "AvgPool2D", "Dropout",
                     "Flatten", "Dense", "BatchNorm", "Sigmoid", "Dense", "Linear"]  # fmt: skip
    x, y = inputs(net, np_dtype, seed=1)
    tol = TOL[np_dtype]
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(x), module.eval()(torch.tensor(x)).numpy(), rtol=tol, atol=tol)
    compare_training_step(net, module, x, y)


@pytest.mark.parametrize("make", [cnn, mlp], ids=["cnn", "mlp"])
def test_round_trips_are_exact(make):
    net = make(np.float32, dropout=0.25)
    net.forward(inputs(net, np.float32)[0], training=True)
    back = from_torch(to_torch(net), net.input_shape)
    assert back.config() == net.config()
    for name, value in net.state_dict().items():
        assert np.array_equal(back.state_dict()[name], value), name
    module = torch_lenet(torch.float32)
    again = to_torch(from_torch(module, (2, 13, 13)))
    theirs = {k: v for k, v in module.state_dict().items() if "num_batches" not in k}
    mine = {k: v for k, v in again.state_dict().items() if "num_batches" not in k}
    assert len(mine) == len(theirs)
    for (name, a), b in zip(theirs.items(), mine.values(), strict=True):
        assert torch.equal(a, b), name


def test_rescale_module_takes_uint8():
    net = lw.NeuralNetwork(12, [(5, "ReLU"), (3, "Linear")], seed=0, input_scale=1 / 255)
    module = to_torch(net)
    x = np.random.default_rng(0).integers(0, 256, (4, 12)).astype(np.uint8)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), net.forward(x), rtol=1e-6, atol=1e-6)
    assert isinstance(from_torch(module, (12,)).layers[0], lw.Rescale)


def test_bias_free_modules_get_zero_bias():
    module = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(8, 3, bias=False))
    net = from_torch(module, (1, 4, 4))
    assert not net.layers[0].params["b"].any() and not net.layers[2].params["b"].any()
    x = torch.randn(2, 1, 4, 4)
    np.testing.assert_allclose(net.forward(x.numpy()), module(x).detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("module", "needle"),
    [
        (nn.Sequential(nn.Flatten(), nn.LSTM(4, 4)), r"'1' \(LSTM\): no layerwise counterpart"),
        (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), "groups"),
        (nn.Sequential(nn.Conv2d(2, 4, 3, dilation=2)), "dilation"),
        (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), "ceil_mode"),
        (nn.Sequential(nn.AvgPool2d(2, padding=1)), "padding"),
        (nn.Sequential(nn.Flatten(), nn.Softmax(dim=0)), "dim=0"),
        (nn.Sequential(nn.BatchNorm2d(2, affine=False)), "affine"),
        (nn.Sequential(nn.Flatten(start_dim=2)), "start_dim"),
        (nn.Sequential(nn.ZeroPad2d((1, 0, 0, 0))), "ZeroPad2d"),
        (nn.Sequential(nn.ZeroPad2d((0, 1, 0, 0)), nn.Conv2d(2, 3, 3, stride=2)), "asymmetric padding"),
    ],
)
def test_unsupported_modules_are_named(module, needle):
    with pytest.raises(ConfigError, match=needle):
        from_torch(module, (2, 6, 6))


def test_shape_mismatch_names_the_module():
    module = nn.Sequential(nn.Flatten(), nn.Linear(10, 3), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match=r"module '2': W has shape \(4, 2\), the layer needs \(3, 2\)"):
        from_torch(module, (1, 2, 5))
    with pytest.raises(ShapeError, match=r"module '0'.*\(10,\)"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3)), (10,))


def test_not_a_module_and_mixed_dtypes():
    with pytest.raises(ConfigError, match=r"torch.nn.Module"):
        from_torch("model.pt", (3,))
    module = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2).double())
    with pytest.raises(ConfigError, match="float32 or all float64"):
        from_torch(module, (3,))


def test_user_layer_has_no_torch_counterpart():
    @lw.register_layer
    class Twice(lw.Layer):
        def forward(self, x, training=False):
            return 2 * x

    net = lw.Sequential([lw.Dense(3), Twice()], input_shape=(2,), seed=0)
    with pytest.raises(ConfigError, match=r"layers\[1\].*Twice.*no PyTorch counterpart"):
        to_torch(net)
