"""``BatchNorm``: normalise each feature (or channel) by batch statistics, with PyTorch's semantics."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from . import _fast
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
        self._scratch = _fast.Scratch()  # a vector of ones: column sums as products 1ᵀ·rows

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
        rows = _rows(x)  # (n, C): every value of a channel in one column
        self._batch_stats = training
        if training:
            n = len(rows)
            if n < 2:
                raise InputError(f"BatchNorm: training needs more than 1 value per channel, got input shape {x.shape}")
            mean = self._column_sums(rows) / n
            centred = rows - mean
            var = np.einsum("ij,ij->j", centred, centred) / n
            m = self.momentum
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= 1 - m
            running_mean += m * mean
            running_var *= 1 - m
            running_var += (m * n / (n - 1)) * var
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            centred = rows - mean
        self._inv_std = 1 / np.sqrt(var + self.eps)
        self._xhat = centred
        self._xhat *= self._inv_std
        y = self._xhat * self.params["gamma"]
        y += self.params["beta"]
        return _like(y, x.shape)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        rows = _rows(dy)
        self.grads["beta"][...] = self._column_sums(rows)
        self.grads["gamma"][...] = np.einsum("ij,ij->j", rows, self._xhat)
        if not need_dx:
            return None
        scale = self.params["gamma"] * self._inv_std
        dx = rows * scale
        if not self._batch_stats:  # the statistics were constants
            return _like(dx, dy.shape)
        scale_n = scale / len(rows)  # dx = γ/(n·√(σ² + eps)) · (n·dy − dβ − x̂·dγ), in three passes
        dx -= scale_n * self.grads["beta"]
        dx -= self._xhat * (scale_n * self.grads["gamma"])
        return _like(dx, dy.shape)

    def _column_sums(self, rows: np.ndarray) -> np.ndarray:
        """Σ over the rows of (n, C): as 1ᵀ·rows, a BLAS product, 4x faster than np.sum(axis=0) (measured)."""
        return self._scratch.ones(len(rows), rows.dtype) @ rows

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps}


# Images are worked on as rows (batch·H·W, C), channels last, so that every per-channel vector
# broadcasts along contiguous memory and every sum runs down columns: a Conv2D hands on exactly
# that memory (an NCHW view of it), and the layer hands the same layout on.  Summing over
# axes (0, 2, 3) of the NCHW view instead was 3-5x slower (measured, 64×32×28×28).
def _rows(x: np.ndarray) -> np.ndarray:
    """(batch, C) as it is; (batch, C, H, W) -> (batch·H·W, C): a view of channels-last memory, else a copy."""
    if x.ndim == 2:
        return x
    return _fast.channels_last(x).reshape(-1, x.shape[1])


def _like(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """rows from ``_rows`` back to ``shape``: (batch, C, H, W) as an NCHW view of the rows' memory."""
    if len(shape) == 2:
        return rows
    B, C, H, W = shape
    return rows.reshape(B, H, W, C).transpose(0, 3, 1, 2)
