"""Architecture string + input shape -> layers -> ``Sequential``.

``build_network("[conv(32,3),relu,maxpool(2),(10,Linear)]", (1, 28, 28), seed=0)``
gives Rescale(1/255), Conv2D(32, 3), ReLU, MaxPool2D(2), Flatten, Dense(10), Linear.
Each item's output shape is worked out while the layers are made, so a layer that
does not fit (a 5×5 kernel on a 4×4 image) is reported at its place in the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArchitectureParseError, ConfigError, ShapeError
from ..layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Rescale,
    get_activation,
)
from ..layers.base import Shape, check_shape
from .parser import LayerSpec, format_layers, is_mlp, parse_layers

if TYPE_CHECKING:
    from ..network import Sequential

#: Kinds that neither change the next activation's meaning nor have weights: looked past by "auto" init.
_TRANSPARENT = frozenset({"batchnorm", "maxpool", "avgpool", "dropout", "flatten"})


def _specs_and_text(arch: str | Sequence[LayerSpec]) -> tuple[list[LayerSpec], str]:
    if isinstance(arch, str):
        return parse_layers(arch), arch
    text = format_layers(list(arch))  # positions then refer to the canonical text
    return parse_layers(text), text


def _auto_init(specs: list[LayerSpec], i: int) -> str:
    """He for a layer whose output goes into a ReLU (NeuralNetwork's rule), else Xavier/Glorot."""
    spec = specs[i]
    if spec.kind == "dense" and spec.args["activation"] != "linear":
        return "he" if get_activation(spec.args["activation"]) is ReLU else "xavier"
    for later in specs[i + 1 :]:
        if later.kind == "activation":
            return "he" if get_activation(later.args["name"]) is ReLU else "xavier"
        if later.kind not in _TRANSPARENT:
            break
    return "xavier"


def _make(spec: LayerSpec, init: str, dtype: Any) -> list[Layer]:
    a = spec.args
    if spec.kind == "dense":  # the seed's pair: Dense + its activation (Linear included, as NeuralNetwork does)
        return [Dense(a["units"], init=init, dtype=dtype), get_activation(a["activation"])()]
    if spec.kind == "conv":
        return [Conv2D(a["filters"], a["kernel"], stride=a["stride"], padding=a["pad"], init=init, dtype=dtype)]
    if spec.kind == "maxpool":
        return [MaxPool2D(a["size"], a["stride"])]
    if spec.kind == "avgpool":
        return [AvgPool2D(a["size"], a["stride"])]
    if spec.kind == "dropout":
        return [Dropout(a["rate"])]
    if spec.kind == "batchnorm":
        return [BatchNorm(dtype=dtype)]
    if spec.kind == "flatten":
        return [Flatten()]
    return [get_activation(a["name"])()]


def build_layers(
    arch: str | Sequence[LayerSpec], input_shape: Sequence[int], init: str = "auto", dtype: Any = np.float32
) -> list[Layer]:
    """The (unbuilt) layers of ``arch`` for samples of ``input_shape``, e.g. (1, 28, 28) or (784,).

    A ``Flatten`` goes in before a Dense layer that would get an image.  Raises
    ``ArchitectureParseError`` at the item whose layer does not fit its input shape.
    init: ``"auto"`` (He for layers feeding a ReLU, Xavier otherwise) or an initialiser name.
    """
    specs, text = _specs_and_text(arch)
    return _build(specs, text, check_shape("input_shape", input_shape), init, dtype)


def _build(specs: list[LayerSpec], text: str, shape: Shape, init: str, dtype: Any) -> list[Layer]:
    layers: list[Layer] = []
    for i, spec in enumerate(specs):
        made = _make(spec, _auto_init(specs, i) if init == "auto" else init, dtype)
        if spec.kind == "dense" and len(shape) > 1:
            made.insert(0, Flatten())
        for layer in made:
            try:
                shape = layer.output_shape(shape)
            except (ShapeError, ConfigError) as e:
                shown = "(" + ", ".join(map(str, shape)) + ")"
                message = f"{spec} cannot take input of shape {shown}: {e}"
                raise ArchitectureParseError(message, text, spec.position) from None

        layers.extend(made)
    return layers


def build_network(
    arch: str | Sequence[LayerSpec],
    input_shape: Sequence[int] | int,
    seed: int | None = 0,
    input_scale: float | None = 1 / 255,
    dtype: Any = np.float32,
    init: str = "auto",
) -> Sequential:
    """The network of an architecture string for samples of ``input_shape``.

    input_shape: (n_features,) for flat rows, (channels, height, width) for images.
    input_scale: a ``Rescale(input_scale)`` layer goes first (default 1/255: the
    network takes raw uint8 pixels); None for none.  An MLP string on flat rows
    gives the seed's ``NeuralNetwork`` (same layers and weights as
    ``NeuralNetwork(n, arch, seed=seed)``).
    """
    from ..network import NeuralNetwork, Sequential

    shape = check_shape("input_shape", (input_shape,) if isinstance(input_shape, (int, np.integer)) else input_shape)
    specs, text = _specs_and_text(arch)
    if is_mlp(specs) and len(shape) == 1 and init == "auto":
        pairs = [(s.args["units"], s.args["activation"]) for s in specs]
        return NeuralNetwork(shape[0], pairs, seed=seed, dtype=dtype, input_scale=input_scale)
    layers = _build(specs, text, shape, init, dtype)
    if input_scale is not None:
        layers.insert(0, Rescale(input_scale, dtype=dtype))
    return Sequential(layers, input_shape=shape, dtype=dtype, seed=seed)
