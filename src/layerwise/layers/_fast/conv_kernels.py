"""The compiled loops behind ``Conv2D``: im2col, col2im and the bias.

Plain Python loops, compiled by Numba when it is installed (``numba.njit``, no GIL); the
wrappers in ``__init__`` cut their work into batch slices.  Images arrive as channels-last
rows, (B, H, W·C): x[b, r, w·C + c] is channel c of pixel (r, w).
"""

import functools

import numpy as np

from ...kernels import numba
from . import numpy_blas, team


def _im2col_runs(x, C, kh, kw, sh, sw, pt, pl, OH, OW, cols):  # pragma: no cover (compiled)
    B, H, WC = x.shape
    W = WC // C
    run = kw * C
    for b in range(B):
        for i in range(OH):
            for j in range(OW):
                row = (b * OH + i) * OW + j
                left = j * sw - pl  # the window's first column
                for u in range(kh):
                    r = i * sh + u - pt
                    dst = u * run
                    if r < 0 or r >= H:  # a row of zero padding
                        for t in range(run):
                            cols[row, dst + t] = 0
                    elif left >= 0 and left + kw <= W:  # the common case: one contiguous run
                        src = left * C
                        for t in range(run):
                            cols[row, dst + t] = x[b, r, src + t]
                    else:  # the window overlaps the left or right padding
                        for v in range(kw):
                            col = left + v
                            inside = 0 <= col < W
                            for c in range(C):
                                cols[row, dst + v * C + c] = x[b, r, col * C + c] if inside else 0


def _im2col_columns(x, C, kh, kw, sh, sw, pt, pl, OH, OW, cols):  # pragma: no cover (compiled)
    # For short runs (a single-channel first layer: kw·C = 3 or 5 numbers) copying run by
    # run costs more in loop overhead than in memory traffic; instead fill cols one column
    # at a time from a zero-padded copy of the image row (about twice as fast there).
    B, H, WC = x.shape
    W = WC // C
    run = kw * C
    padded = np.zeros(((OW - 1) * sw + kw) * C, x.dtype)  # the padded row; its pads stay 0
    inside = min(W, (OW - 1) * sw + kw - pl) * C
    for b in range(B):
        for i in range(OH):
            row0 = (b * OH + i) * OW
            for u in range(kh):
                r = i * sh + u - pt
                if r < 0 or r >= H:
                    for t in range(run):
                        for j in range(OW):
                            cols[row0 + j, u * run + t] = 0
                    continue
                for t in range(inside):
                    padded[pl * C + t] = x[b, r, t]
                for t in range(run):
                    for j in range(OW):
                        cols[row0 + j, u * run + t] = padded[j * sw * C + t]


def _col2im(dcols, C, kh, kw, sh, sw, pt, pl, OH, OW, dx):  # pragma: no cover (compiled)
    B, H, WC = dx.shape
    W = WC // C
    run = kw * C
    for b in range(B):  # each sample is written by one thread only
        for r in range(H):
            for t in range(WC):
                dx[b, r, t] = 0
        for i in range(OH):
            for j in range(OW):
                row = (b * OH + i) * OW + j
                left = j * sw - pl
                for u in range(kh):
                    r = i * sh + u - pt
                    if r < 0 or r >= H:  # padding: its gradient is dropped
                        continue
                    dst = u * run
                    if left >= 0 and left + kw <= W:
                        src = left * C
                        for t in range(run):
                            dx[b, r, src + t] += dcols[row, dst + t]
                    else:
                        for v in range(kw):
                            col = left + v
                            if 0 <= col < W:
                                for c in range(C):
                                    dx[b, r, col * C + c] += dcols[row, dst + v * C + c]


def _fill_zero(a):  # pragma: no cover (compiled, inlined)
    # a[...] = 0 as a plain loop: an array expression costs each region a second of compiling.
    flat = a.reshape(a.size)
    for t in range(flat.size):
        flat[t] = 0


def _add_into(a, b):  # pragma: no cover (compiled, inlined)
    # a += b (same shapes, C-contiguous) as a plain loop, for the same reason.
    fa, fb = a.reshape(a.size), b.reshape(b.size)
    for t in range(fa.size):
        fa[t] += fb[t]


def _add_bias(y, b):  # pragma: no cover (compiled)
    # y (N, F) += b (F,) row by row: NumPy's broadcast add runs a short inner loop per row.
    N, F = y.shape
    for n in range(N):
        for f in range(F):
            y[n, f] += b[f]


# -- training's parallel regions for the patch path (see team.py) -------------------------------
def _colsT_dy(c, d, out):  # noqa: N802  # pragma: no cover (compiled, inlined)
    # out (K, F) = cᵀ·d for float32 c (R, K), d (R, F), out, all C-contiguous: NumPy's sgemm
    # (``numpy_blas``), cᵀ read transposed.
    R, K = c.shape
    F = d.shape[1]
    order, transposed, as_is = numpy_blas.ROW_MAJOR, numpy_blas.TRANS, numpy_blas.NO_TRANS
    _sgemm(order, transposed, as_is, K, F, R, np.float32(1), c.ctypes, K, d.ctypes, F, np.float32(0), out.ctypes, F)


def patch_team_kernels(C, kh, kw, sh, sw, pt, pl, OH, OW, numpy_sgemm=False):  # noqa: N803 (the formula's names)
    """(forward, backward) parallel regions for one layer shape, a slice of the batch per thread.

    numpy_sgemm: backward's colsᵀ·dy through NumPy's own sgemm (``numpy_blas``; float32 only).

    The generic im2col and col2im above are inlined with the sizes as constants (their window
    rows are then copied by a few vector instructions: 1.3-2.8x faster); the products are
    BLAS calls made by each thread (Numba's ``np.dot``, SciPy's BLAS, held at one thread).
    """
    P = OH * OW  # noqa: N806 (patch rows per sample)
    short = kw * C <= 8  # the column-by-column copy for short window rows (see _im2col_columns)

    def forward(rows, W_cols, b, cols, y, slices, step):  # noqa: N803  # pragma: no cover (compiled)
        # rows (B, H, W·C) -> y (B·P, F) = cols·W_cols + b, cols (B·P, kh·kw·C) filled chunk by chunk.
        B = rows.shape[0]
        for k in prange(slices):
            lo, hi = B * k // slices, B * (k + 1) // slices
            for s in range(lo, hi, step):
                e = min(hi, s + step)
                c, out = cols[s * P : e * P], y[s * P : e * P]
                if short:
                    im2col_columns(rows[s:e], C, kh, kw, sh, sw, pt, pl, OH, OW, c)
                else:
                    im2col_runs(rows[s:e], C, kh, kw, sh, sw, pt, pl, OH, OW, c)
                np.dot(c, W_cols, out)
                add_bias(out, b)

    def backward(dy_rows, cols, W_rows, dW, db, product, dcols, dx, need_dx, step):  # noqa: N803  # pragma: no cover
        # dWᵀ = colsᵀ·dy (slices, K, F), db = Σ dy (slices, F): each slice's sums, then added into
        # dW[0], db[0] in slice order; dx (B, H, W·C) = col2im(dy·W_rows) when need_dx.
        # product (slices, K, F) and dcols (slices, step·P, K): each slice's working memory.
        # dWᵀ rather than dW: BLAS runs colsᵀ·dy faster than dyᵀ·cols for F = 16-64 (this pass 5-9%).
        B, F, slices = cols.shape[0] // P, dW.shape[2], dW.shape[0]
        for k in prange(slices):
            lo, hi = B * k // slices, B * (k + 1) // slices
            fill_zero(dW[k])
            fill_zero(db[k])
            for s in range(lo, hi, step):
                e = min(hi, s + step)
                d, c = dy_rows[s * P : e * P], cols[s * P : e * P]
                if numpy_sgemm:
                    colsT_dy(c, d, product[k])
                else:
                    np.dot(c.T, d, product[k])
                add_into(dW[k], product[k])
                for r in range(len(d)):
                    for f in range(F):
                        db[k, f] += d[r, f]
                if need_dx:
                    dc = dcols[k, : len(d)]
                    np.dot(d, W_rows, dc)
                    col2im(dc, C, kh, kw, sh, sw, pt, pl, OH, OW, dx[s:e])
        for k in range(1, slices):  # in slice order: the same sums whichever thread finished first
            add_into(dW[0], dW[k])
            add_into(db[0], db[k])

    return _jit_parallel(forward), _jit_parallel(backward)


# -- small patches: the same sums straight from the image ---------------------------------------
# A first layer on grey images has patches of 9 or 25 numbers: copying them into a patch
# matrix costs more than the arithmetic, and a product with K = 9 or 25 runs BLAS at a
# fifth of its speed.  For stride 1, one output row (OW pixels × F filters, contiguous in
# channels-last memory) is instead a sum of kh·kw·C shifted input rows times weight rows:
#     y[n, i, j·F + f] = b[f] + Σ_{u, c, v} xe[c, i + u, (j + v)·F + f] · Wt[u, v, c, j·F + f]
# where xe repeats each zero-padded input pixel F times and Wt repeats W[f, c, u, v] once
# per output column.  The loop over t = j·F + f is contiguous and vectorises; each output
# number is summed in a register over all kh·kw·C terms and stored once.  The filter
# gradient is the same loop with the roles of y and Wt swapped.
#
# The sizes are compile-time constants (one compiled kernel per layer shape): with them
# the compiler unrolls the taps and vectorises, 4-5 times faster than with run-time sizes.


# The loops are module-level functions with the sizes as arguments, inlined into each layer
# shape's kernels (``small_conv_kernels``), where the sizes are constants; Numba caches those
# kernels on disk (a closure over plain numbers is cached, one over a compiled function is not).


def _expand(x, n, pt, pl, xe, C, F):  # noqa: N803  # pragma: no cover (compiled, inlined)
    # xe (C, Hp, Wp·F) <- sample n of x (B, H, W·C), each pixel repeated F times, at offset
    # (pt, pl).  Only the image's own pixels are written: the padding border stays as the
    # caller zeroed it once, for all samples.
    H, W = x.shape[1], x.shape[2] // C
    for c in range(C):
        for r in range(H):
            row = xe[c, r + pt]
            for col in range(W):
                value = x[n, r, col * C + c]
                at = (col + pl) * F
                for f in range(F):
                    row[at + f] = value


def _small_forward(x, pt, pl, Wt, bt, y, xe, lo, hi, C, F, kh, kw, OH, OW):  # noqa: N803  # pragma: no cover
    # Samples lo..hi: x (B, H, W·C) -> y (B, OH, OW·F); Wt (kh, kw, C, OW·F), bt (OW·F,), xe: scratch.
    fill_zero(xe)
    for n in range(lo, hi):
        _expand(x, n, pt, pl, xe, C, F)
        for i in range(OH):
            out = y[n, i]
            for t in range(OW * F):
                s = bt[t]
                for u in range(kh):
                    for c in range(C):
                        for v in range(kw):
                            s += xe[c, i + u, v * F + t] * Wt[u, v, c, t]
                out[t] = s


def _small_grads(x, dy, pt, pl, acc, bacc, xe, lo, hi, C, F, kh, kw, OH, OW):  # noqa: N803  # pragma: no cover
    # Samples lo..hi: acc (kh, kw, C, OW·F) += Σ_{n, i} dy[n, i, t] · xe[c, i + u, v·F + t];
    # bacc (OW·F,) += Σ dy.  The OW copies of each filter are added up afterwards (``conv_small_grads``).
    fill_zero(xe)
    for n in range(lo, hi):
        _expand(x, n, pt, pl, xe, C, F)
        d = dy[n]
        for t in range(OW * F):
            s = bacc[t]
            for i in range(OH):
                s += d[i, t]
            bacc[t] = s
        for u in range(kh):
            for c in range(C):
                for v in range(kw):
                    a = acc[u, v, c]
                    for t in range(OW * F):
                        s = a[t]
                        for i in range(OH):  # OH is a constant: this sum unrolls, t vectorises
                            s += d[i, t] * xe[c, i + u, v * F + t]
                        a[t] = s


def small_conv_kernels(C, F, kh, kw, OH, OW):  # noqa: N803 (the formula's names)
    """Kernels for one layer shape: C channels, F filters, kh × kw, OH × OW outputs (compile-time constants).

    (forward, grads, forward_team, grads_team).  ``forward(x, pt, pl, Wt, bt, y, xe)`` and
    ``grads(x, dy, pt, pl, acc, bacc, xe)`` do the whole batch they are given.  The ``_team``
    ones are parallel regions, a slice of the batch per thread (``team.py``): there xe, acc and
    bacc have a leading axis, one per slice, and grads_team adds the slices' sums into acc[0],
    bacc[0] in slice order.
    """

    def forward(x, pt, pl, Wt, bt, y, xe):  # pragma: no cover (compiled)
        _small_forward(x, pt, pl, Wt, bt, y, xe, 0, y.shape[0], C, F, kh, kw, OH, OW)

    def grads(x, dy, pt, pl, acc, bacc, xe):  # pragma: no cover (compiled)
        _small_grads(x, dy, pt, pl, acc, bacc, xe, 0, dy.shape[0], C, F, kh, kw, OH, OW)

    def forward_team(x, pt, pl, Wt, bt, y, xe):  # pragma: no cover (compiled)
        B, slices = y.shape[0], xe.shape[0]
        for k in prange(slices):
            lo, hi = B * k // slices, B * (k + 1) // slices
            _small_forward(x, pt, pl, Wt, bt, y, xe[k], lo, hi, C, F, kh, kw, OH, OW)

    def grads_team(x, dy, pt, pl, acc, bacc, xe):  # pragma: no cover (compiled)
        B, slices = dy.shape[0], xe.shape[0]
        for k in prange(slices):
            lo, hi = B * k // slices, B * (k + 1) // slices
            fill_zero(acc[k])
            fill_zero(bacc[k])
            _small_grads(x, dy, pt, pl, acc[k], bacc[k], xe[k], lo, hi, C, F, kh, kw, OH, OW)
        for k in range(1, slices):  # in slice order: the same sums whichever thread finished first
            add_into(acc[0], acc[k])
            add_into(bacc[0], bacc[k])

    return _jit_fma(forward), _jit_fma(grads), _jit_fma_parallel(forward_team), _jit_fma_parallel(grads_team)


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)
    im2col_runs_kernel = _jit(_im2col_runs)
    im2col_columns_kernel = _jit(_im2col_columns)
    col2im_kernel = _jit(_col2im)
    add_bias_kernel = _jit(_add_bias)
    # Inlined where the sizes are constants: training's parallel regions (team.py) and the small-patch kernels.
    _inline = numba.njit(nogil=True, inline="always")
    im2col_runs, im2col_columns, col2im, add_bias, fill_zero, add_into = (
        _inline(f) for f in (_im2col_runs, _im2col_columns, _col2im, _add_bias, _fill_zero, _add_into)
    )
    # "contract" lets a multiply and its add become one FMA instruction (same result on every run).
    _inline_fma = numba.njit(nogil=True, inline="always", fastmath={"contract"})
    _expand, _small_forward, _small_grads = _inline_fma(_expand), _inline_fma(_small_forward), _inline_fma(_small_grads)
    _jit_fma = numba.njit(nogil=True, cache=True, fastmath={"contract"})

    _jit_fma_parallel = functools.partial(team.compile_region, fastmath={"contract"})
    _jit_parallel = team.compile_region

    prange = numba.prange
    _sgemm = numba.types.ExternalFunction(
        numpy_blas.SYMBOL,
        numba.types.void(
            numba.types.int32, numba.types.int32, numba.types.int32,  # order, transA, transB
            numba.types.int64, numba.types.int64, numba.types.int64,  # M, N, K
            numba.types.float32, numba.types.voidptr, numba.types.int64,  # alpha, A, lda
            numba.types.voidptr, numba.types.int64,  # B, ldb
            numba.types.float32, numba.types.voidptr, numba.types.int64,  # beta, C, ldc
        ),
    )  # fmt: skip
    colsT_dy = _inline(_colsT_dy)  # noqa: N816
    small_conv_kernels = functools.lru_cache(maxsize=32)(small_conv_kernels)
    patch_team_kernels = functools.lru_cache(maxsize=32)(patch_team_kernels)
