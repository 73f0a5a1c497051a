"""Compiled (Numba) kernels for the memory passes of ``Conv2D`` and ``MaxPool2D``.

A convolution's matrix products run at BLAS speed whatever we do; an epoch's
time goes into the passes over memory around them.  NumPy makes several of
those per operation (padding copy, strided window view copied by ``reshape``,
one strided ``+=`` per kernel offset in col2im, a mask per window offset in
pooling); each compiled kernel (``conv_kernels.py``, ``pool_kernels.py``) makes one,
sample by sample, while the sample is still in the core's cache; a convolution
with small patches (a first layer's 5x5 of one channel) skips the patches altogether,
and a ReLU before a max pooling is applied by the pooling pass.
This module holds the wrappers the layers call.  The NumPy code in ``conv.py`` and
``pooling.py`` is the reference: ``tests/test_conv_kernels.py`` checks that both give
the same numbers.

Threads: a big pass is cut into batch slices that run at once on ``threads()``
threads.  In training, a network with Conv2D layers that multiply patches holds BLAS
at one thread (``layerwise.kernels.one_blas_thread``) and every conv and pool pass is
one compiled *parallel region* (``team.py``): Numba's OpenMP threads take a slice
each, the convolutions' matrix products included, and spin between regions, so that a
region starts in microseconds.  Elsewhere (inference, or where regions are not
available: no SciPy, no thread-safe Numba layer, a forked child) the kernels run on
plain Python threads (they release the GIL; ``sliced.py`` cuts the products in
training): those sleep when idle and are safe to call from any thread, at the price of
the operating system's wake-up, about 85 µs a pass on the machines we measured, so
passes over less than ``PARALLEL_MIN_BYTES`` stay on one thread.  Not regions
everywhere: OpenMP's spinning threads would fight BLAS's own threads for the cores.

Compiled kernels are cached on disk by Numba (``__pycache__``): each layer shape is
compiled once per machine (a second or two each), not once per process.

Memory layout: channels last.  The kernels read and write images as
(batch, height, width·channels) rows, so that a patch row of ``kw`` pixels is
one contiguous run of ``kw·C`` numbers, and a pooling window compares whole
runs of channels at once.  The layers hand such arrays on as NCHW *views*
(``transpose(0, 3, 1, 2)``): the shapes a user sees are NCHW, the bytes stay
where the kernels want them.

Used when Numba is installed (``pip install layerwise[fast]``) and
``LAYERWISE_KERNELS`` is not ``numpy``; each layer's ``use_kernels`` attribute
overrides that per layer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...kernels import numba, numba_enabled, one_blas_thread_active

__all__ = [
    "Scratch",
    "add_bias",
    "channels_last",
    "col2im",
    "conv_small",
    "conv_small_grads",
    "enabled",
    "im2col",
    "is_channels_last",
    "maxpool",
    "maxpool_backward",
    "new_image",
]


def enabled() -> bool:
    """True when the compiled kernels can and should be used (see ``layerwise.kernels.numba_enabled``)."""
    return numba_enabled()


class Scratch:
    """Working arrays a layer owns and reuses from step to step instead of allocating them anew.

    ``get(name, shape, dtype)`` returns a C-contiguous array of that shape, a prefix
    of one flat buffer per name: the last, smaller batch of an epoch reuses the
    buffer of the full ones.  A buffer far too large (left by a big inference batch)
    is replaced, so that it does not hold memory for the rest of training.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size or buf.size > 8 * max(size, 1024):
            buf = self._buffers[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def ones(self, n: int, dtype: np.dtype) -> np.ndarray:
        """A vector of n ones (for sums as products: 1ᵀ·A), filled only when newly allocated."""
        key = f"ones-{np.dtype(dtype).name}"
        buf = self._buffers.get(key)
        if buf is None or buf.size < n or buf.size > 8 * max(n, 1024):
            buf = self._buffers[key] = np.ones(n, dtype)
        return buf[:n]


def is_channels_last(x: np.ndarray) -> bool:
    """Is x (B, C, H, W) a view of C-contiguous (B, H, W, C) memory?"""
    return x.transpose(0, 2, 3, 1).flags.c_contiguous


def channels_last(x: np.ndarray) -> np.ndarray:
    """x (B, C, H, W) -> a C-contiguous (B, H, W, C) array: a view when x is an NCHW view of channels-last memory."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


if numba is not None:
    from . import conv_kernels, pool_kernels, team

    _add_bias_kernel = conv_kernels.add_bias_kernel
    _col2im_kernel = conv_kernels.col2im_kernel
    _im2col_columns_kernel = conv_kernels.im2col_columns_kernel
    _im2col_runs_kernel = conv_kernels.im2col_runs_kernel


# -- settings, and sharing a pass between threads ---------------------------------------------
#: Window rows of at most this many numbers (kw·C) are copied column by column (see _im2col_columns).
SHORT_RUN = 8
#: Stride-1 convolutions whose patches hold at most this many numbers (kh·kw·C) skip the
#: patch matrix (``conv_small``): LeNet's and the Keras example's first layers (25 and 9).
SMALL_PATCH = 32
#: Passes over less memory than this run on the calling thread alone: waking another
#: thread costs more than it saves.  (Tests set 0 to force the split.)
PARALLEL_MIN_BYTES = 256 * 1024
#: Threads per pass; None: Numba's thread count (``NUMBA_NUM_THREADS``, default the number of cores).
THREADS: int | None = None
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool): a forked child makes its own


def threads() -> int:
    """How many threads share a big pass."""
    if THREADS is not None:
        return max(1, THREADS)
    return max(1, numba.config.NUMBA_NUM_THREADS) if numba is not None else 1


def batch_slices(batch: int, nbytes: int) -> list[int]:
    """The bounds of the slices ``_over_batch`` cuts range(batch) into: [0, ..., batch], one slice a thread."""
    n = min(batch, threads()) if nbytes >= PARALLEL_MIN_BYTES else 1
    return [batch * k // n for k in range(n + 1)] if n > 1 else [0, batch]


def team_slices(batch: int, nbytes: int) -> int:
    """In how many slices a parallel region (``team.py``) does this pass; 0: not in a region.

    Regions only while BLAS is held at one thread in training, where the team is available.
    """
    if not one_blas_thread_active() or not team.available():
        return 0
    n = len(batch_slices(batch, nbytes)) - 1
    return n if n > 1 else 0


def _over_batch(batch: int, nbytes: int, run: Callable[[int, int], None]) -> None:
    """run(lo, hi) for slices [lo, hi) that cover range(batch); at once on several threads if nbytes is large."""
    global _pool
    bounds = batch_slices(batch, nbytes)
    n = len(bounds) - 1
    if n <= 1:
        run(0, batch)
        return
    if _pool is None or _pool[0] != os.getpid() or _pool[1] < n - 1:
        _pool = (os.getpid(), n - 1, ThreadPoolExecutor(n - 1, thread_name_prefix="layerwise-kernels"))
    others = [_pool[2].submit(run, bounds[k], bounds[k + 1]) for k in range(1, n)]
    try:
        run(bounds[0], bounds[1])  # the calling thread does the first slice
    finally:  # never return (or raise) while another thread still writes into the arrays
        for future in others:
            future.result()


# -- what the layers call -------------------------------------------------------------------
def im2col(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
    out: np.ndarray,
) -> np.ndarray:
    """x (B, C, H, W), unpadded -> out (B·OH·OW, kh·kw·C): one row per output pixel, padding done on the fly.

    A row holds the window in (row, column, channel) order.  ``out`` must be C-contiguous.
    """
    B, C, H, W = x.shape
    rows = channels_last(x).reshape(B, H, W * C)
    per_sample = out_hw[0] * out_hw[1]  # rows of out
    kernel_fn = _im2col_columns_kernel if kernel[1] * C <= SHORT_RUN else _im2col_runs_kernel

    def run(lo: int, hi: int) -> None:
        kernel_fn(rows[lo:hi], C, *kernel, *stride, pads[0], pads[2], *out_hw, out[lo * per_sample : hi * per_sample])

    _over_batch(B, out.nbytes, run)
    return out


def conv_small(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, pads: tuple[int, int, int, int], out_hw: tuple[int, int]
) -> np.ndarray:
    """Stride-1 convolution without patches (see ``conv_kernels.small_conv_kernels``), for small C·kh·kw.

    x (B, C, H, W), W (F, C, kh, kw), b (F,) -> y (B, F, OH, OW), a new NCHW view of channels-last memory.
    """
    B, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    OH, OW = out_hw
    rows = channels_last(x).reshape(B, H, Wd * C)
    Wt = np.empty((kh, kw, C, OW, F), W.dtype)  # each tap's filter row, repeated per output column
    Wt[...] = W.transpose(2, 3, 1, 0)[:, :, :, None, :]
    bt = np.ascontiguousarray(np.broadcast_to(b, (OW, F)), dtype=W.dtype).reshape(OW * F)
    y = np.empty((B, OH, OW * F), W.dtype)
    xe_shape = (C, OH + kh - 1, (OW + kw - 1) * F)
    kernels = conv_kernels.small_conv_kernels(C, F, kh, kw, OH, OW)
    if slices := team_slices(B, y.nbytes):
        xe = np.empty((slices, *xe_shape), W.dtype)
        with team.threads(slices):
            kernels[2](rows, pads[0], pads[2], Wt.reshape(kh, kw, C, OW * F), bt, y, xe)
        return y.reshape(B, OH, OW, F).transpose(0, 3, 1, 2)

    def run(lo: int, hi: int) -> None:
        xe = np.empty(xe_shape, W.dtype)
        kernels[0](rows[lo:hi], pads[0], pads[2], Wt.reshape(kh, kw, C, OW * F), bt, y[lo:hi], xe)

    _over_batch(B, y.nbytes, run)
    return y.reshape(B, OH, OW, F).transpose(0, 3, 1, 2)


def conv_small_grads(
    x: np.ndarray, dy: np.ndarray, kernel: tuple[int, int], pads: tuple[int, int, int, int], scratch: Scratch
) -> tuple[np.ndarray, np.ndarray]:
    """The filter and bias gradients of ``conv_small``: x (B, C, H, W), dy (B, F, OH, OW) -> dW (F, C, kh, kw), db (F,).

    Each thread sums its batch slice into its own accumulator (in ``scratch``, the layer's, reused
    from step to step); the slices are added in a fixed order.
    """
    B, C, H, Wd = x.shape
    F, OH, OW = dy.shape[1:]
    kh, kw = kernel
    rows = channels_last(x).reshape(B, H, Wd * C)
    dy_rows = channels_last(dy).reshape(B, OH, OW * F)
    xe_shape = (C, OH + kh - 1, (OW + kw - 1) * F)
    partial: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    kernels = conv_kernels.small_conv_kernels(C, F, kh, kw, OH, OW)

    def summed(acc: np.ndarray, bacc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The OW copies of each filter's (and bias's) sums added up: dW (F, C, kh, kw), db (F,)."""
        return acc.reshape(kh, kw, C, OW, F).sum(axis=3).transpose(3, 2, 0, 1), bacc.reshape(OW, F).sum(axis=0)

    if slices := team_slices(B, dy.nbytes):
        acc = scratch.get("acc", (slices, kh, kw, C, OW * F), dy.dtype)
        bacc = scratch.get("bacc", (slices, OW * F), dy.dtype)
        xe = scratch.get("xe", (slices, *xe_shape), dy.dtype)
        with team.threads(slices):
            kernels[3](rows, dy_rows, pads[0], pads[2], acc, bacc, xe)
        return summed(acc[0], bacc[0])

    slot = {lo: k for k, lo in enumerate(batch_slices(B, dy.nbytes)[:-1])}  # the k-th slice's accumulators

    def run(lo: int, hi: int) -> None:
        k = slot[lo]
        acc, bacc = scratch.get(f"acc{k}", (kh, kw, C, OW * F), dy.dtype), scratch.get(f"bacc{k}", (OW * F,), dy.dtype)
        acc[...], bacc[...] = 0, 0  # the kernel adds to them
        xe = np.empty(xe_shape, dy.dtype)
        kernels[1](rows[lo:hi], dy_rows[lo:hi], pads[0], pads[2], acc, bacc, xe)
        partial[lo] = acc, bacc

    _over_batch(B, dy.nbytes, run)
    parts = [partial[lo] for lo in sorted(partial)]
    acc, bacc = parts[0]
    for more_acc, more_bacc in parts[1:]:
        acc += more_acc
        bacc += more_bacc
    return summed(acc, bacc)


def add_bias(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y (N, F) += b (F,) in place (about twice as fast as NumPy's ``y += b`` for F of 6 to 64); returns y."""

    def run(lo: int, hi: int) -> None:
        _add_bias_kernel(y[lo:hi], b)

    _over_batch(len(y), y.nbytes, run)
    return y


def col2im(
    dcols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """The adjoint of ``im2col``: dcols (B·OH·OW, kh·kw·C) -> dx (B, C, H, W), unpadded.

    Each row's values are added back where its window came from; those that fell
    on padding are dropped.  dx is a new NCHW view of channels-last memory.
    """
    B, C, H, W = x_shape
    dx = np.empty((B, H, W * C), dcols.dtype)
    per_sample = out_hw[0] * out_hw[1]  # rows of dcols

    def run(lo: int, hi: int) -> None:
        _col2im_kernel(
            dcols[lo * per_sample : hi * per_sample], C, *kernel, *stride, pads[0], pads[2], *out_hw, dx[lo:hi]
        )

    _over_batch(B, dcols.nbytes, run)
    return dx.reshape(B, H, W, C).transpose(0, 3, 1, 2)


def maxpool(
    x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int], arg: np.ndarray, relu: bool = False
) -> np.ndarray:
    """x (B, C, H, W) -> y (B, C, OH, OW), the largest value of each window; fills ``arg``.

    arg: (B, OH, OW, C) int8/int32 array that receives each window's winning offset
    u·pw + v (the first on ties).  relu: y = max(that value, 0), and arg = -1 where
    that is 0 (max(relu(x)) in one pass).  y is a new NCHW view of channels-last memory.
    """
    B, C, H, W = x.shape
    (ph, pw), (sh, sw) = pool, stride
    OH, OW = (H - ph) // sh + 1, (W - pw) // sw + 1
    rows = channels_last(x).reshape(B, H, W * C)  # a view after a Conv2D; strided loops would be several times slower
    y = new_image((B, C, OH, OW), x.dtype)
    y_rows, arg_rows = y.transpose(0, 2, 3, 1).reshape(B, OH, OW * C), arg.reshape(B, OH, OW * C)
    kernels, zero = pool_kernels.maxpool_kernels(C, ph, pw, sh, sw, relu), x.dtype.type(0)
    if slices := team_slices(B, x.nbytes):
        with team.threads(slices):
            kernels[2](rows, y_rows, arg_rows, zero, slices)
        return y

    def run(lo: int, hi: int) -> None:
        kernels[0](rows[lo:hi], y_rows[lo:hi], arg_rows[lo:hi], zero)

    _over_batch(B, x.nbytes, run)
    return y


def maxpool_backward(
    dy: np.ndarray, arg: np.ndarray, x_shape: tuple[int, ...], pool: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """dy (B, C, OH, OW) and the forward pass's ``arg`` -> dx (B, C, H, W): dy at each window's winner, else 0.

    dx is a new NCHW view of channels-last memory, the layout the layer below produced.
    """
    B, C, H, W = x_shape
    OH, OW = dy.shape[2:]
    dx = new_image(x_shape, dy.dtype)
    dy_rows = channels_last(dy).reshape(B, OH, OW * C)  # dy from a Flatten is NCHW: one small copy
    dx_rows, arg_rows = dx.transpose(0, 2, 3, 1).reshape(B, H, W * C), arg.reshape(B, OH, OW * C)
    kernels, zero = pool_kernels.maxpool_kernels(C, *pool, *stride, False), dy.dtype.type(0)
    if slices := team_slices(len(dx), dx.nbytes):
        with team.threads(slices):
            kernels[3](dy_rows, arg_rows, dx_rows, zero, slices)
        return dx

    def run(lo: int, hi: int) -> None:
        kernels[1](dy_rows[lo:hi], arg_rows[lo:hi], dx_rows[lo:hi], zero)

    _over_batch(len(dx), dx.nbytes, run)
    return dx


def new_image(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised (B, C, H, W) array in channels-last memory: an NCHW view of (B, H, W, C)."""
    B, C, H, W = shape
    return np.empty((B, H, W, C), dtype).transpose(0, 3, 1, 2)
