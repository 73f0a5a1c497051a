"""Conv2D's patch path with the batch shared between our threads, BLAS on one thread.

Used in training while ``layerwise.kernels.one_blas_thread()`` holds BLAS at one thread
(see there for why).  Each thread takes a slice of the batch and works through it a chunk
at a time: forward cuts the chunk's patches, multiplies them by the filters and adds the
bias; backward computes the chunk's share of dW and db and, when dx is needed, its patch
gradients, which it adds back into dx (col2im) at once.  The same formulas as ``Conv2D``
(forward ``y = cols·W_rowsᵀ + b``, backward ``dW = dyᵀ·cols``, ``dcols = dy·W_rows``);
only the order of work differs, and dW is computed as its transpose colsᵀ·dy, the
product BLAS runs faster (backward 5-9% faster for F = 16-64 filters, measured).

Each thread's dW and db are summed in a fixed order: the result does not depend on
which thread finished first (it does on how many threads there are, as with BLAS).

Where parallel regions are available (``team.py``) each pass is one region
(``conv_kernels.patch_team_kernels``): the same slices, chunks and formulas, on Numba's
OpenMP threads instead of Python threads; the code below is then the fallback.
"""

from __future__ import annotations

import numpy as np

from .. import _fast
from . import conv_kernels, numpy_blas, team

#: A slice is worked through in chunks of about this many bytes of patches: each chunk's
#: patch gradient is added back into dx (col2im) while it is still in the core's cache.
#: Measured (float32, convnet and LeNet second layers): 1-4 MB chunks beat both 256 KB
#: (BLAS slower on small products) and whole slices (backward 15-60% slower).
CHUNK_BYTES = 2 << 20


_NO_DX = {np.dtype(t): np.empty((0, 0, 0), t) for t in (np.float32, np.float64)}  # backward's dx when unwanted


def _chunk(per_sample_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(per_sample_bytes, 1))


def conv_forward(
    x: np.ndarray,
    W_rows: np.ndarray,  # noqa: N803
    b: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
    cols: np.ndarray,
) -> np.ndarray:
    """x (B, C, H, W) -> y (B, F, OH, OW), an NCHW view of channels-last memory; fills cols (B·OH·OW, kh·kw·C)."""
    B, C, H, W = x.shape
    F = len(W_rows)
    per_sample = out_hw[0] * out_hw[1]
    rows = _fast.channels_last(x).reshape(B, H, W * C)
    y = np.empty((B * per_sample, F), cols.dtype)
    cut = conv_kernels.im2col_columns_kernel if kernel[1] * C <= _fast.SHORT_RUN else conv_kernels.im2col_runs_kernel
    W_cols = W_rows.T  # noqa: N806 (K, F), a view: BLAS reads it transposed
    step = _chunk(cols[:per_sample].nbytes)
    same_dtype = x.dtype == W_rows.dtype == cols.dtype == b.dtype  # compiled products take one dtype
    if same_dtype and (slices := _fast.team_slices(B, cols.nbytes)):  # one parallel region (team.py)
        forward = conv_kernels.patch_team_kernels(C, *kernel, *stride, pads[0], pads[2], *out_hw)[0]
        with team.threads(slices):
            forward(rows, W_cols, b, cols, y, slices, step)
        return y.reshape(B, *out_hw, F).transpose(0, 3, 1, 2)

    def run(lo: int, hi: int) -> None:
        for s in range(lo, hi, step):
            e = min(hi, s + step)
            c, out = cols[s * per_sample : e * per_sample], y[s * per_sample : e * per_sample]
            cut(rows[s:e], C, *kernel, *stride, pads[0], pads[2], *out_hw, c)
            np.matmul(c, W_cols, out=out)
            conv_kernels.add_bias_kernel(out, b)

    _fast._over_batch(B, cols.nbytes, run)
    return y.reshape(B, *out_hw, F).transpose(0, 3, 1, 2)


def conv_backward(
    dy_rows: np.ndarray,
    cols: np.ndarray,
    W_rows: np.ndarray,  # noqa: N803
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
    need_dx: bool,
    scratch: _fast.Scratch,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dy_rows (B·OH·OW, F), forward's cols -> (dW_rows (F, kh·kw·C), db (F,), dx (B, C, H, W) or None).

    dW_rows and db are the caller's to copy before the next call: they live in ``scratch`` (the
    layer's), as do each thread's sums and patch gradients, reused from step to step.
    """
    B, C, H, W = x_shape
    F, K = W_rows.shape
    dtype = dy_rows.dtype
    per_sample = out_hw[0] * out_hw[1]
    dx = np.empty((B, H, W * C), dtype) if need_dx else None
    step = _chunk(cols[:per_sample].nbytes)

    def result(dW_rows: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # noqa: N803
        return dW_rows, db, None if dx is None else dx.reshape(B, H, W, C).transpose(0, 3, 1, 2)

    same_dtype = dtype == cols.dtype == W_rows.dtype  # compiled products take one dtype
    if same_dtype and (slices := _fast.team_slices(B, cols.nbytes)):  # one parallel region (team.py)
        dWt, db = scratch.get("dWt", (slices, K, F), dtype), scratch.get("db", (slices, F), dtype)  # noqa: N806
        product = scratch.get("product", (slices, K, F), dtype)
        dcols = scratch.get("dcols", (slices, step * per_sample if need_dx else 0, K), dtype)
        numpy_sgemm = dtype == np.float32 and numpy_blas.available()  # the faster colsᵀ·dy (numpy_blas.py)
        backward = conv_kernels.patch_team_kernels(C, *kernel, *stride, pads[0], pads[2], *out_hw, numpy_sgemm)[1]
        with team.threads(slices):
            backward(np.ascontiguousarray(dy_rows), cols, W_rows, dWt, db, product, dcols,
                     dx if need_dx else _NO_DX[dtype], need_dx, step)  # fmt: skip
        return result(dWt[0].T, db[0])
    ones = scratch.ones(step * per_sample, dtype)
    slot = {lo: k for k, lo in enumerate(_fast.batch_slices(B, cols.nbytes)[:-1])}  # the k-th slice's buffers
    partial: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def run(lo: int, hi: int) -> None:
        k = slot[lo]
        dWt, db = scratch.get(f"dWt{k}", (K, F), dtype), scratch.get(f"db{k}", (F,), dtype)  # noqa: N806
        product = scratch.get(f"product{k}", (K, F), dtype)
        dcols = scratch.get(f"dcols{k}", (step * per_sample, K), dtype) if need_dx else None
        for s in range(lo, hi, step):
            e = min(hi, s + step)
            d, c = dy_rows[s * per_sample : e * per_sample], cols[s * per_sample : e * per_sample]
            if s == lo:
                np.matmul(c.T, d, out=dWt)
                np.matmul(ones[: len(d)], d, out=db)  # 1ᵀ·dy: a product is several times faster than a sum
            else:
                dWt += np.matmul(c.T, d, out=product)
                db += ones[: len(d)] @ d
            if dcols is not None:
                dc = np.matmul(d, W_rows, out=dcols[: len(d)])
                conv_kernels.col2im_kernel(dc, C, *kernel, *stride, pads[0], pads[2], *out_hw, dx[s:e])
        partial[lo] = dWt, db

    _fast._over_batch(B, cols.nbytes, run)
    parts = [partial[lo] for lo in sorted(partial)]
    dWt, db = parts[0]  # noqa: N806
    for more_dWt, more_db in parts[1:]:  # noqa: N806
        dWt += more_dWt
        db += more_db
    return result(dWt.T, db)
