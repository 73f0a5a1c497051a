"""The operators ``from_onnx`` understands, each turned into a layer (the table is in ``onnx_import``).

``Operators`` is the half of the importer's ``_Chain`` that knows ONNX semantics:
one ``_op_<OpType>`` method per operator checks the node's attributes and constants
against what the layer can do (refusing anything else, naming the node) and adds the
layer with its weights.  The walk over the graph is in ``onnx_import``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ModelFileError
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
from ..layers.conv import same_padding
from .onnx_proto import Node
from .onnx_tensors import TYPE_NAMES

FLOATS = {1: np.dtype(np.float32), 11: np.dtype(np.float64)}
INTEGERS = {2, 3, 4, 5, 6, 7, 12, 13}
ACTIVATIONS: dict[str, type[Layer]] = {"Relu": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh}
# Attributes each operator may carry (anything else would change its meaning: refused).
ALLOWED = {
    "Gemm": {"alpha", "beta", "transA", "transB"},
    "MatMul": set(),
    "Add": set(),
    "Mul": set(),
    "Div": set(),
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"},
    "Flatten": {"axis"},
    "Reshape": {"allowzero"},
    "Relu": set(),
    "Sigmoid": set(),
    "Tanh": set(),
    "Softmax": {"axis"},
    "Identity": set(),
    "Dropout": {"seed"},
    "BatchNormalization": {"epsilon", "momentum", "training_mode"},
    "Cast": {"to", "saturate", "round_mode"},
}


class Operators:
    """Operator handlers; the state they use (shape, layers, weights...) belongs to ``onnx_import._Chain``."""

    shape: tuple[int, ...]
    batch: Any
    dtype: np.dtype | None
    elem_type: int | None
    layers: list[Layer]
    weights: list[dict[str, np.ndarray]]
    pending_bias: Dense | None
    cast: Rescale | None

    # Provided by _Chain:
    def const(self, node: Node, index: int, what: str, float_only: bool = True) -> np.ndarray: ...
    def attr(self, node: Node, name: str, default: Any, kind: str = "i") -> Any: ...
    def bad(self, message: str) -> ModelFileError: ...
    def _add(self, layer: Layer, **weights: np.ndarray) -> None: ...

    def _rank(self, ranks: tuple[int, ...], what: str) -> None:
        if len(self.shape) not in ranks:
            raise self.bad(f"takes {what}, but the input per sample has shape {self.shape}")

    def _floats_in(self) -> None:
        if self.elem_type not in FLOATS:
            raise self.bad("computes on an integer tensor; the graph must Cast the input to float first")

    def _op_Gemm(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        self._rank((1,), "rows (batch, features)")
        if self.attr(node, "transA", 0) != 0:
            raise self.bad("transA=1 is not supported")
        B = self.const(node, 1, "B")
        if B.ndim != 2:
            raise self.bad(f"B should be a matrix, got shape {B.shape}")
        W = B.T if self.attr(node, "transB", 0) else B
        alpha, beta = self.attr(node, "alpha", 1.0, "f"), self.attr(node, "beta", 1.0, "f")
        if alpha != 1.0:
            W = W * W.dtype.type(alpha)
        units = W.shape[1]
        b = np.zeros(units, W.dtype)
        if len(node.inputs) > 2 and node.inputs[2]:
            C = self.const(node, 2, "C")
            if C.size not in (1, units) or (C.ndim == 2 and C.shape[0] != 1) or C.ndim > 2:
                raise self.bad(f"C of shape {C.shape} does not broadcast to ({units},)")
            b = np.broadcast_to(C.reshape(-1), (units,)) * (W.dtype.type(beta) if beta != 1.0 else 1)
        self._add(Dense(units, init="zeros"), W=W, b=b)

    def _op_MatMul(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        self._rank((1,), "rows (batch, features)")
        if node.inputs[0] != self.current:
            raise self.bad("the constant must be the second operand (x @ W)")
        W = self.const(node, 1, "W")
        if W.ndim != 2:
            raise self.bad(f"W should be a matrix, got shape {W.shape}")
        layer = Dense(W.shape[1], init="zeros")
        self._add(layer, W=W, b=np.zeros(W.shape[1], W.dtype))
        self.pending_bias = layer

    def _op_Add(self, node: Node) -> None:  # noqa: N802
        layer = self.pending_bias
        if layer is None:
            raise self.bad("adding a constant is supported only as the bias right after a MatMul")
        b = self.const(node, 1 if node.inputs[0] == self.current else 0, "bias")
        if b.size != layer.units or (b.ndim == 2 and b.shape[0] != 1) or b.ndim > 2:
            raise self.bad(f"bias of shape {b.shape} does not match the MatMul's {layer.units} outputs")
        self.weights[-1]["b"] = b.reshape(-1)
        self.pending_bias = None

    def _scalar(self, node: Node) -> float:
        c = self.const(node, 1 if node.inputs[0] == self.current else 0, "factor")
        if c.size != 1:
            raise self.bad(f"multiplies by a constant of shape {c.shape}; only a scalar (a Rescale) is supported")
        value = float(c.reshape(-1)[0])
        if value == 0 or not math.isfinite(value):
            raise self.bad(f"the factor must be finite and non-zero, got {value}")
        if c.dtype == np.float32:
            # A float32 stands for every number that rounds to it; the layer multiplies float32
            # arrays by float32(scale), so any of them computes the same.  Take 1/n where one is
            # (Rescale(1/255) comes back as itself), else the shortest decimal.
            n = round(1 / value)
            value = 1 / n if n and np.float32(1 / n) == np.float32(value) else _decimal(value)
        return value

    def _op_Mul(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        self._rescale(self._scalar(node))

    def _op_Div(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        if node.inputs[0] != self.current:
            raise self.bad("dividing a constant by the data is not supported")
        self._rescale(1 / self._scalar(node))

    def _rescale(self, scale: float) -> None:
        if self.cast is not None:
            self.cast.scale = scale  # Cast then Mul: one Rescale, as to_onnx writes it
            self.cast = None
        else:
            self._add(Rescale(scale))

    def _op_Cast(self, node: Node) -> None:  # noqa: N802
        to = self.attr(node, "to", 0)
        if to not in FLOATS:
            raise self.bad(f"casts to {TYPE_NAMES.get(to, to)}; only casts to float or double are supported")
        if self.dtype is not None and FLOATS[to] != self.dtype:
            raise self.bad(f"casts to {FLOATS[to]}, but the network computes in {self.dtype}")
        self.dtype = FLOATS[to]
        if self.elem_type == to:
            self._add(Linear())
            return
        layer = Rescale(1.0)
        self._add(layer)
        self.cast = layer
        self.elem_type = to

    def _op_Conv(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        self._rank((3,), "images (batch, channels, height, width)")
        W = self.const(node, 1, "W")
        if W.ndim != 4:
            raise self.bad(f"W should be (filters, channels, kh, kw), got shape {W.shape}")
        if self.attr(node, "group", 1) != 1:
            raise self.bad("grouped convolutions (group != 1) are not supported")
        if any(d != 1 for d in self.attr(node, "dilations", [1, 1], "ints")):
            raise self.bad("dilated convolutions are not supported")
        kernel = tuple(W.shape[2:])
        if tuple(self.attr(node, "kernel_shape", list(kernel), "ints")) != kernel:
            raise self.bad(f"kernel_shape {self.attr(node, 'kernel_shape', [], 'ints')} disagrees with W {W.shape}")
        stride = self._pair(node, "strides", [1, 1])
        padding = self._conv_padding(node, kernel, stride)
        b = np.zeros(W.shape[0], W.dtype)
        if len(node.inputs) > 2 and node.inputs[2]:
            b = self.const(node, 2, "B")
        self._add(Conv2D(W.shape[0], kernel, stride=stride, padding=padding, init="zeros"), W=W, b=b)

    def _pair(self, node: Node, name: str, default: list[int]) -> tuple[int, int]:
        values = self.attr(node, name, default, "ints")
        if len(values) != 2 or any(v < 1 for v in values):
            raise self.bad(f"{name} should be two positive integers, got {values}")
        return values[0], values[1]

    def _conv_padding(self, node: Node, kernel: tuple[int, ...], stride: tuple[int, int]) -> Any:
        auto = self.attr(node, "auto_pad", b"NOTSET", "s")
        _, H, W = self.shape
        same = (*same_padding(H, kernel[0], stride[0]), *same_padding(W, kernel[1], stride[1]))
        if auto == b"VALID":
            return 0
        if auto in (b"SAME_UPPER", b"SAME_LOWER"):
            pads = same if auto == b"SAME_UPPER" else (same[1], same[0], same[3], same[2])
        elif auto == b"NOTSET":
            begin_end = self.attr(node, "pads", [0, 0, 0, 0], "ints")
            if len(begin_end) != 4 or any(p < 0 for p in begin_end):
                raise self.bad(f"pads should be 4 integers >= 0, got {begin_end}")
            top, left, bottom, right = begin_end
            pads = (top, bottom, left, right)
        else:
            raise self.bad(f"auto_pad {auto!r} is not supported")
        top, bottom, left, right = pads
        if top == bottom and left == right:
            return top if top == left else (top, left)
        if pads == same:
            return "same"
        raise self.bad(f"asymmetric padding {list(pads)} (top, bottom, left, right) is not supported")

    def _pool(self, node: Node, cls: type[Layer]) -> None:
        self._floats_in()
        self._rank((3,), "images (batch, channels, height, width)")
        if self.attr(node, "auto_pad", b"NOTSET", "s") not in (b"NOTSET", b"VALID"):
            raise self.bad("auto_pad SAME is not supported for pooling")
        if self.attr(node, "ceil_mode", 0):
            raise self.bad("ceil_mode=1 is not supported")
        if any(d != 1 for d in self.attr(node, "dilations", [1, 1], "ints")):
            raise self.bad("dilated pooling is not supported")
        if any(self.attr(node, "pads", [0, 0, 0, 0], "ints")):
            raise self.bad("padded pooling is not supported")
        if self.attr(node, "storage_order", 0):
            raise self.bad("storage_order=1 is not supported")
        if "kernel_shape" not in node.attributes:
            raise self.bad("kernel_shape is missing")
        kernel = self._pair(node, "kernel_shape", [])
        self._add(cls(kernel, stride=self._pair(node, "strides", [1, 1])))

    def _op_MaxPool(self, node: Node) -> None:  # noqa: N802
        self._pool(node, MaxPool2D)

    def _op_AveragePool(self, node: Node) -> None:  # noqa: N802
        self._pool(node, AvgPool2D)

    def _op_Flatten(self, node: Node) -> None:  # noqa: N802
        axis = self.attr(node, "axis", 1)
        if axis not in (1, -len(self.shape)):
            raise self.bad(f"axis={axis}: only flattening everything but the batch (axis=1) is supported")
        self._add(Flatten())

    def _op_Reshape(self, node: Node) -> None:  # noqa: N802
        target = self.const(node, 1, "shape", float_only=False)
        if target.dtype != np.int64 or target.ndim != 1 or target.size > 8:
            raise self.bad(f"shape should be a 1-D int64 tensor of at most 8 values, got {target.dtype} {target.shape}")
        target = [int(v) for v in target]
        size = math.prod(self.shape)
        batch_ok = {-1, self.batch} if isinstance(self.batch, int) else {-1}
        if not self.attr(node, "allowzero", 0):
            batch_ok.add(0)
        if len(target) == 2 and target[1] in (size, -1) and target[0] in batch_ok and target != [-1, -1]:
            self._add(Flatten())
            return
        raise self.bad(f"reshapes to {target}; only (batch, {size}) (a Flatten) is supported")

    def _activation(self, node: Node) -> None:
        self._floats_in()
        self._add(ACTIVATIONS[node.op_type]())

    _op_Relu = _op_Sigmoid = _op_Tanh = _activation

    def _op_Identity(self, node: Node) -> None:  # noqa: N802
        self._add(Linear())

    def _op_Softmax(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        axis = self.attr(node, "axis", -1)
        if axis < 0:
            axis += len(self.shape) + 1
        if axis != 1:
            raise self.bad(f"softmax over axis {self.attr(node, 'axis', -1)}; only axis 1 is supported")
        self._add(Softmax())

    def _op_Dropout(self, node: Node) -> None:  # noqa: N802
        rate = 0.5
        if len(node.inputs) > 1 and node.inputs[1]:
            ratio = self.const(node, 1, "ratio")
            if ratio.size != 1:
                raise self.bad("ratio should be a scalar")
            rate = _decimal(ratio.reshape(-1)[0]) if ratio.dtype == np.float32 else float(ratio.reshape(-1)[0])
        if len(node.inputs) > 2 and node.inputs[2]:
            training = self.const(node, 2, "training_mode", float_only=False)
            if training.size != 1 or bool(training.reshape(-1)[0]):
                raise self.bad("training_mode must be a constant false")
        if not 0 <= rate < 1:
            raise self.bad(f"ratio {rate} is outside [0, 1)")
        self._add(Dropout(rate))

    def _op_BatchNormalization(self, node: Node) -> None:  # noqa: N802
        self._floats_in()
        self._rank((1, 3), "(batch, features) or images")
        if self.attr(node, "training_mode", 0):
            raise self.bad("training_mode=1 is not supported (export the model in inference mode)")
        if len(node.inputs) != 5:
            raise self.bad(f"expected 5 inputs (X, scale, B, mean, var), got {len(node.inputs)}")
        gamma, beta, mean, var = (self.const(node, k, name) for k, name in enumerate(("scale", "B", "mean", "var"), 1))
        if (var < 0).any():
            raise self.bad("the running variance has negative values")
        eps = _decimal(self.attr(node, "epsilon", 1e-5, "f"))
        momentum = round(1 - _decimal(self.attr(node, "momentum", 0.9, "f")), 12)
        if not (0 <= eps <= 1 and 0 <= momentum <= 1):
            raise self.bad(f"epsilon {eps} / momentum {1 - momentum} are outside [0, 1]")
        weights = {"gamma": gamma, "beta": beta, "running_mean": mean, "running_var": var}
        self._add(BatchNorm(momentum=momentum, eps=eps), **weights)


def _decimal(value: float) -> float:
    """A float32 attribute as the shortest decimal that gives it (9.99999975e-06 -> 1e-05)."""
    return float(str(np.float32(value)))
