"""``from_onnx``: a sequential ONNX graph back into a layerwise ``Sequential``.

The graph must be one chain: each computing node takes the previous node's output
(plus constants: initializers, ``Constant`` nodes, ``Identity`` of a constant) and the
last one gives the graph's only output.  That is what ``to_onnx`` writes and what
``torch.onnx.export`` writes for a ``torch.nn.Sequential`` of the matching modules
(both its TorchScript and its dynamo exporter).  Operator → layer:

==========================  ================================================
Gemm, MatMul (+ Add)         Dense (W = B, or Bᵀ with transB; alpha/beta folded)
Conv                         Conv2D (group 1, no dilation; pads symmetric or "same")
MaxPool, AveragePool         MaxPool2D, AvgPool2D (no padding, floor mode)
Flatten(axis=1), Reshape     Flatten (Reshape only to (batch, features))
Relu, Sigmoid, Tanh          ReLU, Sigmoid, Tanh
Softmax(axis=1)              Softmax
Identity, Dropout            Linear, Dropout (both the identity in inference)
BatchNormalization           BatchNorm with the running statistics
Cast, Mul/Div by a scalar    Rescale (a uint8 input, Cast to float, times 1/255)
==========================  ================================================

Anything else is refused with a ``ModelFileError`` naming the node.  The file is read
by ``onnx_proto`` (no protobuf library, bounded memory, external data refused).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LayerwiseError, ModelFileError
from ..layers import Dense, Layer, Linear, Rescale
from ..network import Sequential
from .onnx_ops import ALLOWED, FLOATS, INTEGERS, Operators
from .onnx_proto import Attribute, Node, Tensor, read_model
from .onnx_tensors import TYPE_NAMES, tensor_array

MIN_OPSET, MAX_OPSET = 13, 28


def from_onnx(path: str | Path) -> Sequential:
    """The network an ONNX file describes, as a ``Sequential`` with its weights.

    Raises:
        ModelFileError: the file is damaged or hostile, or its graph is not a sequential
            chain of supported operators; the message names the file and the node.
    """
    return _Chain(path).network()


def load_onnx_model(path: str | Path) -> Any:
    """``from_onnx`` wrapped in a ``Model``; its loss and ``train_config`` come from the file's metadata.

    A file without layerwise metadata gets the cross-entropy loss (logits out).
    """
    from ..losses import get_loss
    from ..model import Model

    chain = _Chain(path)
    net = chain.network()
    meta = chain.model.metadata
    try:
        loss = get_loss(meta.get("loss", "crossEntropyLogit"))
    except LayerwiseError:
        raise ModelFileError(f"{path}: metadata 'loss' {meta.get('loss')!r} is not a layerwise loss") from None
    model = Model(net, loss=loss)
    model.train_config = _train_config(meta)
    return model


def _train_config(meta: dict[str, str]) -> dict[str, Any]:
    """The metadata's train_config (JSON) with its scalar values only, plus dataset/architecture."""
    config: dict[str, Any] = {}
    try:
        stored = json.loads(meta.get("train_config", "{}"))
    except (ValueError, RecursionError):
        stored = {}
    if isinstance(stored, dict):
        config = {
            k: v for k, v in stored.items() if isinstance(k, str) and (v is None or isinstance(v, (str, int, float)))
        }
    for key, name in (("dataset", "dataset"), ("architecture", "arch")):
        if key in meta and name not in config:
            config[name] = meta[key]
    return config


class _Chain(Operators):
    """Walks the graph's nodes in order, turning each into a layer (or a constant)."""

    def __init__(self, path: str | Path) -> None:
        self.where = str(path)
        self.model, self.data = read_model(path)
        graph = self.model.graph
        if graph is None:
            raise ModelFileError(f"{self.where}: not an ONNX model (no graph)")
        opset = self.model.opsets.get("", self.model.opsets.get("ai.onnx"))
        if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
            raise ModelFileError(
                f"{self.where}: default-domain opset {opset}; supported: {MIN_OPSET} to {MAX_OPSET} "
                "(re-export with e.g. opset_version=17)"
            )
        if graph.sparse_initializers:
            raise ModelFileError(f"{self.where}: sparse initializers are not supported")
        self.graph = graph
        self.constants: dict[str, Tensor | np.ndarray] = dict(graph.initializers)
        self.layers: list[Layer] = []
        self.weights: list[dict[str, np.ndarray]] = []
        self.dtype: np.dtype | None = None
        self.pending_bias: Dense | None = None  # a Dense from MatMul, which an Add may give a bias
        self.cast: Rescale | None = None  # a Rescale from Cast, which a Mul right after it gives its scale

    # -- the walk ------------------------------------------------------------------------
    def network(self) -> Sequential:
        self._start()
        for node in self.graph.nodes:
            self._node(node)
        if self.current != self.output.name:
            raise ModelFileError(
                f"{self.where}: the graph's output {self.output.name!r} is not the end of the chain "
                f"(which is {self.current!r}); only sequential graphs are supported"
            )
        self._check_output_shape()
        layers = self.layers or [Linear()]
        try:
            net = Sequential(layers, input_shape=self.input_shape, dtype=self.dtype or np.float32)
        except LayerwiseError as e:
            raise ModelFileError(f"{self.where}: the layers do not fit together ({e})") from None
        for layer, weights in zip(net.layers, self.weights, strict=False):
            for name, value in weights.items():
                target = layer.params.get(name, layer.buffers.get(name))
                target[...] = value
        return net

    def _start(self) -> None:
        inputs = [v for v in self.graph.inputs if v.name not in self.constants]
        if len(inputs) != 1 or len(self.graph.outputs) != 1:
            raise ModelFileError(
                f"{self.where}: the graph has {len(inputs)} data inputs and {len(self.graph.outputs)} outputs; "
                "a sequential network has one of each"
            )
        (info,), self.output = inputs, self.graph.outputs[0]
        if info.elem_type not in FLOATS and info.elem_type not in INTEGERS:
            raise ModelFileError(
                f"{self.where}: input {info.name!r} has type {TYPE_NAMES.get(info.elem_type, info.elem_type)}; "
                "expected float, double or an integer type"
            )
        dims = info.dims
        if dims is None or len(dims) < 2 or any(not isinstance(d, int) or d < 1 for d in dims[1:]):
            raise ModelFileError(
                f"{self.where}: input {info.name!r} has shape {dims}; expected (batch, ...) with every "
                "dimension after the batch a fixed positive size"
            )
        if math.prod(dims[1:]) > 2**31:
            raise ModelFileError(f"{self.where}: input {info.name!r} has shape {dims}: too large")
        self.input_shape = tuple(dims[1:])
        self.batch = dims[0]
        self.shape: tuple[int, ...] = self.input_shape
        self.current = info.name
        self.elem_type = info.elem_type
        if info.elem_type in FLOATS:
            self.dtype = FLOATS[info.elem_type]
        self.produced = {info.name, *self.constants}

    def _node(self, node: Node) -> None:
        what = f"node {node.name or '(unnamed)'!r} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            raise ModelFileError(
                f"{self.where}: {what} is from domain {node.domain!r}; only standard ONNX is supported"
            )
        if not node.outputs or not node.outputs[0]:
            raise ModelFileError(f"{self.where}: {what} has no output")
        for out in node.outputs:
            if out and out in self.produced:
                raise ModelFileError(f"{self.where}: {what} writes {out!r}, which already has a value")
        self.what = what
        if node.op_type == "Constant":
            self.constants[node.outputs[0]] = self._constant_node(node)
        elif node.op_type == "Identity" and node.inputs and node.inputs[0] in self.constants:
            self.constants[node.outputs[0]] = self.constants[node.inputs[0]]
        else:
            handler = getattr(self, f"_op_{node.op_type}", None) if node.op_type in ALLOWED else None
            if handler is None:
                raise ModelFileError(
                    f"{self.where}: {what}: operator {node.op_type!r} is not supported "
                    f"(supported: {', '.join(sorted(ALLOWED))})"
                )
            for key, attr in node.attributes.items():
                if key not in ALLOWED[node.op_type] or attr.has_subgraph:
                    raise ModelFileError(f"{self.where}: {what}: attribute {key!r} is not supported")
            data = [name for name in node.inputs if name and name not in self.constants]
            if data != [self.current]:
                raise ModelFileError(
                    f"{self.where}: {what} takes {data or 'only constants'}; a sequential graph's node takes "
                    f"the previous node's output {self.current!r} (and constants)"
                )
            handler(node)
            self.current = node.outputs[0]
        self.produced.update(o for o in node.outputs if o)

    def _add(self, layer: Layer, **weights: np.ndarray) -> None:
        try:
            shapes = {**layer.param_shapes(self.shape), **layer.buffer_shapes(self.shape)}
            for name, value in weights.items():
                if tuple(value.shape) != tuple(shapes[name]):
                    raise ModelFileError(
                        f"{self.where}: {self.what}: {name} has shape {tuple(value.shape)}, the layer "
                        f"{layer!r} on input {self.shape} needs {tuple(shapes[name])}"
                    )
            self.shape = layer.output_shape(self.shape)
        except ModelFileError:
            raise
        except LayerwiseError as e:
            raise ModelFileError(f"{self.where}: {self.what}: {e}") from None
        self.layers.append(layer)
        self.weights.append(weights)
        self.pending_bias = self.cast = None

    # -- constants and attributes ----------------------------------------------------------
    def const(self, node: Node, index: int, what: str, float_only: bool = True) -> np.ndarray:
        if index >= len(node.inputs) or node.inputs[index] not in self.constants:
            raise ModelFileError(f"{self.where}: {self.what}: {what} (input {index}) must be a constant")
        name = node.inputs[index]
        value = self.constants[name]
        if isinstance(value, Tensor):
            value = tensor_array(value, self.data, self.where, "tensor")
            self.constants[name] = value
        if float_only:
            if value.dtype not in (np.float32, np.float64):
                raise ModelFileError(f"{self.where}: {self.what}: {what} {name!r} is {value.dtype}, expected floats")
            if self.dtype is None:
                self.dtype = value.dtype
            if value.dtype != self.dtype:
                raise ModelFileError(
                    f"{self.where}: {self.what}: {what} {name!r} is {value.dtype}, the network computes in {self.dtype}"
                )
            if not np.isfinite(value).all():
                raise ModelFileError(f"{self.where}: {self.what}: {what} {name!r} holds NaN or inf")
        return value

    def attr(self, node: Node, name: str, default: Any, kind: str = "i") -> Any:
        attr: Attribute | None = node.attributes.get(name)
        if attr is None:
            return default
        expected = {"i": 2, "f": 1, "s": 3, "ints": 7}[kind]
        if attr.type not in (0, expected):
            raise ModelFileError(f"{self.where}: {self.what}: attribute {name!r} has the wrong type")
        return {"i": attr.i, "f": attr.f, "s": attr.s, "ints": attr.ints}[kind]

    def bad(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {self.what}: {message}")

    def _constant_node(self, node: Node) -> np.ndarray | Tensor:
        if len(node.attributes) != 1:
            raise self.bad("a Constant needs exactly one value attribute")
        (key, attr), = node.attributes.items()  # fmt: skip
        if key == "value" and attr.t is not None:
            return attr.t
        if key == "value_float":
            return np.array(attr.f, np.float32)
        if key == "value_floats":
            return np.array(attr.floats, np.float32)
        if key == "value_int":
            return np.array(attr.i, np.int64)
        if key == "value_ints":
            return np.array(attr.ints, np.int64)
        raise self.bad(f"Constant attribute {key!r} is not supported")

    def _check_output_shape(self) -> None:
        dims = self.output.dims
        if dims and len(dims) >= 1:
            given = dims[1:]
            if len(given) != len(self.shape) or any(
                isinstance(g, int) and g != s for g, s in zip(given, self.shape, strict=True)
            ):
                raise ModelFileError(
                    f"{self.where}: the output {self.output.name!r} is declared {dims}, but the layers give "
                    f"(batch, {', '.join(map(str, self.shape))})"
                )
