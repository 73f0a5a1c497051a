"""Element-wise nonlinearities (and Softmax), each forward beside its backward.

Each keeps its output y, from which its derivative follows.  With ``inplace`` set
(a network does that where it owns the arrays) forward overwrites x and backward
overwrites dy, saving two allocations per layer and step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Layer, register_layer


class Activation(Layer):
    """An element-wise nonlinearity ``y = f(x)``; backward uses the saved output y."""

    can_work_in_place = True
    keeps_output = True

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)
        self.y: np.ndarray | None = None

    def _out(self, a: np.ndarray) -> np.ndarray | None:
        return a if self.inplace else None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Activation:
        # Version-1 files store "inplace"; a network now decides that itself.
        return cls(**{k: v for k, v in config.items() if k != "inplace"})


@register_layer
class Linear(Activation):
    """Identity, the seed's ``Linear`` nonlinearity: y = x, dx = dy."""

    keeps_output = False

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray:
        return dy


@register_layer
class ReLU(Activation):
    """y = max(x, 0); dx = dy where y > 0, else 0."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.y = np.maximum(x, 0, out=self._out(x))
        return self.y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray:
        return np.multiply(dy, self.y > 0, out=self._out(dy))


@register_layer
class Sigmoid(Activation):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2 so it never overflows; dx = dy·y(1−y)."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = np.multiply(x, 0.5, out=self._out(x))
        np.tanh(y, out=y)
        y += 1
        y *= 0.5
        self.y = y
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray:
        return np.multiply(dy, self.y * (1 - self.y), out=self._out(dy))


Logistic = Sigmoid


@register_layer
class Tanh(Activation):
    """y = tanh(x); dx = dy·(1 − y²)."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.y = np.tanh(x, out=self._out(x))
        return self.y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray:
        return np.multiply(dy, 1 - self.y * self.y, out=self._out(dy))


@register_layer
class Softmax(Activation):
    """p = softmax(x) over axis 1 (the features, or the channels of an image); backward is Problem 1's Jacobian.

    With dp_j/dx_i = p_j(δ_ij − p_i):  dx_i = Σ_j dy_j p_j(δ_ij − p_i) = p_i (dy_i − Σ_j dy_j p_j).
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = np.subtract(x, x.max(axis=1, keepdims=True), out=self._out(x))
        np.exp(y, out=y)
        y /= y.sum(axis=1, keepdims=True)
        self.y = y
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray:
        dot = np.sum(dy * self.y, axis=1, keepdims=True)
        dx = np.subtract(dy, dot, out=self._out(dy))
        dx *= self.y
        return dx


ACTIVATIONS: dict[str, type[Activation]] = {
    "linear": Linear,
    "identity": Linear,
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "logistic": Sigmoid,
    "tanh": Tanh,
    "softmax": Softmax,
}


def get_activation(name: str | type[Activation] | Activation) -> type[Activation]:
    """The activation class for a case-insensitive name (``"ReLU"``), a class, or an instance."""
    if isinstance(name, Activation):
        return type(name)
    if isinstance(name, type) and issubclass(name, Activation):
        return name
    if isinstance(name, str) and name.lower() in ACTIVATIONS:
        return ACTIVATIONS[name.lower()]
    raise ConfigError(
        f"activation: expected one of {sorted(set(ACTIVATIONS))} (any case) or an Activation class, got {name!r}"
    )
