"""``MaxPool2D`` and ``AvgPool2D``: a summary of each window, and the gradient sent back to it.

x: (batch, C, H, W) -> y: (batch, C, OH, OW) with OH = (H − ph) // stride + 1 (rows
that do not fill a window are dropped, as PyTorch's default ``ceil_mode=False``).
The NumPy code loops over the ph·pw offsets inside a window, never over pixels;
it is the reference.  Where Numba is installed MaxPool2D uses compiled kernels
(``_fast/``, chosen by ``use_kernels``) that find each window's maximum and its
position in one pass and send the gradient back in one more, in channels-last
memory (the layout a Conv2D hands on) for the output and for dx.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, ShapeError
from . import _fast
from .activations import ReLU
from .base import Layer, Shape, expect_rank, pair, register_layer


class _Pool2D(Layer):
    returns_new_arrays = True

    def __init__(self, pool_size: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.pool_size = pair(name, "pool_size", pool_size)
        self.stride = self.pool_size if stride is None else pair(name, "stride", stride)

    def output_shape(self, input_shape: Shape) -> Shape:
        expect_rank(self, input_shape, (3,), " (images are (channels, height, width))")
        C, H, W = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.stride
        if ph > H or pw > W:
            raise ShapeError(f"{type(self).__name__}: pool {ph}x{pw} is larger than the input {H}x{W}")
        return (C, (H - ph) // sh + 1, (W - pw) // sw + 1)

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """(B, C, OH, OW, ph, pw): every window, as a view."""
        (ph, pw), (sh, sw) = self.pool_size, self.stride
        OH, OW = (x.shape[2] - ph) // sh + 1, (x.shape[3] - pw) // sw + 1
        return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, : sh * (OH - 1) + 1 : sh, : sw * (OW - 1) + 1 : sw]

    def _offsets(self, shape: tuple[int, ...]) -> Any:
        """For each offset (i, j) inside a window: the view of dx that offset touches in every window."""
        (ph, pw), (sh, sw) = self.pool_size, self.stride
        OH, OW = shape[2], shape[3]
        for i in range(ph):
            for j in range(pw):
                yield i * pw + j, (slice(None), slice(None), slice(i, i + sh * (OH - 1) + 1, sh),
                                   slice(j, j + sw * (OW - 1) + 1, sw))  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        size = self.pool_size[0] if self.pool_size[0] == self.pool_size[1] else list(self.pool_size)
        stride = self.stride[0] if self.stride[0] == self.stride[1] else list(self.stride)
        return {"pool_size": size, "stride": stride}


@register_layer
class MaxPool2D(_Pool2D):
    """y = the largest value of each window; dx sends dy to that value's position (the first, on ties)."""

    def __init__(self, pool_size: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None) -> None:
        super().__init__(pool_size, stride)
        self.relu_fused = False  # did the last forward pass also apply the ReLU before it?
        # Compiled kernels (``_fast``) where Numba is installed; False forces the NumPy reference.
        self.use_kernels = _fast.enabled()
        self._scratch = _fast.Scratch()  # the winners' offsets, reused while the batch size repeats

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self._forward(x, relu=False)

    def _forward(self, x: np.ndarray, relu: bool) -> np.ndarray:
        """forward; with relu (compiled kernels only) that of ReLU followed by this layer (``ReLUMaxPool2D``)."""
        x = np.asarray(x)
        self._x_shape = x.shape
        self._compiled = self.use_kernels  # backward must read the winners the way forward stored them
        self.relu_fused = relu
        if self._compiled:
            B, C, OH, OW = x.shape[0], *self.output_shape(x.shape[1:])
            offsets = np.int8 if self.pool_size[0] * self.pool_size[1] <= 127 else np.int32
            self._argmax = self._scratch.get("argmax", (B, OH, OW, C), np.dtype(offsets))
            return _fast.maxpool(x, self.pool_size, self.stride, self._argmax, relu=relu)
        if relu:
            raise ConfigError("MaxPool2D: a ReLU is merged into the pooling only by the compiled kernels")
        windows = self._windows(x)
        B, C, OH, OW, ph, pw = windows.shape
        flat = windows.reshape(B, C, OH, OW, ph * pw)  # a copy unless windows tile x exactly
        self._argmax = flat.argmax(axis=-1)  # which offset won, per window
        return np.take_along_axis(flat, self._argmax[..., None], axis=-1)[..., 0]

    def fuse_previous(self, previous: Layer) -> Layer | None:
        """After a ReLU: one pass does both (``ReLUMaxPool2D``), where the compiled kernels run."""
        return ReLUMaxPool2D(previous, self) if isinstance(previous, ReLU) else None

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        if not need_dx:
            return None
        if self._compiled:
            B, C, OH, OW = self._x_shape[0], *self.output_shape(self._x_shape[1:])
            if np.shape(dy) != (B, C, OH, OW):  # the kernel trusts the shapes
                raise ShapeError(
                    f"{type(self).__name__}: dy must have the output's shape {(B, C, OH, OW)}, got {np.shape(dy)}"
                )
            return _fast.maxpool_backward(dy, self._argmax, self._x_shape, self.pool_size, self.stride)
        dx = np.zeros(self._x_shape, dy.dtype)
        for k, where in self._offsets(dy.shape):
            dx[where] += np.where(self._argmax == k, dy, 0)
        return dx


class ReLUMaxPool2D(Layer):
    """ReLU followed by MaxPool2D in one pass, which a network runs in place of the two layers.

    max over a window of relu(x) = relu(max over the window of x): the pooling kernel
    finds the window's maximum and clamps it at 0, and the ReLU's own passes over its
    full-size input and gradient disappear.  The gradient is unchanged: dy goes to the
    window's first maximum when that is positive, else nowhere (the ReLU would have
    zeroed it), as ``arg`` = -1 records.  Results are bit-identical to the two layers'
    (``tests/test_conv_kernels.py``).  Without the compiled kernels it runs the two layers.
    """

    def __init__(self, relu: ReLU, pool: MaxPool2D) -> None:
        super().__init__()
        self.relu, self.pool = relu, pool

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if self.pool.use_kernels:
            return self.pool._forward(x, relu=True)
        return self.pool.forward(self.relu.forward(x, training), training)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        if not need_dx:
            return None
        dx = self.pool.backward(dy)
        # A forward pass observed layer by layer (hooks) ran the ReLU on its own: so must backward.
        return dx if self.pool.relu_fused else self.relu.backward(dx)


@register_layer
class AvgPool2D(_Pool2D):
    """y = the mean of each window; dx spreads dy / (ph·pw) evenly over it."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x_shape = x.shape
        return self._windows(x).mean(axis=(-2, -1), dtype=x.dtype)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        if not need_dx:
            return None
        dx = np.zeros(self._x_shape, dy.dtype)
        share = dy / (self.pool_size[0] * self.pool_size[1])
        for _, where in self._offsets(dy.shape):
            dx[where] += share
        return dx
