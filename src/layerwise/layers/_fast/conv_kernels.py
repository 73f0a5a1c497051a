"""The compiled loops behind ``Conv2D``: im2col, col2im and the bias.

Plain Python loops, compiled by Numba when it is installed (``numba.njit``, no GIL); the
wrappers in ``__init__`` cut their work into batch slices.  Images arrive as channels-last
rows, (B, H, W·C): x[b, r, w·C + c] is channel c of pixel (r, w).
"""

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


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)
    im2col_runs_kernel = _jit(_im2col_runs)
    im2col_columns_kernel = _jit(_im2col_columns)
    col2im_kernel = _jit(_col2im)
    add_bias_kernel = _jit(_add_bias)
