"""Layers: each one's ``forward`` and ``backward`` side by side.

Samples are rows: ``x`` has shape (batch, features).  A layer remembers what its
backward pass needs (its input for ``Dense``, its output for the activations)
during ``forward``; ``backward(dy)`` takes dJ/dy and returns dJ/dx, writing the
gradients of its parameters into ``layer.grads`` (overwriting, not adding).

The seed's names ``doForward`` / ``doBackward`` are aliases of ``forward`` /
``backward`` on every layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigError, ShapeError
from .init import get_initializer


def float_dtype(dtype: Any) -> np.dtype:
    """``np.dtype(dtype)`` if it is float32 or float64, else ConfigError: the only dtypes layers compute in."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        result = None
    if result not in (np.float32, np.float64):
        raise ConfigError(f"dtype: expected float32 or float64, got {dtype!r}")
    return result


class Layer:
    """Base class.  ``params`` / ``grads`` map names to arrays of equal shapes."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def doForward(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.forward(x)

    def doBackward(self, dy: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.backward(dy)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def output_features(self, n_in: int) -> int:
        """Number of output features for ``n_in`` input features."""
        return n_in

    def config(self) -> dict[str, Any]:
        """JSON-able description from which ``layer_from_config`` rebuilds the layer."""
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Affine layer ``y = x @ W + b``.

    W: (n_in, n_out), b: (n_out,); x: (batch, n_in) -> y: (batch, n_out).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        init: Any = "he",
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float32,
        init_scale: float | None = None,
    ) -> None:
        super().__init__()
        for arg, value in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"Dense: {arg} must be a positive integer, got {value!r}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.dtype = float_dtype(dtype)
        init_fn = get_initializer(init)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        kwargs = {} if init_scale is None else {"scale": init_scale}
        W = np.asarray(init_fn(self.n_in, self.n_out, rng, **kwargs), dtype=self.dtype)
        if W.shape != (self.n_in, self.n_out):
            raise ConfigError(f"init returned shape {W.shape}, expected {(self.n_in, self.n_out)}")
        self.params = {"W": W, "b": np.zeros(self.n_out, self.dtype)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(self.n_out, self.dtype)}
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x  # dW = x.T @ dy needs it
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """dy: (batch, n_out) -> dx = dy @ W.T: (batch, n_in); sets dW = x.T @ dy, db = sum(dy)."""
        np.matmul(self.x.T, dy, out=self.grads["W"])
        np.sum(dy, axis=0, out=self.grads["b"])
        # The network's first layer skips dx: nobody needs the gradient of the data.
        return dy @ self.params["W"].T if need_dx else None

    # Named access, as in the seed: layer.W, layer.dW ...  Assignment copies into the
    # existing array, because a network keeps all parameters in one contiguous buffer.
    W = property(lambda self: self.params["W"], lambda self, v: self._assign("W", v))
    b = property(lambda self: self.params["b"], lambda self, v: self._assign("b", v))
    dW = property(lambda self: self.grads["W"])
    db = property(lambda self: self.grads["b"])

    def _assign(self, name: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        if value.shape != self.params[name].shape:
            raise ShapeError(f"Dense.{name}: expected shape {self.params[name].shape}, got {value.shape}")
        self.params[name][...] = value

    def output_features(self, n_in: int) -> int:
        return self.n_out

    def config(self) -> dict[str, Any]:
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out}


class Activation(Layer):
    """An element-wise nonlinearity ``y = f(x)``; backward uses the saved output y.

    ``inplace=True`` overwrites x in forward and dy in backward (saving two
    allocations per layer and step); networks use it on arrays they own.
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.y: np.ndarray | None = None

    def _out(self, a: np.ndarray) -> np.ndarray | None:
        return a if self.inplace else None

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "inplace": self.inplace}


class Linear(Activation):
    """Identity, the seed's ``Linear`` nonlinearity: y = x, dx = dy."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy


class ReLU(Activation):
    """y = max(x, 0); dx = dy where y > 0, else 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.maximum(x, 0, out=self._out(x))
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.multiply(dy, self.y > 0, out=self._out(dy))


class Sigmoid(Activation):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2 so it never overflows; dx = dy·y(1−y)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.multiply(x, 0.5, out=self._out(x))
        np.tanh(y, out=y)
        y += 1
        y *= 0.5
        self.y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.multiply(dy, self.y * (1 - self.y), out=self._out(dy))


Logistic = Sigmoid


class Tanh(Activation):
    """y = tanh(x); dx = dy·(1 − y²)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.tanh(x, out=self._out(x))
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.multiply(dy, 1 - self.y * self.y, out=self._out(dy))


class Softmax(Activation):
    """p = softmax(x) over each row; backward is the Jacobian of the seed's Problem 1.

    With dp_j/dx_i = p_j(δ_ij − p_i):  dx_i = Σ_j dy_j p_j(δ_ij − p_i) = p_i (dy_i − Σ_j dy_j p_j).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.subtract(x, x.max(axis=1, keepdims=True), out=self._out(x))
        np.exp(y, out=y)
        y /= y.sum(axis=1, keepdims=True)
        self.y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dot = np.sum(dy * self.y, axis=1, keepdims=True)
        dx = np.subtract(dy, dot, out=self._out(dy))
        dx *= self.y
        return dx


class Rescale(Layer):
    """y = x · scale, cast to ``dtype``: lets a network take raw uint8 pixels (Keras' Rescaling).

    Keeping the data set as uint8 and scaling one batch at a time saves memory
    (MNIST: 47 MB instead of 188 MB) and a full pass over the data.
    """

    def __init__(self, scale: float, dtype: Any = np.float32) -> None:
        super().__init__()
        self.scale = float(scale)
        self.dtype = float_dtype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x.astype(self.dtype)
        y *= self.scale
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.scale

    def config(self) -> dict[str, Any]:
        return {"type": "Rescale", "scale": self.scale}

    def __repr__(self) -> str:
        inverse = 1 / self.scale
        shown = f"1/{round(inverse)}" if abs(inverse - round(inverse)) < 1e-9 else f"{self.scale!r}"
        return f"Rescale(scale={shown})"


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


def layer_from_config(config: dict[str, Any], dtype: Any = np.float32) -> Layer:
    """Rebuild a layer (parameters zeroed) from ``Layer.config()``; used by ``layerwise.load``."""
    kind = config.get("type")
    if kind == "Dense":
        return Dense(config["n_in"], config["n_out"], init="zeros", dtype=dtype)
    if kind == "Rescale":
        return Rescale(config["scale"], dtype=dtype)
    for cls in ACTIVATIONS.values():
        if cls.__name__ == kind:
            return cls(inplace=config.get("inplace", False))
    raise ConfigError(f"layer config: unknown layer type {kind!r}")
