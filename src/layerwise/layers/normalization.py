"""``BatchNorm``: normalise each feature (or channel) by batch statistics, with PyTorch's semantics."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from .base import Layer, Shape, expect_rank, register_layer


@register_layer
class BatchNorm(Layer):
    """y = γ · (x − μ) / √(σ² + eps) + β, per feature of (batch, features) or per channel of (batch, C, H, W).

    Training: μ, σ² are the batch's mean and (biased) variance over every axis but
    the feature/channel axis, and the running statistics move towards them:
    running_mean ← (1 − momentum)·running_mean + momentum·μ, running_var likewise
    with the unbiased variance σ²·n/(n − 1).  Inference: μ, σ² are the running
    statistics.  Those two are buffers: saved with the model, never trained.
    momentum 0.1 and eps 1e-5 as in PyTorch's BatchNorm1d/2d.

    Backward (training), with x̂ the normalised input and n values per channel:
    dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ / (n·√(σ² + eps)) · (n·dy − dβ − x̂·dγ).
    """

    returns_new_arrays = True

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, dtype: Any = None) -> None:
        super().__init__(dtype)
        for name, value in (("momentum", momentum), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"BatchNorm: {name} must be a number in [0, 1], got {value!r}")
        self.momentum, self.eps = float(momentum), float(eps)

    def output_shape(self, input_shape: Shape) -> Shape:
        expect_rank(self, input_shape, (1, 3))
        return tuple(input_shape)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"gamma": (input_shape[0],), "beta": (input_shape[0],)}

    def buffer_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"running_mean": (input_shape[0],), "running_var": (input_shape[0],)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape)
        n = input_shape[0]
        self._set_params(gamma=np.ones(n), beta=np.zeros(n))
        self.buffers = {"running_mean": np.zeros(n, self.dtype), "running_var": np.ones(n, self.dtype)}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x: (batch, C) or (batch, C, H, W) -> y of the same shape."""
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.ndim - 2)  # broadcasts a (C,) vector over x
        self._batch_stats = training
        if training:
            n = x.size // x.shape[1]
            if n < 2:
                raise InputError(f"BatchNorm: training needs more than 1 value per channel, got input shape {x.shape}")
            mean = x.mean(axis=axes)
            centred = x - mean.reshape(shape)
            var = np.mean(np.square(centred), axis=axes)
            m = self.momentum
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= 1 - m
            running_mean += m * mean
            running_var *= 1 - m
            running_var += (m * n / (n - 1)) * var
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            centred = x - mean.reshape(shape)
        self._inv_std = 1 / np.sqrt(var + self.eps)
        self._xhat = centred
        self._xhat *= self._inv_std.reshape(shape)
        y = self._xhat * self.params["gamma"].reshape(shape)
        y += self.params["beta"].reshape(shape)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        axes = (0,) if dy.ndim == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (dy.ndim - 2)
        np.sum(dy, axis=axes, out=self.grads["beta"])
        np.sum(dy * self._xhat, axis=axes, out=self.grads["gamma"])
        if not need_dx:
            return None
        scale = (self.params["gamma"] * self._inv_std).reshape(shape)
        if not self._batch_stats:  # the statistics were constants
            return dy * scale
        n = dy.size // dy.shape[1]
        dx = dy * n
        dx -= self.grads["beta"].reshape(shape)
        dx -= self._xhat * self.grads["gamma"].reshape(shape)
        dx *= scale / n
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps}
