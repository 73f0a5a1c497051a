"""The compiled loops behind ``Conv2D``: im2col, col2im and the bias.

Plain Python loops, compiled by Numba when it is installed (``numba.njit``, no GIL); the
wrappers in ``__init__`` cut their work into batch slices.  Images arrive as channels-last
rows, (B, H, W·C): x[b, r, w·C + c] is channel c of pixel (r, w).
"""

import functools

import numpy as np

from ...kernels import numba


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


def _add_bias(y, b):  # pragma: no cover (compiled)
    # y (N, F) += b (F,) row by row: NumPy's broadcast add runs a short inner loop per row.
    N, F = y.shape
    for n in range(N):
        for f in range(F):
            y[n, f] += b[f]


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


def small_conv_kernels(C, F, kh, kw, OH, OW):  # noqa: N803 (the formula's names)
    """(forward, grads) kernels for one layer shape: C channels, F filters, kh × kw, OH × OW outputs."""
    OWF = OW * F

    def expand(x, n, pt, pl, xe):  # pragma: no cover (compiled)
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

    def forward(x, pt, pl, Wt, bt, y, xe):  # pragma: no cover (compiled)
        # x (B, H, W·C) -> y (B, OH, OW·F); Wt (kh, kw, C, OW·F), bt (OW·F,), xe: scratch.
        B = y.shape[0]
        xe[...] = 0
        for n in range(B):
            expand(x, n, pt, pl, xe)
            for i in range(OH):
                out = y[n, i]
                for t in range(OWF):
                    s = bt[t]
                    for u in range(kh):
                        for c in range(C):
                            for v in range(kw):
                                s += xe[c, i + u, v * F + t] * Wt[u, v, c, t]
                    out[t] = s

    def grads(x, dy, pt, pl, acc, bacc, xe):  # pragma: no cover (compiled)
        # acc (kh, kw, C, OW·F) += Σ_{n, i} dy[n, i, t] · xe[c, i + u, v·F + t];  bacc (OW·F,) += Σ dy.
        # The OW copies of each filter are added up afterwards (``conv_small_grads``).
        B = dy.shape[0]
        xe[...] = 0
        for n in range(B):
            expand(x, n, pt, pl, xe)
            d = dy[n]
            for t in range(OWF):
                s = bacc[t]
                for i in range(OH):
                    s += d[i, t]
                bacc[t] = s
            for u in range(kh):
                for c in range(C):
                    for v in range(kw):
                        a = acc[u, v, c]
                        for t in range(OWF):
                            s = a[t]
                            for i in range(OH):  # OH is a constant: this sum unrolls, t vectorises
                                s += d[i, t] * xe[c, i + u, v * F + t]
                            a[t] = s

    expand = _jit_fma(expand)  # compiled before forward and grads, which call it
    return _jit_fma(forward), _jit_fma(grads)


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)
    im2col_runs_kernel = _jit(_im2col_runs)
    im2col_columns_kernel = _jit(_im2col_columns)
    col2im_kernel = _jit(_col2im)
    add_bias_kernel = _jit(_add_bias)
    # "contract" lets a multiply and its add become one FMA instruction (same result on every run).
    # Not cached on disk: Numba cannot cache kernels made by a factory (compiling one takes ~0.5 s).
    _jit_fma = numba.njit(nogil=True, fastmath={"contract"})
    small_conv_kernels = functools.lru_cache(maxsize=32)(small_conv_kernels)
