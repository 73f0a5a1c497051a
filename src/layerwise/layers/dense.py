"""``Dense``: the affine layer y = x W + b, forward beside backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..init import get_initializer
from .base import Layer, Shape, expect_rank, float_dtype, positive_int, register_layer


@register_layer
class Dense(Layer):
    """Affine layer ``y = x @ W + b``.

    W: (n_in, units), b: (units,); x: (batch, n_in) -> y: (batch, units).

    ``Dense(units)`` takes n_in from the network's shape inference (Keras style);
    ``Dense(n_in, n_out)`` builds at once, as in the seed's course code.
    init: ``"he"``, ``"xavier"``, ``"uniform"``, ``"zeros"`` or ``(n_in, n_out, rng) -> W``.
    """

    returns_new_arrays = True

    def __init__(
        self,
        units: int,
        n_out: int | None = None,
        init: Any = "he",
        rng: np.random.Generator | int | None = None,
        dtype: Any = None,
        init_scale: float | None = None,
    ) -> None:
        super().__init__(dtype)
        if n_out is None:
            self.units = positive_int("Dense", "units", units)
        else:  # the two-argument form Dense(n_in, n_out)
            n_in = positive_int("Dense", "n_in", units)
            self.units = positive_int("Dense", "n_out", n_out)
        self.init = init
        self.init_fn = get_initializer(init)
        self.init_scale = init_scale
        self.x: np.ndarray | None = None
        if n_out is not None:
            self.dtype = float_dtype(np.float32 if dtype is None else dtype)
            self.build((n_in,), rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng))
        else:
            self._rng_arg = rng

    def output_shape(self, input_shape: Shape) -> Shape:
        expect_rank(self, input_shape, (1,), " (put a Flatten() before it)")
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (input_shape[0], self.units), "b": (self.units,)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape)
        if rng is None:
            arg = getattr(self, "_rng_arg", None)
            rng = arg if isinstance(arg, np.random.Generator) else np.random.default_rng(arg)
        shapes = self.param_shapes(self.input_shape)
        kwargs = {} if self.init_scale is None else {"scale": self.init_scale}
        W = np.asarray(self.init_fn(*shapes["W"], rng, **kwargs))
        if W.shape != shapes["W"]:
            raise ShapeError(f"Dense: init returned shape {W.shape}, expected {shapes['W']}")
        self._set_params(W=W, b=np.zeros(self.units))

    # -- the two passes ---------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x: (batch, n_in) -> y = x W + b: (batch, units)."""
        self.x = x  # dW = xᵀ dy needs it
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """dy: (batch, units) -> dx = dy Wᵀ: (batch, n_in); sets dW = xᵀ dy, db = Σ_batch dy."""
        np.matmul(self.x.T, dy, out=self.grads["W"])
        np.sum(dy, axis=0, out=self.grads["b"])
        return dy @ self.params["W"].T if need_dx else None

    # Named access, as in the seed: layer.W, layer.dW ...  Assignment copies into the
    # existing array, because a network keeps all parameters in one contiguous buffer.
    W = property(lambda self: self.params["W"], lambda self, v: self._assign("W", v))
    b = property(lambda self: self.params["b"], lambda self, v: self._assign("b", v))
    dW = property(lambda self: self.grads["W"])
    db = property(lambda self: self.grads["b"])

    @property
    def n_in(self) -> int | None:
        return None if self.input_shape is None else self.input_shape[0]

    @property
    def n_out(self) -> int:
        return self.units

    def _assign(self, name: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        if value.shape != self.params[name].shape:
            raise ShapeError(f"Dense.{name}: expected shape {self.params[name].shape}, got {value.shape}")
        self.params[name][...] = value

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dense:
        config = dict(config)
        if "n_out" in config:  # a version-1 model file: {"n_in": 784, "n_out": 140}
            n_in, n_out = config.pop("n_in", None), config.pop("n_out")
            layer = cls(n_out, **config)
            if n_in is not None:
                layer.input_shape = (n_in,)  # built by whoever loads it, once sizes are checked
            return layer
        return cls(**config)

    def __repr__(self) -> str:
        return f"Dense(n_in={self.n_in}, n_out={self.units})" if self.n_in is not None else f"Dense({self.units})"
