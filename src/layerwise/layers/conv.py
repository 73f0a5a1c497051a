"""``Conv2D``: a Dense layer applied to every image patch.

Cut every (kh × kw) window of the input into a row — "im2col" — and a convolution
is the affine layer you already know, with the filters as W::

    cols = patches(x)                        # (batch·OH·OW, kh·kw·C)
    y    = cols @ W_rows.T + b               # (batch·OH·OW, F): Dense.forward
    dW   = dyᵀ @ cols,  db = Σ dy            # Dense.backward
    dcols = dy @ W_rows                      # Dense's dx, one row per patch ...
    dx   = sum_patches(dcols)                # ... added back where each patch came from ("col2im")

Images are NCHW, as in PyTorch and ONNX: x (batch, channels, height, width); the
filters W are (filters, in_channels, kh, kw), the PyTorch/ONNX layout.  A patch row
lists its window in (row, column, channel) order, so W_rows is W with the channel
axis moved last, (F, kh·kw·C), a copy of a few thousand numbers per step.

Memory is channels last: the output y is computed as (batch, OH, OW, F) rows and
handed on as an NCHW *view* of them; activations and pooling keep that layout, and
the next convolution cuts its patches from it as contiguous runs of kw·C numbers.
No pass transposes an image.

Two implementations of patches/sum_patches: the NumPy functions below (the
reference, easy to read) and compiled kernels (``_fast/``, Numba) that make one
pass over memory instead of several; ``use_kernels`` picks one.  With the compiled
kernels, a layer with small patches (kh·kw·C ≤ 32, a first layer on grey images) does
the same sums straight from the image: forming patches of 9 or 25 numbers would cost
more than the arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, ShapeError
from ..init import get_initializer
from ..kernels import one_blas_thread_active
from . import _fast
from ._fast import sliced
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


def patches(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pads: Padding, out_hw: tuple[int, int]
) -> np.ndarray:
    """im2col: x (B, C, H, W) -> (B·OH·OW, kh·kw·C), one row per output pixel (NumPy reference).

    A row holds the zero-padded window's values in (row, column, channel) order.
    """
    B, C = x.shape[:2]
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    top, bottom, left, right = pads
    if top or bottom or left or right:
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    windows = sliding_window_view(x.transpose(0, 2, 3, 1), (kh, kw), axis=(1, 2))  # (B, H', W', C, kh, kw)
    windows = windows[:, : sh * (OH - 1) + 1 : sh, : sw * (OW - 1) + 1 : sw]  # (B, OH, OW, C, kh, kw)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(B * OH * OW, kh * kw * C)  # the one copy


def sum_patches(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: Padding,
    out_hw: tuple[int, int],
) -> np.ndarray:
    """col2im, the adjoint of ``patches``: add each row's values back where its window came from.

    cols (B·OH·OW, kh·kw·C) -> dx (B, C, H, W) for the unpadded shape ``x_shape``; the
    values that fell on padding are dropped.  One vectorised addition per kernel
    offset (kh·kw of them), none per pixel (NumPy reference).
    """
    B, C, H, W = x_shape
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    top, bottom, left, right = pads
    grid = cols.reshape(B, OH, OW, kh, kw, C)
    dx = np.zeros((B, H + top + bottom, W + left + right, C), cols.dtype)  # channels last, padded
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + sh * (OH - 1) + 1 : sh, j : j + sw * (OW - 1) + 1 : sw] += grid[:, :, :, i, j]
    return dx[:, top : top + H, left : left + W].transpose(0, 3, 1, 2)


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
        # Compiled im2col/col2im (``_fast``) where Numba is installed; False forces the NumPy reference.
        self.use_kernels = _fast.enabled()
        self._scratch = _fast.Scratch()  # cols, filter rows, dW rows: reused while the batch size repeats

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

    @property
    def splits_batch(self) -> bool:  # type: ignore[override]
        """With the compiled kernels and patches to multiply, training shares the batch between threads."""
        if not self.use_kernels or self.input_shape is None:
            return False
        (kh, kw), C = self.kernel_size, self.input_shape[0]
        return not (self.stride == (1, 1) and kh * kw * C <= _fast.SMALL_PATCH)

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
        x = np.asarray(x)
        if not self.built:
            raise ConfigError("Conv2D: not built yet; call build(input_shape), or call the layer: layer(x)")
        if x.shape[1:] != self.input_shape or x.ndim != 4:  # the compiled kernels trust the shapes
            raise ShapeError(
                f"Conv2D: x must have shape (batch, {', '.join(map(str, self.input_shape))}), got {x.shape}"
            )
        B, F, (OH, OW) = len(x), self.filters, self._out_hw
        self._x_shape = x.shape
        (kh, kw), C = self.kernel_size, x.shape[1]
        self._small = self.use_kernels and self.stride == (1, 1) and kh * kw * C <= _fast.SMALL_PATCH
        if self._small:  # the same sums straight from the image, no patch matrix (see _fast.conv_small)
            self._x, self.cols = x, None
            dtype = np.result_type(x.dtype, self.dtype)
            W, b = self.params["W"].astype(dtype, copy=False), self.params["b"].astype(dtype, copy=False)
            return _fast.conv_small(x.astype(dtype, copy=False), W, b, self._pads, self._out_hw)
        W_rows = self._filter_rows()  # (F, kh·kw·C)
        self._sliced = self.use_kernels and one_blas_thread_active()
        if self._sliced:  # the same products, chunk by chunk on our threads (see _fast/sliced.py)
            dtype = np.result_type(x.dtype, self.dtype)
            self.cols = self._scratch.get("cols", (B * OH * OW, W_rows.shape[1]), dtype)
            return sliced.conv_forward(x, W_rows, self.params["b"], self.kernel_size, self.stride, self._pads,
                                       self._out_hw, self.cols)  # fmt: skip
        self.cols = self._patches(x)  # (B·OH·OW, kh·kw·C), kept for dW
        y = self.cols @ W_rows.T  # Dense.forward on the patches: (B·OH·OW, F)
        if self.use_kernels:
            _fast.add_bias(y, self.params["b"])  # y += b, compiled
        else:
            y += self.params["b"]
        return y.reshape(B, OH, OW, F).transpose(0, 3, 1, 2)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """dy: (batch, F, OH, OW) -> dx: (batch, C, H, W); sets dW = dyᵀ·cols, db = Σ dy."""
        F, (kh, kw), C = self.filters, self.kernel_size, self._x_shape[1]
        dy = np.asarray(dy)
        if np.shape(dy) != (self._x_shape[0], F, *self._out_hw):
            raise ShapeError(
                f"Conv2D: dy must have the output's shape {(self._x_shape[0], F, *self._out_hw)}, got {np.shape(dy)}"
            )
        dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, F)  # a view when dy has our forward's layout
        if self._small:
            dW, db = _fast.conv_small_grads(self._x, dy, self.kernel_size, self._pads, self._scratch)
            self.grads["W"][...], self.grads["b"][...] = dW, db
            if not need_dx:
                return None
            self._filter_rows()
        elif self._sliced:
            dW_rows, self.grads["b"][...], dx = sliced.conv_backward(
                dy_rows, self.cols, self._W_rows, self._x_shape, self.kernel_size, self.stride, self._pads,
                self._out_hw, need_dx, self._scratch,
            )  # fmt: skip
            self.grads["W"][...] = dW_rows.reshape(F, kh, kw, C).transpose(0, 3, 1, 2)
            return dx
        else:
            W_rows = self._W_rows
            # dW = dyᵀ·cols, computed as (colsᵀ·dy)ᵀ: BLAS runs that product 1.2-1.4x faster for 16-64 filters.
            dWt = np.matmul(self.cols.T, dy_rows, out=self._scratch.get("dWt", W_rows.shape[::-1], self.dtype))
            dW_rows = dWt.T
            # db = 1ᵀ·dy: as a matrix product several times faster than np.sum over the rows.
            np.matmul(self._scratch.ones(len(dy_rows), dy_rows.dtype), dy_rows, out=self.grads["b"])
            self.grads["W"][...] = dW_rows.reshape(F, kh, kw, C).transpose(0, 3, 1, 2)  # back to (F, C, kh, kw)
            if not need_dx:
                return None
        shape = (len(dy_rows), self._W_rows.shape[1])  # (B·OH·OW, kh·kw·C), as cols
        dcols = np.matmul(dy_rows, self._W_rows, out=self._scratch.get("dcols", shape, dy_rows.dtype))
        return self._sum_patches(dcols)  # Dense's dx per patch (with forward's filters), added back

    # -- patches: NumPy reference or compiled kernels -------------------------------------
    def _filter_rows(self) -> np.ndarray:
        """W (F, C, kh, kw) as rows in a patch's order, (F, kh·kw·C), in a buffer the layer owns."""
        W = self.params["W"]
        F, C, kh, kw = W.shape
        self._W_rows = self._scratch.get("W_rows", (F, kh * kw * C), W.dtype)
        self._W_rows.reshape(F, kh, kw, C)[...] = W.transpose(0, 2, 3, 1)
        return self._W_rows

    def _patches(self, x: np.ndarray) -> np.ndarray:
        args = (self.kernel_size, self.stride, self._pads, self._out_hw)
        if not self.use_kernels:
            return patches(x, *args)
        (kh, kw), (OH, OW) = self.kernel_size, self._out_hw
        dtype = np.result_type(x.dtype, self.dtype)
        out = self._scratch.get("cols", (len(x) * OH * OW, kh * kw * x.shape[1]), dtype)
        return _fast.im2col(x, *args, out=out)

    def _sum_patches(self, dcols: np.ndarray) -> np.ndarray:
        args = (self._x_shape, self.kernel_size, self.stride, self._pads, self._out_hw)
        return _fast.col2im(dcols, *args) if self.use_kernels else sum_patches(dcols, *args)

    def get_config(self) -> dict[str, Any]:
        padding = list(self.padding) if isinstance(self.padding, tuple) else self.padding
        kernel = self.kernel_size[0] if self.kernel_size[0] == self.kernel_size[1] else list(self.kernel_size)
        stride = self.stride[0] if self.stride[0] == self.stride[1] else list(self.stride)
        return {"filters": self.filters, "kernel_size": kernel, "stride": stride, "padding": padding}
