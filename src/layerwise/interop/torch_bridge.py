"""PyTorch: ``to_torch(net)`` builds the same network as a ``torch.nn.Sequential``; ``from_torch`` goes back.

==================  ======================================================================
layerwise           torch.nn
==================  ======================================================================
Dense               Linear (weight = Wᵀ: torch stores (out, in), layerwise (in, out))
Conv2D              Conv2d (same layout); asymmetric "same" padding: Sequential(ZeroPad2d, Conv2d)
MaxPool2D, AvgPool2D  MaxPool2d, AvgPool2d
Flatten, Dropout    Flatten, Dropout
BatchNorm           BatchNorm1d (rows) / BatchNorm2d (images), running statistics included
ReLU, Sigmoid, Tanh, Softmax, Linear   ReLU, Sigmoid, Tanh, Softmax(dim=1), Identity
Rescale             ``Rescale``, a two-line module made here (x.to(dtype) * scale)
==================  ======================================================================

``to_torch(net)[i]`` is ``net.layers[i]``, so the torch module's ``state_dict`` names
are the layer indices (``"1.weight"`` for ``net.layers[1].params["W"]``).  The module
is returned in training mode, as torch creates modules; call ``.eval()`` for inference.
Needs torch (``pip install 'layerwise[torch]'``); the core never imports it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from ..errors import ConfigError, LayerwiseError
from ..layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool2D,
    ReLU,
    Rescale,
    Sigmoid,
    Softmax,
    Tanh,
)
from ..layers.base import check_shape
from ..layers.conv import same_padding
from ..network import Sequential
from ._deps import require


def _torch() -> Any:
    return require("torch", "torch", "the PyTorch bridge")


@cache
def rescale_module() -> type:
    """The ``Rescale`` torch module class (made on first use, since torch is optional)."""
    torch = _torch()

    class RescaleModule(torch.nn.Module):
        """y = x.to(dtype) · scale: layerwise's Rescale, so raw uint8 pixels go straight in."""

        def __init__(self, scale: float, dtype: Any = torch.float32) -> None:
            super().__init__()
            self.scale = float(scale)
            self.dtype = dtype

        def forward(self, x: Any) -> Any:
            return x.to(self.dtype) * self.scale

        def extra_repr(self) -> str:
            return f"scale={self.scale!r}"

    RescaleModule.__name__ = RescaleModule.__qualname__ = "Rescale"
    return RescaleModule


def to_torch(net: Any) -> Any:
    """A ``torch.nn.Sequential`` computing what ``net`` (a Sequential or a Model's network) computes.

    Weights are copied (later changes to one do not reach the other), in the
    network's dtype.  Raises ConfigError for a layer without a torch counterpart.
    """
    torch = _torch()
    nn = torch.nn
    net = getattr(net, "net", net)
    if not isinstance(net, Sequential) or net.input_shape is None:
        raise ConfigError(f"net: expected a built layerwise Sequential, got {type(net).__name__}")
    dtype = {np.float32: torch.float32, np.float64: torch.float64}[net.dtype.type]

    def tensor(a: np.ndarray) -> Any:
        return torch.tensor(np.ascontiguousarray(a), dtype=dtype)

    modules = []
    for i, (layer, shape) in enumerate(zip(net.layers, net.shapes, strict=True)):
        kind = type(layer)
        if kind is Dense:
            m = nn.Linear(shape[0], layer.units, dtype=dtype)
            m.weight.data = tensor(layer.params["W"].T)
            m.bias.data = tensor(layer.params["b"])
        elif kind is Conv2D:
            F, C, kh, kw = layer.params["W"].shape
            top, bottom, left, right = layer.pads(shape)
            symmetric = top == bottom and left == right
            conv = nn.Conv2d(C, F, (kh, kw), layer.stride, padding=(top, left) if symmetric else 0, dtype=dtype)
            conv.weight.data = tensor(layer.params["W"])
            conv.bias.data = tensor(layer.params["b"])
            m = conv if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)
        elif kind in (MaxPool2D, AvgPool2D):
            m = (nn.MaxPool2d if kind is MaxPool2D else nn.AvgPool2d)(layer.pool_size, layer.stride)
        elif kind is BatchNorm:
            m = (nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d)(
                shape[0], eps=layer.eps, momentum=layer.momentum, dtype=dtype
            )
            m.weight.data = tensor(layer.params["gamma"])
            m.bias.data = tensor(layer.params["beta"])
            m.running_mean.data = tensor(layer.buffers["running_mean"])
            m.running_var.data = tensor(layer.buffers["running_var"])
        elif kind is Rescale:
            m = rescale_module()(layer.scale, dtype)
        elif kind is Dropout:
            m = nn.Dropout(layer.rate)
        elif kind in _SIMPLE:
            m = _SIMPLE[kind](nn)
        else:
            raise ConfigError(f"to_torch: layers[{i}] {layer!r} ({kind.__name__}) has no PyTorch counterpart")
        modules.append(m)
    return nn.Sequential(*modules)


_SIMPLE = {
    ReLU: lambda nn: nn.ReLU(),
    Sigmoid: lambda nn: nn.Sigmoid(),
    Tanh: lambda nn: nn.Tanh(),
    Softmax: lambda nn: nn.Softmax(dim=1),
    Flatten: lambda nn: nn.Flatten(),
    Linear: lambda nn: nn.Identity(),
}


def from_torch(module: Any, input_shape: tuple[int, ...] | int) -> Sequential:
    """The layerwise ``Sequential`` of a ``torch.nn.Sequential`` (nested ones are flattened) or one module.

    input_shape: the shape of one sample, e.g. ``(1, 28, 28)`` or ``(784,)``.  Weights
    are copied; the dtype is the parameters' (float32 or float64).  A Linear or Conv2d
    without bias gets a zero bias (which layerwise trains).

    Raises:
        ConfigError: a module has no layerwise counterpart, or uses an option layerwise
            does not have (groups, dilation, ceil_mode...); the message names the module.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    named = _leaves(module, "")
    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) > 1 or (dtypes and dtypes.pop() not in (torch.float32, torch.float64)):
        raise ConfigError(f"module: parameters must all be float32 or all float64, got {sorted(map(str, dtypes))}")
    params = list(module.parameters())
    dtype = np.float64 if params and params[0].dtype == torch.float64 else np.float32
    layers: list[Layer] = []
    weights: list[dict[str, np.ndarray]] = []
    names: list[str] = []
    shape = check_shape("input_shape", input_shape)
    first_shape = shape
    k = 0
    while k < len(named):
        name, m = named[k]
        pad = None
        if type(m) is torch.nn.ZeroPad2d and k + 1 < len(named) and type(named[k + 1][1]) is torch.nn.Conv2d:
            pad = tuple(int(p) for p in m.padding)  # (left, right, top, bottom)
            k += 1
            name, m = named[k]
        layer, w = _convert(torch, name, m, pad, shape)
        try:  # the shapes are checked module by module, so that an error names the module
            shape = layer.output_shape(shape)
        except LayerwiseError as e:
            raise type(e)(f"from_torch: module {name!r} on input {shape}: {e}") from None
        layers.append(layer)
        weights.append(w)
        names.append(name)
        k += 1
    if not layers:
        raise ConfigError("module: holds no layers")
    net = Sequential(layers, input_shape=first_shape, dtype=dtype)
    for layer, w, name in zip(net.layers, weights, names, strict=True):
        for key, value in w.items():
            target = layer.params.get(key, layer.buffers.get(key))
            if target.shape != value.shape:
                raise ConfigError(
                    f"from_torch: module {name!r}: {key} has shape {value.shape}, the layer needs {target.shape}"
                )
            target[...] = value
    return net


def _leaves(module: Any, prefix: str) -> list[tuple[str, Any]]:
    """(dotted name, module) of every non-Sequential module, in order."""
    import torch

    if type(module) is torch.nn.Sequential:
        out = []
        for name, child in module.named_children():
            out += _leaves(child, f"{prefix}{name}.")
        return out
    return [(prefix.rstrip(".") or type(module).__name__, module)]


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _convert(
    torch: Any, name: str, m: Any, pad: tuple[int, ...] | None, shape: tuple[int, ...]
) -> tuple[Layer, dict[str, np.ndarray]]:
    nn = torch.nn
    kind = type(m)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"from_torch: module {name!r} ({kind.__name__}): {why}")

    if kind is nn.Linear:
        b = _numpy(m.bias) if m.bias is not None else np.zeros(m.out_features)
        return Dense(m.out_features, init="zeros"), {"W": _numpy(m.weight).T, "b": b}
    if kind is nn.Conv2d:
        if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            raise refuse("groups, dilation and padding modes other than zeros are not supported")
        padding: Any = m.padding if isinstance(m.padding, str) else tuple(m.padding)
        if pad is not None:
            if padding not in ((0, 0), "valid"):
                raise refuse("ZeroPad2d before a padded Conv2d is not supported")
            left, right, top, bottom = pad
            if top == bottom and left == right:
                padding = (top, left)
            else:
                if len(shape) != 3:
                    raise refuse(f"takes images (channels, height, width), got per-sample input {shape}")
                same = (*same_padding(shape[1], m.kernel_size[0], m.stride[0]),
                        *same_padding(shape[2], m.kernel_size[1], m.stride[1]))  # fmt: skip
                if (top, bottom, left, right) != same:
                    raise refuse(f"asymmetric padding {(top, bottom, left, right)} (top, bottom, left, right)")
                padding = "same"
        b = _numpy(m.bias) if m.bias is not None else np.zeros(m.out_channels)
        layer = Conv2D(m.out_channels, tuple(m.kernel_size), stride=tuple(m.stride), padding=padding, init="zeros")
        return layer, {"W": _numpy(m.weight), "b": b}
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
        if pair(m.padding) != (0, 0) or m.ceil_mode:
            raise refuse("padding and ceil_mode are not supported")
        if kind is nn.MaxPool2d and (pair(m.dilation) != (1, 1) or m.return_indices):
            raise refuse("dilation and return_indices are not supported")
        if kind is nn.AvgPool2d and m.divisor_override is not None:
            raise refuse("divisor_override is not supported")
        stride = m.stride if m.stride not in (None, ()) else m.kernel_size
        return (MaxPool2D if kind is nn.MaxPool2d else AvgPool2D)(pair(m.kernel_size), pair(stride)), {}
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        if not m.affine or not m.track_running_stats or m.momentum is None:
            raise refuse("needs affine=True, track_running_stats=True and a momentum (not None)")
        weights = {"gamma": _numpy(m.weight), "beta": _numpy(m.bias)}
        weights |= {"running_mean": _numpy(m.running_mean), "running_var": _numpy(m.running_var)}
        return BatchNorm(momentum=float(m.momentum), eps=float(m.eps)), weights
    if kind is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise refuse("only Flatten(start_dim=1, end_dim=-1) is supported")
        return Flatten(), {}
    if kind is nn.Dropout:
        return Dropout(float(m.p)), {}
    if kind is nn.Softmax:
        if m.dim not in (None, 1):
            raise refuse(f"dim={m.dim}: layerwise's Softmax normalises over dim 1")
        return Softmax(), {}
    simple = {nn.ReLU: ReLU, nn.Sigmoid: Sigmoid, nn.Tanh: Tanh, nn.Identity: Linear}
    if kind in simple:
        return simple[kind](), {}
    if kind is rescale_module():
        return Rescale(m.scale), {}
    raise refuse(
        "no layerwise counterpart (supported: Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten, Dropout, "
        "BatchNorm1d/2d, ReLU, Sigmoid, Tanh, Softmax, Identity, ZeroPad2d before Conv2d)"
    )
