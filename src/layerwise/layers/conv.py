"""``Conv2D``: a Dense layer applied to every image patch.

Cut every (kh × kw) window of the input into a row — "im2col" — and a convolution
is the affine layer you already know, with the filters as W::

    cols = patches(x)                        # (batch·OH·OW, C·kh·kw)
    y    = cols @ W.reshape(F, -1).T + b     # (batch·OH·OW, F): Dense.forward
    dW   = dyᵀ @ cols,  db = Σ dy            # Dense.backward
    dcols = dy @ W.reshape(F, -1)            # Dense's dx, one row per patch ...
    dx   = sum_patches(dcols)                # ... added back where each patch came from ("col2im")

Images are NCHW, as in PyTorch and ONNX: x (batch, channels, height, width); the
filters W are (filters, in_channels, kh, kw), the PyTorch/ONNX layout.  The output
y is computed as (batch, OH, OW, F) rows and handed on as an NCHW *view* of them,
so that neither pass transposes data it does not have to.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, ShapeError
from ..init import get_initializer
from .base import Layer, Shape, expect_rank, pair, positive_int, register_layer

Padding = tuple[int, int, int, int]  # top, bottom, left, right


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output positions along one axis: floor((size + pads − kernel) / stride) + 1 (PyTorch's formula)."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras' "same": output ceil(size / stride), the odd pixel of padding after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def patches(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """im2col: x (B, C, H, W) already padded -> (B·OH·OW, C·kh·kw), one row per output pixel.

    A row holds the window's values in (channel, row, column) order, matching W.reshape(F, -1).
    """
    B, C = x.shape[:2]
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, : sh * (OH - 1) + 1 : sh, : sw * (OW - 1) + 1 : sw]  # (B, C, OH, OW, kh, kw)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(B * OH * OW, C * kh * kw)  # the one copy


def sum_patches(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """col2im, the adjoint of ``patches``: add each row's values back where its window came from.

    cols (B·OH·OW, C·kh·kw) -> (B, C, H, W) for the padded shape ``x_shape``.  One
    vectorised addition per kernel offset (kh·kw of them), none per pixel.
    """
    B, C, H, W = x_shape
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    grid = cols.reshape(B, OH, OW, C, kh, kw).transpose(0, 3, 1, 2, 4, 5)  # (B, C, OH, OW, kh, kw) view
    dx = np.zeros(x_shape, cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + sh * (OH - 1) + 1 : sh, j : j + sw * (OW - 1) + 1 : sw] += grid[..., i, j]
    return dx


@register_layer
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every framework).

    x: (batch, C, H, W) -> y: (batch, filters, OH, OW), OH = (H + pads − kh) // stride + 1.
    y[n, f, i, j] = b[f] + Σ_{c, u, v} W[f, c, u, v] · x_pad[n, c, i·s + u, j·s + v].

    padding: an int (zeros on every side, as PyTorch), ``"valid"`` (0) or ``"same"``
    (output ceil(H / stride), as Keras).  init: as for Dense, with fan_in = C·kh·kw.
    """

    returns_new_arrays = True

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | str | tuple[int, int] = 0,
        init: Any = "he",
        rng: np.random.Generator | int | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(dtype)
        self.filters = positive_int("Conv2D", "filters", filters)
        self.kernel_size = pair("Conv2D", "kernel_size", kernel_size)
        self.stride = pair("Conv2D", "stride", stride)
        if isinstance(padding, str):
            if padding.lower() not in ("same", "valid"):
                raise ConfigError(f"Conv2D: padding must be an int, 'same' or 'valid', got {padding!r}")
            self.padding: int | str | tuple[int, int] = padding.lower()
        else:
            both = tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding)
            if len(both) != 2:
                raise ConfigError(f"Conv2D: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
            ph, pw = both
            for p in both:
                if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
                    raise ConfigError(f"Conv2D: padding must be an int >= 0, 'same' or 'valid', got {padding!r}")
            self.padding = int(ph) if ph == pw else (int(ph), int(pw))
        self.init = init
        self.init_fn = get_initializer(init)
        self._rng_arg = rng

    # -- shapes -----------------------------------------------------------------------
    def pads(self, input_shape: Shape) -> Padding:
        """(top, bottom, left, right) zero padding for a (C, H, W) input."""
        if self.padding == "same":
            return (*same_padding(input_shape[1], self.kernel_size[0], self.stride[0]),
                    *same_padding(input_shape[2], self.kernel_size[1], self.stride[1]))  # fmt: skip
        if self.padding == "valid":
            return (0, 0, 0, 0)
        ph, pw = self.padding if isinstance(self.padding, tuple) else (self.padding, self.padding)
        return (ph, ph, pw, pw)

    def output_shape(self, input_shape: Shape) -> Shape:
        expect_rank(self, input_shape, (3,), " (images are (channels, height, width))")
        _, H, W = input_shape
        top, bottom, left, right = self.pads(input_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if H + top + bottom < kh or W + left + right < kw:
            raise ShapeError(
                f"Conv2D: kernel {kh}x{kw} is larger than the (padded) input {H + top + bottom}x{W + left + right}"
            )
        OH, OW = conv_output_size(H, kh, sh, top, bottom), conv_output_size(W, kw, sw, left, right)
        return (self.filters, OH, OW)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (self.filters, input_shape[0], *self.kernel_size), "b": (self.filters,)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape)
        if rng is None:
            rng = (
                self._rng_arg
                if isinstance(self._rng_arg, np.random.Generator)
                else np.random.default_rng(self._rng_arg)
            )
        F, C, kh, kw = self.param_shapes(self.input_shape)["W"]
        W = np.asarray(self.init_fn(C * kh * kw, F, rng))  # (fan_in, F), like a Dense layer's W
        if W.shape != (C * kh * kw, F):
            raise ShapeError(f"Conv2D: init returned shape {W.shape}, expected {(C * kh * kw, F)}")
        self._set_params(W=W.T.reshape(F, C, kh, kw), b=np.zeros(F))
        self._pads = self.pads(self.input_shape)
        self._out_hw = self.output_shape(self.input_shape)[1:]

    # -- the two passes ---------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x: (batch, C, H, W) -> (batch, F, OH, OW): one matrix product over all patches."""
        top, bottom, left, right = self._pads
        if top or bottom or left or right:
            x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        self._padded_shape = x.shape
        W = self.params["W"]
        self.cols = patches(x, self.kernel_size, self.stride, self._out_hw)
        y = self.cols @ W.reshape(len(W), -1).T  # Dense.forward on the patches
        y += self.params["b"]
        return y.reshape(len(x), *self._out_hw, len(W)).transpose(0, 3, 1, 2)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """dy: (batch, F, OH, OW) -> dx: (batch, C, H, W); sets dW = dyᵀ·cols, db = Σ dy."""
        W = self.params["W"]
        dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, len(W))  # a view when dy has our forward's layout
        np.matmul(dy_rows.T, self.cols, out=self.grads["W"].reshape(len(W), -1))
        np.sum(dy_rows, axis=0, out=self.grads["b"])
        if not need_dx:
            return None
        dcols = dy_rows @ W.reshape(len(W), -1)  # Dense's dx, per patch
        dx = sum_patches(dcols, self._padded_shape, self.kernel_size, self.stride, self._out_hw)
        top, bottom, left, right = self._pads
        H, Wd = dx.shape[2] - top - bottom, dx.shape[3] - left - right
        return dx[:, :, top : top + H, left : left + Wd] if top or bottom or left or right else dx

    def get_config(self) -> dict[str, Any]:
        padding = list(self.padding) if isinstance(self.padding, tuple) else self.padding
        kernel = self.kernel_size[0] if self.kernel_size[0] == self.kernel_size[1] else list(self.kernel_size)
        stride = self.stride[0] if self.stride[0] == self.stride[1] else list(self.stride)
        return {"filters": self.filters, "kernel_size": kernel, "stride": stride, "padding": padding}
