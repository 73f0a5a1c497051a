"""The compiled loops behind ``MaxPool2D``: the maximum of each window with its position, and the way back.

Images are channels last, (B, H, W, C); see ``__init__`` for how the work is shared between
threads.  One pair of kernels per layer shape (``maxpool_kernels``): with the channel count
and the window's size as compile-time constants the loop over channels is unrolled and
vectorised.  With ``relu`` the forward kernel also applies a ReLU that came before the
pool (max(relu(x)) = relu(max(x)), see ``pooling.ReLUMaxPool2D``).
"""

import functools

from ...kernels import numba

#: ``arg`` of a window whose (ReLU-ed) maximum is 0: no input gets its gradient.
NO_WINNER = -1


def maxpool_kernels(C, ph, pw, sh, sw, relu):  # noqa: N803 (the formula's names)
    """(forward, backward) for windows ph × pw moved by (sh, sw) over C channels.

    backward takes dx as (B, H, W·C) rows when the windows are tiled (stride = pool), else (B, H, W, C).
    """
    tiled = sh == ph and sw == pw  # windows side by side: each input pixel is in one window at most

    def forward(x, y, arg, zero):  # pragma: no cover (compiled)
        # x (B, H, W, C) -> y, arg (B, OH, OW, C).  Strict ">" keeps the first maximum on
        # ties (PyTorch, NumPy's argmax); a NaN wins once and is kept, as argmax does.
        B, OH, OW = y.shape[0], y.shape[1], y.shape[2]
        for b in range(B):
            for i in range(OH):
                for j in range(OW):
                    for c in range(C):
                        best = x[b, i * sh, j * sw, c]
                        k = 0
                        for u in range(ph):
                            for v in range(pw):
                                value = x[b, i * sh + u, j * sw + v, c]
                                if value > best or (value != value and best == best):
                                    best = value
                                    k = u * pw + v
                        if relu and not best > 0 and best == best:  # ReLU: max(x, 0); NaN stays NaN
                            best = zero  # zero: 0 of the array's type (a literal 0 would be float64)
                            k = NO_WINNER  # every input of the window had x <= 0: no gradient
                        y[b, i, j, c] = best
                        arg[b, i, j, c] = k

    def backward(dy, arg, dx, zero):  # pragma: no cover (compiled)
        # dx (B, H, W, C) gets dy at each window's winner and 0 elsewhere; overlapping
        # windows add up.
        B, OH, OW = dy.shape[0], dy.shape[1], dy.shape[2]
        H, W = dx.shape[1], dx.shape[2]
        for b in range(B):
            for r in range(H):
                for w in range(W):
                    for c in range(C):
                        dx[b, r, w, c] = zero
            for i in range(OH):
                for j in range(OW):
                    for u in range(ph):
                        for v in range(pw):
                            k = u * pw + v
                            for c in range(C):
                                if arg[b, i, j, c] == k:
                                    dx[b, i * sh + u, j * sw + v, c] += dy[b, i, j, c]

    def backward_tiled(dy, arg, dx, zero):  # pragma: no cover (compiled)
        # Windows side by side: each covered pixel is written once, row by row (dx as (B, H, W·C)).
        B, OH, OW = dy.shape[0], dy.shape[1], dy.shape[2]
        H, WC = dx.shape[1], dx.shape[2]
        for b in range(B):
            for r in range(H):  # rows and columns no window reaches
                first = 0 if r >= OH * ph else OW * pw * C
                for t in range(first, WC):
                    dx[b, r, t] = zero
            for i in range(OH):
                for u in range(ph):
                    row = dx[b, i * ph + u]
                    for j in range(OW):
                        a, d = arg[b, i, j], dy[b, i, j]
                        for v in range(pw):
                            k, at = u * pw + v, (j * pw + v) * C
                            for c in range(C):
                                row[at + c] = d[c] if a[c] == k else zero

    return _jit(forward), _jit(backward_tiled if tiled else backward)


if numba is not None:
    _jit = numba.njit(nogil=True)
    maxpool_kernels = functools.lru_cache(maxsize=64)(maxpool_kernels)
