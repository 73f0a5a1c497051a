"""``to_onnx``: a layerwise network as an ONNX model that ONNX Runtime (or a browser, or a phone) can run.

Each layer becomes one or two standard ONNX operators, chosen so that the file runs
the same arithmetic as ``predict_logits`` in inference mode:

======================  =====================================================
Dense                   Gemm(x, W, b): W stays (n_in, units), the layout of y = x W + b
Conv2D                  Conv, pads (top, left, bottom, right): "same" may be asymmetric
MaxPool2D, AvgPool2D    MaxPool, AveragePool (no padding, floor mode)
Flatten                 Flatten(axis=1)
ReLU, Sigmoid, Tanh     Relu, Sigmoid, Tanh; Softmax → Softmax(axis=1); Linear → Identity
Dropout                 Dropout with its ratio, in inference mode: the identity
BatchNorm               BatchNormalization with the running statistics
Rescale                 Cast(to float) + Mul(scale): a uint8 image goes straight in
======================  =====================================================

The input and output have names (``input``, ``output`` unless given) and a symbolic
batch dimension; ``metadata_props`` carry the architecture, data set, loss and
accuracy where the model knows them.  Every file passes
``onnx.checker.check_model(full_check=True)`` before it is written.  A user layer
exports once it has an exporter::

    @register_onnx_exporter(Scale)
    def export_scale(layer, graph, x, input_shape):
        return graph.node("Mul", [x, graph.constant(layer.params["s"], "s")])

Needs the ``onnx`` package (``pip install 'layerwise[onnx]'``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import ConfigError
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
from ..layers.base import Shape
from ..network import Sequential
from ._deps import require

DEFAULT_OPSET = 17
MIN_OPSET = 13
# ONNX TensorProto element types of the dtypes an input may have.
ELEM_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7, "float64": 11}

Exporter = Callable[[Layer, "OnnxGraph", str, Shape], str]
_EXPORTERS: dict[type[Layer], Exporter] = {}


def register_onnx_exporter(layer_class: type[Layer]) -> Callable[[Exporter], Exporter]:
    """Decorator: ``fn(layer, graph, x, input_shape) -> output name`` exports ``layer_class``.

    ``x`` is the name of the layer's input tensor, ``input_shape`` its per-sample
    shape; build nodes with ``graph.node(op_type, inputs, **attributes)`` and
    weights with ``graph.constant(array, name)``.  Only exactly this class uses it
    (a subclass of Dense that computes something else must not export as Gemm).
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, Layer)):
        raise ConfigError(f"register_onnx_exporter: expected a Layer subclass, got {layer_class!r}")

    def register(fn: Exporter) -> Exporter:
        if not callable(fn):
            raise ConfigError(f"register_onnx_exporter({layer_class.__name__}): expected a function, got {fn!r}")
        _EXPORTERS[layer_class] = fn
        return fn

    return register


class OnnxGraph:
    """The graph under construction; an exporter adds nodes and constants through it."""

    def __init__(self, onnx: Any, dtype: np.dtype) -> None:
        self.onnx = onnx
        self.dtype = dtype  # the network's float dtype: weights and computation
        self.float_type = ELEM_TYPES[dtype.name]
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.prefix = ""  # the layer index, which names its nodes and weights ("3.W")
        self.tensor_type = self.float_type  # element type of the tensor the current layer receives
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self._names:
            k += 1
            candidate = f"{name}_{k}"
        self._names.add(candidate)
        return candidate

    def constant(self, array: Any, name: str) -> str:
        """Add ``array`` (cast to the network's dtype if it is a float array) as an initializer; its name."""
        value = np.asarray(array)
        if value.dtype.kind == "f":
            value = value.astype(self.dtype)
        full = self._unique(f"{self.prefix}.{name}" if self.prefix else name)
        # copy(order="C"), not ascontiguousarray, which turns a scalar into shape (1,)
        self.initializers.append(self.onnx.numpy_helper.from_array(value.copy(order="C"), full))
        return full

    def node(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        """Add one node with one output; returns the output's name."""
        name = self._unique(f"{self.prefix}.{op_type}" if self.prefix else op_type)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name


def to_onnx(
    net_or_model: Any,
    path: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    input_name: str = "input",
    output_name: str = "output",
    input_dtype: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Export a ``Sequential`` (or a ``Model``'s network) to ONNX; returns the ``onnx.ModelProto``.

    path: where to write the file (atomically); None only returns the model.
    opset: the ONNX opset (13 to the newest the installed ``onnx`` knows; default 17).
    input_dtype: the input's element type; by default uint8 when the network starts
    with ``Rescale`` (it takes raw pixels), else the network's float dtype.
    metadata: extra ``metadata_props`` (values made strings).  The input is
    (batch, *net.input_shape) with a symbolic batch dimension named ``batch``.

    Raises:
        ConfigError: a layer has no exporter (the message names it), or an argument is invalid.
        MissingDependencyError: ``onnx`` is not installed.
    """
    onnx = require("onnx", "onnx", "to_onnx")
    from ..model import Model

    model = net_or_model if isinstance(net_or_model, Model) else None
    net = model.net if model is not None else net_or_model
    if not isinstance(net, Sequential):
        raise ConfigError(f"net_or_model: expected a layerwise Sequential or Model, got {type(net_or_model).__name__}")
    if net.input_shape is None:
        raise ConfigError("net_or_model: the network has no input shape; build it with Sequential(..., input_shape=)")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"opset: expected an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    for what, name in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what}: expected a non-empty string, got {name!r}")
    if input_name == output_name:
        raise ConfigError(f"input_name and output_name must differ, both are {input_name!r}")
    if input_dtype is None:
        input_dtype = "uint8" if net.layers[0].casts_input else net.dtype.name
    if str(input_dtype) not in ELEM_TYPES:
        raise ConfigError(f"input_dtype: expected one of {sorted(ELEM_TYPES)}, got {input_dtype!r}")
    graph = OnnxGraph(onnx, net.dtype)
    graph._names.add(input_name)
    graph.tensor_type = ELEM_TYPES[str(input_dtype)]
    x = input_name
    if graph.tensor_type != graph.float_type and not net.layers[0].casts_input:
        x = graph.node("Cast", [x], to=graph.float_type)  # as Model casts inputs to the network's dtype
        graph.tensor_type = graph.float_type
    for i, (layer, shape) in enumerate(zip(net.layers, net.shapes, strict=True)):
        x = _export_layer(i, layer, graph, x, shape)
    if x == input_name:  # nothing computed (cannot happen with built-in layers, which all add a node)
        x = graph.node("Identity", [x])
    _rename_output(graph, x, output_name)
    helper = onnx.helper
    batch = ["batch"]
    graph_proto = helper.make_graph(
        graph.nodes,
        "layerwise",
        [helper.make_tensor_value_info(input_name, ELEM_TYPES[str(input_dtype)], batch + list(net.input_shape))],
        [helper.make_tensor_value_info(output_name, graph.float_type, batch + list(net.output_shape))],
        initializer=graph.initializers,
        doc_string=net.summary(),
    )
    from .. import __version__

    proto = helper.make_model(
        graph_proto,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="layerwise",
        producer_version=__version__,
    )
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    helper.set_model_props(proto, _metadata(net, model, metadata))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # onnx raises ValidationError / InferenceError: a broken user exporter
        raise ConfigError(f"to_onnx: the exported graph is not valid ONNX ({str(e).strip()[:500]})") from None
    if path is not None:
        with atomic_write(path) as f:
            f.write(proto.SerializeToString())
    return proto


def _export_layer(i: int, layer: Layer, graph: OnnxGraph, x: str, shape: Shape | None) -> str:
    exporter = _EXPORTERS.get(type(layer))
    if exporter is None:
        raise ConfigError(
            f"to_onnx: layers[{i}] {layer!r} ({type(layer).__name__}) has no ONNX exporter; "
            f"register one with @layerwise.interop.register_onnx_exporter({type(layer).__name__})"
        )
    graph.prefix = str(i)
    out = exporter(layer, graph, x, shape)
    if not isinstance(out, str) or not out:
        raise ConfigError(f"to_onnx: the exporter of layers[{i}] {layer!r} returned {out!r}, not a tensor name")
    graph.tensor_type = graph.float_type  # every layer hands on floats
    return out


def _rename_output(graph: OnnxGraph, old: str, new: str) -> None:
    for node in graph.nodes:
        for seq in (node.input, node.output):
            for k, name in enumerate(seq):
                if name == old:
                    seq[k] = new


def _metadata(net: Sequential, model: Any, extra: dict[str, Any] | None) -> dict[str, str]:
    """metadata_props: architecture, data set, loss, accuracy where known, train_config as JSON."""
    from .. import __version__

    config = dict(model.train_config) if model is not None else {}
    props = {
        "framework": f"layerwise {__version__}",
        "architecture": str(config.get("arch") or "[" + ", ".join(map(repr, net.layers)) + "]"),
        "layers": json.dumps(net.config()["layers"]),
    }
    if config.get("dataset"):
        props["dataset"] = str(config["dataset"])
    for key in ("test_accuracy", "accuracy", "val_accuracy"):
        if isinstance(config.get(key), (int, float)):
            props[key] = repr(float(config[key]))
    if model is not None:
        props["loss"] = type(model.loss).__name__
        props["train_config"] = json.dumps(config, default=str)
    for key, value in (extra or {}).items():
        props[str(key)] = value if isinstance(value, str) else json.dumps(value, default=str)
    return props


# -- the built-in layers ----------------------------------------------------------------
def _simple(op_type: str) -> Exporter:
    def export(layer: Layer, graph: OnnxGraph, x: str, shape: Shape) -> str:
        return graph.node(op_type, [x])

    return export


for _cls, _op in ((ReLU, "Relu"), (Sigmoid, "Sigmoid"), (Tanh, "Tanh"), (Linear, "Identity")):
    register_onnx_exporter(_cls)(_simple(_op))


@register_onnx_exporter(Softmax)
def _softmax(layer: Softmax, graph: OnnxGraph, x: str, shape: Shape) -> str:
    return graph.node("Softmax", [x], axis=1)  # layerwise normalises over axis 1 (features or channels)


@register_onnx_exporter(Dense)
def _dense(layer: Dense, graph: OnnxGraph, x: str, shape: Shape) -> str:
    # y = x W + b with W (n_in, units): Gemm's B without transposing.
    return graph.node("Gemm", [x, graph.constant(layer.params["W"], "W"), graph.constant(layer.params["b"], "b")])


@register_onnx_exporter(Conv2D)
def _conv(layer: Conv2D, graph: OnnxGraph, x: str, shape: Shape) -> str:
    top, bottom, left, right = layer.pads(shape)
    W, b = graph.constant(layer.params["W"], "W"), graph.constant(layer.params["b"], "b")
    return graph.node(
        "Conv",
        [x, W, b],
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=[top, left, bottom, right],  # ONNX order: all begins, then all ends
    )


def _pool(op_type: str) -> Exporter:
    def export(layer: Any, graph: OnnxGraph, x: str, shape: Shape) -> str:
        return graph.node(op_type, [x], kernel_shape=list(layer.pool_size), strides=list(layer.stride))

    return export


register_onnx_exporter(MaxPool2D)(_pool("MaxPool"))
register_onnx_exporter(AvgPool2D)(_pool("AveragePool"))


@register_onnx_exporter(Flatten)
def _flatten(layer: Flatten, graph: OnnxGraph, x: str, shape: Shape) -> str:
    return graph.node("Flatten", [x], axis=1)


@register_onnx_exporter(Dropout)
def _dropout(layer: Dropout, graph: OnnxGraph, x: str, shape: Shape) -> str:
    # Without a training_mode input ONNX's Dropout is the identity; the ratio is kept for the record.
    return graph.node("Dropout", [x, graph.constant(np.array(layer.rate, graph.dtype), "ratio")])


@register_onnx_exporter(BatchNorm)
def _batchnorm(layer: BatchNorm, graph: OnnxGraph, x: str, shape: Shape) -> str:
    names = [graph.constant(layer.params[k], k) for k in ("gamma", "beta")]
    names += [graph.constant(layer.buffers[k], k) for k in ("running_mean", "running_var")]
    # ONNX's momentum weighs the old running value: 1 − PyTorch's (and layerwise's) momentum.
    return graph.node("BatchNormalization", [x, *names], epsilon=layer.eps, momentum=1 - layer.momentum)


@register_onnx_exporter(Rescale)
def _rescale(layer: Rescale, graph: OnnxGraph, x: str, shape: Shape) -> str:
    if graph.tensor_type != graph.float_type:  # raw pixels: cast first, as Rescale's astype does
        x = graph.node("Cast", [x], to=graph.float_type)
    # A float scalar of the network's dtype: float32(scale), the number NumPy multiplies float32 arrays by.
    return graph.node("Mul", [x, graph.constant(np.array(layer.scale, graph.dtype), "scale")])
