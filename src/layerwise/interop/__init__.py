"""Interoperability: ONNX, PyTorch and safetensors.

=============================================  ==============================================
``to_onnx(net_or_model, path)``                export for ONNX Runtime and other runtimes
``from_onnx(path)``                            a sequential ONNX graph as a ``Sequential``
``load_onnx_model(path)``                      the same inside a ``Model`` (loss from metadata)
``register_onnx_exporter(LayerCls)``           teach ``to_onnx`` a user layer
``to_torch(net)`` / ``from_torch(m, shape)``   ``torch.nn.Sequential`` and back, with weights
``save_safetensors`` / ``load_safetensors``    weights by name, no pickle; PyTorch state dicts
=============================================  ==============================================

Importing this package imports only NumPy: ``onnx`` and ``torch`` are imported by the
functions that need them (``pip install 'layerwise[onnx]'`` / ``'layerwise[torch]'``).
``from_onnx`` and the safetensors functions need neither.
"""

from ._deps import MissingDependencyError
from .onnx_export import OnnxGraph, register_onnx_exporter, to_onnx
from .onnx_import import from_onnx, load_onnx_model
from .safetensors import (
    load_safetensors,
    read_safetensors,
    save_safetensors,
    torch_state_dict,
    write_safetensors,
)
from .torch_bridge import from_torch, to_torch

__all__ = [
    "MissingDependencyError",
    "OnnxGraph",
    "from_onnx",
    "from_torch",
    "load_onnx_model",
    "load_safetensors",
    "read_safetensors",
    "register_onnx_exporter",
    "save_safetensors",
    "to_onnx",
    "to_torch",
    "torch_state_dict",
    "write_safetensors",
]
