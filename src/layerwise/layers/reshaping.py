"""Layers that change how the data looks, not what it means: ``Rescale`` and ``Flatten``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Layer, Shape, register_layer


@register_layer
class Rescale(Layer):
    """y = x · scale, cast to the network's dtype: lets a network take raw uint8 pixels (Keras' Rescaling).

    Keeping the data set as uint8 and scaling one batch at a time saves memory
    (MNIST: 47 MB instead of 188 MB) and a full pass over the data.
    """

    returns_new_arrays = True
    casts_input = True

    def __init__(self, scale: float, dtype: Any = None) -> None:
        super().__init__(dtype)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale == 0:
            raise ConfigError(f"Rescale: scale must be a finite non-zero number, got {scale!r}")
        self.scale = float(scale)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = x.astype(self.dtype or np.float32)
        y *= self.scale
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy * self.scale if need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def __repr__(self) -> str:
        inverse = 1 / self.scale
        shown = f"1/{round(inverse)}" if abs(inverse - round(inverse)) < 1e-9 else f"{self.scale!r}"
        return f"Rescale(scale={shown})"


@register_layer
class Flatten(Layer):
    """x: (batch, d1, d2, ...) -> (batch, d1·d2·...), in C order (channel, row, column), as PyTorch flattens.

    A view where the memory allows it; backward reshapes dy back.
    """

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy.reshape(self._shape) if need_dx else None
