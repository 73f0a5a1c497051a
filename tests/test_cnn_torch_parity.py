"""The CNN layers against PyTorch autograd in float64, and a CNN's training step against torch.optim.

For each layer: the same weights in a torch module, then forward output, input
gradient and every parameter gradient for a random dy must agree to 1e-10.
Only the public layer API is used, so whichever implementation a layer runs is covered.
torch is a test dependency: without it these tests skip locally but fail when CI is set.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw

try:
    import torch
    import torch.nn.functional as F  # noqa: N812 (the usual name)
except ImportError:  # pragma: no cover - exercised only where torch is missing
    if os.environ.get("CI"):
        raise
    pytest.skip("torch is not installed (set CI=1 to make this an error)", allow_module_level=True)

torch.set_num_threads(1)
TOL = {"rtol": 1e-10, "atol": 1e-10}
# Conv2D and the pools run compiled kernels where Numba is installed; use_kernels = False forces the
# NumPy reference. Both must agree with torch.
PATHS = pytest.mark.parametrize("reference", [False, True], ids=["default", "numpy-reference"])


def tensor(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    t = torch.from_numpy(np.array(a))
    return t.requires_grad_() if grad else t


def close(ours: np.ndarray, theirs: torch.Tensor, what: str, **tol: float) -> None:
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, **(tol or TOL))


def run_ours(layer: lw.Layer, x: np.ndarray, dy: np.ndarray, training: bool = False):
    """(y, dx, {name: grad}) from the layer, on copies so nothing we hold is overwritten."""
    y = np.array(layer.forward(x.copy(), training=training))
    dx = np.array(layer.backward(dy.copy()))
    return y, dx, {k: g.copy() for k, g in layer.grads.items()}


def run_torch(module, x: np.ndarray, dy: np.ndarray):
    """(y, dx) from a torch module or function; parameter gradients stay on the module."""
    xt = tensor(x)
    yt = module(xt)
    yt.backward(tensor(dy, grad=False))
    return yt, xt.grad


# ----------------------------------------------------------------------------- Conv2D

CONV_CASES = [
    # filters, kernel_size, stride, padding, x shape
    (4, 3, 1, 0, (2, 3, 7, 9)),
    (4, 3, 2, 0, (2, 3, 7, 9)),
    (3, 3, 1, 1, (1, 2, 7, 9)),
    (3, 3, 2, 1, (2, 2, 8, 7)),
    (2, (2, 4), (2, 1), (1, 2), (2, 3, 7, 9)),
    (6, 5, 1, 2, (3, 1, 12, 12)),  # LeNet-5's first layer
    (2, 1, 1, 0, (2, 4, 5, 5)),
    (5, 3, 3, 2, (1, 2, 8, 11)),
]


@PATHS
@pytest.mark.parametrize(("filters", "kernel", "stride", "padding", "shape"), CONV_CASES)
def test_conv2d_matches_torch(filters, kernel, stride, padding, shape, reference):
    rng = np.random.default_rng(1)
    layer = lw.Conv2D(filters, kernel, stride=stride, padding=padding, rng=2, dtype=np.float64)
    if reference:
        layer.use_kernels = False
    layer.build(shape[1:])
    layer.params["b"][...] = rng.standard_normal(filters)
    conv = torch.nn.Conv2d(shape[1], filters, kernel, stride=stride, padding=padding, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(tensor(layer.params["W"], grad=False))  # the same (F, C, kh, kw) layout
        conv.bias.copy_(tensor(layer.params["b"], grad=False))
    x = rng.standard_normal(shape)
    dy = rng.standard_normal((shape[0], *layer.output_shape(shape[1:])))
    y, dx, grads = run_ours(layer, x, dy)
    yt, dxt = run_torch(conv, x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")
    close(grads["W"], conv.weight.grad, "dW")
    close(grads["b"], conv.bias.grad, "db")


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "shape"),
    [
        (3, 1, "same", (2, 2, 7, 9)),
        (3, 2, "same", (2, 2, 7, 9)),
        ((2, 4), 2, "same", (1, 3, 7, 9)),  # odd total padding: the extra pixel goes after
        (4, 1, "same", (2, 1, 6, 6)),
        (5, 3, "same", (2, 2, 8, 10)),
        (3, 2, "valid", (2, 2, 7, 9)),
    ],
)
@PATHS
def test_conv2d_same_and_valid_match_explicitly_padded_torch(kernel, stride, padding, shape, reference):
    """torch has no strided "same"; our layer's own (top, bottom, left, right) pads, applied with F.pad, must match."""
    rng = np.random.default_rng(3)
    layer = lw.Conv2D(3, kernel, stride=stride, padding=padding, rng=4, dtype=np.float64)
    if reference:
        layer.use_kernels = False
    layer.build(shape[1:])
    layer.params["b"][...] = rng.standard_normal(3)
    top, bottom, left, right = layer.pads(shape[1:])
    out = layer.output_shape(shape[1:])
    if padding == "same":  # Keras' definition: ceil(size / stride)
        assert out[1:] == (-(-shape[2] // stride), -(-shape[3] // stride))
        assert 0 <= (bottom - top) <= 1 and 0 <= (right - left) <= 1
    else:
        assert (top, bottom, left, right) == (0, 0, 0, 0)
    W, b = tensor(layer.params["W"]), tensor(layer.params["b"])
    x = rng.standard_normal(shape)
    dy = rng.standard_normal((shape[0], *out))
    y, dx, grads = run_ours(layer, x, dy)
    yt, dxt = run_torch(lambda t: F.conv2d(F.pad(t, (left, right, top, bottom)), W, b, stride=stride), x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")
    close(grads["W"], W.grad, "dW")
    close(grads["b"], b.grad, "db")


# ----------------------------------------------------------------------------- pooling, Flatten, Dense


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    ("pool", "stride", "shape"),
    [
        (2, None, (2, 3, 8, 8)),
        (2, None, (2, 2, 7, 9)),
        (3, None, (1, 2, 7, 9)),
        (3, 1, (2, 2, 7, 9)),
        (3, 2, (2, 3, 9, 7)),
        (2, 1, (1, 1, 5, 5)),
        ((2, 3), (1, 2), (2, 2, 6, 9)),
    ],
)
@PATHS
def test_pooling_matches_torch(kind, pool, stride, shape, reference):
    rng = np.random.default_rng(5)
    n = int(np.prod(shape))
    x = (rng.permutation(n) - n / 2).reshape(shape) * 0.01  # no ties: the max is unambiguous
    layer = (lw.MaxPool2D if kind == "max" else lw.AvgPool2D)(pool, stride)
    if reference:
        layer.use_kernels = False
    module = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(pool, stride)
    dy = rng.standard_normal((shape[0], *layer.output_shape(shape[1:])))
    y, dx, _ = run_ours(layer, x, dy)
    yt, dxt = run_torch(module, x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")


def layout(a: np.ndarray, how: str) -> np.ndarray:
    """The same values as ``a`` in another memory layout: what layers hand each other is not always C-contiguous."""
    if how == "channels-last":  # an NCHW view of NHWC memory, as Conv2D's output may be
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if how == "strided":  # every other element of a larger array
        b = np.zeros((a.shape[0], a.shape[1], a.shape[2], 2 * a.shape[3]), a.dtype)
        b[..., ::2] = a
        return b[..., ::2]
    return a


@PATHS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_and_pools_with_changing_batches_and_layouts(dtype, reference):
    """Batch sizes that change between calls (an epoch's last batch) and inputs or dys in any layout."""
    rng = np.random.default_rng(13)
    tol = TOL if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-5}
    conv = lw.Conv2D(5, 3, stride=2, padding="same", rng=0, dtype=dtype)
    conv.build((3, 9, 8))
    conv.params["b"][...] = rng.standard_normal(5)
    W, b = tensor(conv.params["W"]), tensor(conv.params["b"])
    layers = [
        (conv, lambda t: F.conv2d(F.pad(t, (0, 1, 1, 1)), W, b, stride=2)),
        (lw.MaxPool2D(2), torch.nn.MaxPool2d(2)),
        (lw.AvgPool2D(3, stride=2), torch.nn.AvgPool2d(3, 2)),
        (lw.MaxPool2D(3, stride=1), torch.nn.MaxPool2d(3, 1)),
    ]
    assert conv.pads((3, 9, 8)) == (1, 1, 0, 1)
    for layer, _ in layers:
        if reference:
            layer.use_kernels = False
    for batch, how in [(8, "c"), (3, "channels-last"), (8, "strided"), (1, "c"), (8, "channels-last")]:
        x = rng.standard_normal((batch, 3, 9, 8)).astype(dtype)
        for layer, module in layers:
            dy = rng.standard_normal((batch, *layer.output_shape(x.shape[1:]))).astype(dtype)
            what = f"{layer!r}, batch {batch}, {how}"
            y = np.array(layer.forward(layout(x.copy(), how), training=True))
            dx = np.array(layer.backward(layout(dy.copy(), how)))
            W.grad = b.grad = None
            yt, dxt = run_torch(module, x, dy)
            close(y, yt, f"y of {what}", **tol)
            close(dx, dxt, f"dx of {what}", **tol)
            if layer is conv:
                close(conv.grads["W"], W.grad, f"dW of {what}", **tol)
                close(conv.grads["b"], b.grad, f"db of {what}", **tol)


def test_flatten_matches_torch():
    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal((3, 4, 5, 6)), rng.standard_normal((3, 120))
    y, dx, _ = run_ours(lw.Flatten(), x, dy)
    yt, dxt = run_torch(torch.nn.Flatten(), x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")


def test_dense_units_matches_torch_linear():
    rng = np.random.default_rng(7)
    layer = lw.Dense(5, rng=1, dtype=np.float64)
    layer.build((8,))
    layer.b = rng.standard_normal(5)
    lin = torch.nn.Linear(8, 5, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(tensor(layer.W.T, grad=False))  # torch keeps (out, in)
        lin.bias.copy_(tensor(layer.b, grad=False))
    x, dy = rng.standard_normal((4, 8)), rng.standard_normal((4, 5))
    y, dx, grads = run_ours(layer, x, dy)
    yt, dxt = run_torch(lin, x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")
    close(grads["W"], lin.weight.grad.T, "dW")
    close(grads["b"], lin.bias.grad, "db")


@pytest.mark.parametrize(
    ("layer_cls", "fn"),
    [
        (lw.ReLU, torch.relu),
        (lw.Sigmoid, torch.sigmoid),
        (lw.Tanh, torch.tanh),
        (lw.Softmax, lambda t: torch.softmax(t, dim=1)),
    ],
)
def test_activations_on_images_match_torch(layer_cls, fn):
    """Activations see NCHW images in a CNN; Softmax normalises over the channels (axis 1), as dim=1 in torch."""
    rng = np.random.default_rng(8)
    x, dy = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    y, dx, _ = run_ours(layer_cls(), x, dy)
    yt, dxt = run_torch(fn, x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")


# ----------------------------------------------------------------------------- Dropout


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.75])
def test_dropout_mask_and_gradients(rate):
    rng = np.random.default_rng(9)
    layer = lw.Dropout(rate)
    layer.rng = np.random.default_rng(10)
    x = rng.standard_normal((200, 500))
    dy = rng.standard_normal(x.shape)
    y, dx, _ = run_ours(layer, x, dy, training=True)
    mask = layer.mask
    # Exactly 0 or 1/(1 − rate), kept with probability 1 − rate (100,000 draws: ±5 sd is ±0.0075).
    scale = np.float64(1) / (1 - rate)
    assert set(np.unique(mask)) == {0.0, scale}
    assert abs(np.mean(mask > 0) - (1 - rate)) < 0.0075
    # Same mask in torch: y = x·mask and dx = dy·mask.
    yt, dxt = run_torch(lambda t: t * tensor(mask, grad=False), x, dy)
    close(y, yt, "y")
    close(dx, dxt, "dx")
    np.testing.assert_array_equal(y, x * mask)
    np.testing.assert_array_equal(dx, dy * mask)
    # A second training pass draws a new mask; inference is the identity, forward and backward.
    layer.forward(x.copy(), training=True)
    assert not np.array_equal(layer.mask, mask)
    y, dx, _ = run_ours(layer, x, dy, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)


def test_dropout_float32_mask_keeps_dtype():
    layer = lw.Dropout(0.3)
    layer.rng = np.random.default_rng(0)
    x = np.ones((50, 40), np.float32)
    y = layer.forward(x.copy(), training=True)
    assert y.dtype == np.float32 and layer.mask.dtype == np.float32
    assert set(np.unique(y)) == {np.float32(0), np.float32(1) / np.float32(0.7)}


# ----------------------------------------------------------------------------- BatchNorm


@pytest.mark.parametrize(("momentum", "eps"), [(0.1, 1e-5), (0.3, 1e-3)], ids=["defaults", "momentum-eps"])
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6)], ids=["BatchNorm1d", "BatchNorm2d"])
def test_batchnorm_matches_torch(shape, momentum, eps):
    rng = np.random.default_rng(11)
    C = shape[1]
    layer = lw.BatchNorm(momentum=momentum, eps=eps, dtype=np.float64)
    layer.build(shape[1:])
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, C)
    layer.params["beta"][...] = rng.standard_normal(C)
    module = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    bn = module(C, eps=eps, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(tensor(layer.params["gamma"], grad=False))
        bn.bias.copy_(tensor(layer.params["beta"], grad=False))
    bn.train()
    for step in range(5):  # different batches, shifted and scaled differently each time
        x = rng.standard_normal(shape) * (1 + step) + step - 2
        dy = rng.standard_normal(shape)
        bn.zero_grad()
        y, dx, grads = run_ours(layer, x, dy, training=True)
        yt, dxt = run_torch(bn, x, dy)
        close(y, yt, f"training y, step {step}")
        close(dx, dxt, f"training dx, step {step}")
        close(grads["gamma"], bn.weight.grad, f"training dgamma, step {step}")
        close(grads["beta"], bn.bias.grad, f"training dbeta, step {step}")
        close(layer.buffers["running_mean"], bn.running_mean, f"running_mean after step {step}")
        close(layer.buffers["running_var"], bn.running_var, f"running_var after step {step}")
    assert not np.allclose(layer.buffers["running_var"], 1)  # the statistics really moved
    bn.eval()
    for _ in range(2):  # inference: running statistics, which do not move
        x, dy = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
        bn.zero_grad()
        y, dx, grads = run_ours(layer, x, dy, training=False)
        yt, dxt = run_torch(bn, x, dy)
        close(y, yt, "inference y")
        close(dx, dxt, "inference dx")
        close(grads["gamma"], bn.weight.grad, "inference dgamma")
        close(grads["beta"], bn.bias.grad, "inference dbeta")
        close(layer.buffers["running_mean"], bn.running_mean, "running_mean after inference")
        close(layer.buffers["running_var"], bn.running_var, "running_var after inference")


# ----------------------------------------------------------------------------- a training step


class MaskKeeping(lw.Dropout):
    """Dropout that keeps a copy of every mask it draws in training (fit may run inference passes after them)."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.masks: list[np.ndarray] = []

    def forward(self, x, training=False):
        y = super().forward(x, training)
        if training:
            self.masks.append(self.mask.copy())
        return y


def lenet_like(dtype, bn_after_relu: bool, dropout: bool = False) -> lw.Sequential:
    """conv → ReLU → maxpool → conv → BatchNorm/ReLU → maxpool → flatten → 24 → ReLU → (Dropout) → 10."""
    norm = [lw.ReLU(), lw.BatchNorm()] if bn_after_relu else [lw.BatchNorm(), lw.ReLU()]
    layers = [lw.Conv2D(4, 5, padding=2), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(6, 3), *norm, lw.MaxPool2D(2)]
    layers += [lw.Flatten(), lw.Dense(24), lw.ReLU(), *([MaskKeeping(0.4)] if dropout else []), lw.Dense(10)]
    # seed 10: on the data below no gradient entry is tiny but non-zero (all are 0 or > 1e-6), which float32
    # needs: Adam's first step is about ±lr·sign(g) even for |g| ~ 1e-9, so rounding noise in a
    # near-zero gradient (a nearly dead channel) would move a weight by up to lr on one side only.
    return lw.Sequential(layers, input_shape=(1, 12, 12), dtype=dtype, seed=10)


def torch_copy(net: lw.Sequential):
    """A torch nn.Sequential with the same weights; Dropout becomes multiplication by a mask we set."""
    dtype = {np.float32: torch.float32, np.float64: torch.float64}[net.dtype.type]
    modules, masks = [], {}

    class FixedMask(torch.nn.Module):
        def __init__(self, key: int) -> None:
            super().__init__()
            self.key = key

        def forward(self, t):
            return t * masks[self.key]

    for i, (layer, shape) in enumerate(zip(net.layers, net.shapes, strict=True)):
        if isinstance(layer, lw.Conv2D):
            m = torch.nn.Conv2d(shape[0], layer.filters, layer.kernel_size, layer.stride, layer.padding, dtype=dtype)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.params["W"].copy()))
                m.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
        elif isinstance(layer, lw.Dense):
            m = torch.nn.Linear(shape[0], layer.units, dtype=dtype)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                m.bias.copy_(torch.from_numpy(layer.b.copy()))
        elif isinstance(layer, lw.BatchNorm):
            m = torch.nn.BatchNorm2d(shape[0], dtype=dtype)  # gamma = 1, beta = 0, as ours start
        elif isinstance(layer, lw.MaxPool2D):
            m = torch.nn.MaxPool2d(layer.pool_size, layer.stride)
        elif isinstance(layer, lw.ReLU):
            m = torch.nn.ReLU()
        elif isinstance(layer, lw.Flatten):
            m = torch.nn.Flatten()
        elif isinstance(layer, lw.Dropout):
            m = FixedMask(i)
        else:  # pragma: no cover - the nets above use nothing else
            raise AssertionError(type(layer))
        modules.append(m)
    return torch.nn.Sequential(*modules), masks


def ours_by_torch_name(net: lw.Sequential) -> dict[str, np.ndarray]:
    """Our parameters and buffers under torch's state_dict names (Dense W transposed)."""
    names = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
    out = {}
    for i, layer in enumerate(net.layers):
        for k, p in layer.params.items():
            out[f"{i}.{names[k]}"] = p.T if isinstance(layer, lw.Dense) and k == "W" else p
        for k, b in layer.buffers.items():
            out[f"{i}.{k}"] = b
    return out


@pytest.mark.parametrize(
    ("dtype", "bn_after_relu", "dropout", "tol"),
    [
        (np.float64, False, False, 1e-10),
        (np.float64, True, False, 1e-10),
        (np.float64, False, True, 1e-10),
        # float32: BatchNorm right after a Conv2D gives its bias a gradient that is 0 up to rounding,
        # and Adam's first step turns rounding noise into ±lr (see lenet_like); so here BatchNorm follows the ReLU.
        (np.float32, True, False, 1e-5),
        (np.float32, True, True, 1e-5),
    ],
    ids=["f64", "f64-relu-bn", "f64-dropout", "f32-relu-bn", "f32-dropout"],
)
def test_cnn_training_steps_match_torch_adam(dtype, bn_after_relu, dropout, tol):
    """Model.fit's steps (forward, CrossEntropyLoss, backward, Adam 1e-3) against torch on the same weights."""
    net = lenet_like(dtype, bn_after_relu, dropout)
    tnet, masks = torch_copy(net)
    model = lw.Model(net, loss="crossEntropyLogit", optimizer=lw.optim.Adam(1e-3), seed=0)
    topt = torch.optim.Adam(tnet.parameters(), lr=1e-3)
    tnet.train()
    ce = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(12)
    x = rng.standard_normal((24, 1, 12, 12)).astype(dtype)
    labels = rng.integers(0, 10, 24)
    noise_only = {
        f"{i}.bias"
        for i, (layer, after) in enumerate(zip(net.layers[:-1], net.layers[1:], strict=True))
        if isinstance(layer, lw.Conv2D) and isinstance(after, lw.BatchNorm)
    }
    for step in range(3):  # one fit call per batch, so we can read the mask each step drew
        xb, yb = x[8 * step : 8 * step + 8], labels[8 * step : 8 * step + 8]
        model.fit(xb, yb, epochs=1, batch_size=8, shuffle=False, verbose=0)
        for i, layer in enumerate(net.layers):
            if isinstance(layer, lw.Dropout):
                assert len(layer.masks) == step + 1 and (layer.masks[-1] == 0).any()  # fit trains with dropout
                masks[i] = torch.from_numpy(layer.masks[-1])
        topt.zero_grad()
        loss = ce(tnet(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        topt.step()
        assert model.history.history["loss"][-1] == pytest.approx(loss.item(), rel=tol)
        ours = ours_by_torch_name(net)
        theirs = {k: v for k, v in tnet.state_dict().items() if not k.endswith("num_batches_tracked")}
        assert set(ours) == set(theirs)
        for name, value in theirs.items():
            # A bias feeding BatchNorm has gradient 0 up to rounding (~1e-16), which Adam scales by lr/eps
            # into steps of ~1e-11 on each side independently: compare it at that noise level.
            atol = 1e-8 if name in noise_only else tol
            np.testing.assert_allclose(
                ours[name], value.numpy(), rtol=tol, atol=atol, err_msg=f"{name} after step {step + 1}"
            )
    # The weights really moved (a no-op update on both sides would also "agree").
    start = ours_by_torch_name(lenet_like(dtype, bn_after_relu, dropout))
    assert all(not np.array_equal(start[k], v) for k, v in ours_by_torch_name(net).items() if k.endswith("weight"))
