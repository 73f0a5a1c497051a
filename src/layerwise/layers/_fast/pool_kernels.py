"""The compiled loops behind ``MaxPool2D``: the maximum of each window with its position, and the way back.

Images are channels last, (B, H, W, C); see ``__init__`` for how the work is shared between threads.
"""

from ...kernels import numba


def _maxpool(x, ph, pw, sh, sw, y, arg):  # pragma: no cover (compiled)
    # x (B, H, W, C), y and arg (B, OH, OW, C).  Strict ">" keeps the first maximum on
    # ties (PyTorch, NumPy's argmax); a NaN wins once and is kept, as argmax does.
    B, OH, OW, C = y.shape
    for b in range(B):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    y[b, i, j, c] = x[b, i * sh, j * sw, c]
                    arg[b, i, j, c] = 0
                for u in range(ph):
                    for v in range(pw):
                        if u == 0 and v == 0:
                            continue
                        k = u * pw + v
                        for c in range(C):
                            value = x[b, i * sh + u, j * sw + v, c]
                            best = y[b, i, j, c]
                            if value > best or (value != value and best == best):
                                y[b, i, j, c] = value
                                arg[b, i, j, c] = k


def _maxpool_backward(dy, arg, ph, pw, sh, sw, dx):  # pragma: no cover (compiled)
    # dx (B, H, W, C) gets dy at each window's winner and 0 elsewhere.  Windows side by
    # side (stride = pool, the usual case) write every pixel once; otherwise dx is zeroed
    # first and overlapping windows add up.
    B, OH, OW, C = dy.shape
    H, W = dx.shape[1], dx.shape[2]
    tiled = sh == ph and sw == pw
    for b in range(B):
        if tiled:  # only the rows and columns that no window reaches need zeros
            for r in range(H):
                first = 0 if r >= OH * ph else OW * pw
                for w in range(first, W):
                    for c in range(C):
                        dx[b, r, w, c] = 0
        else:
            for r in range(H):
                for w in range(W):
                    for c in range(C):
                        dx[b, r, w, c] = 0
        for i in range(OH):
            for j in range(OW):
                for u in range(ph):
                    for v in range(pw):
                        k = u * pw + v
                        r, w = i * sh + u, j * sw + v
                        if tiled:
                            for c in range(C):
                                dx[b, r, w, c] = dy[b, i, j, c] if arg[b, i, j, c] == k else 0
                        else:
                            for c in range(C):
                                if arg[b, i, j, c] == k:
                                    dx[b, r, w, c] += dy[b, i, j, c]


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)
    maxpool_kernel = _jit(_maxpool)
    maxpool_backward_kernel = _jit(_maxpool_backward)
