"""The compiled loops behind ``MaxPool2D``: the maximum of each window with its position, and the way back.

Images are channels-last rows, (B, H, W·C): x[b, r, w·C + c] is channel c of pixel (r, w);
see ``__init__`` for how the work is shared between threads.  One pair of kernels per
layer shape (``maxpool_kernels``): with the channel count and the window's size as
compile-time constants the loop over channels is unrolled and vectorised.  Two details
decide whether it vectorises (measured 4-6x): comparisons of the int8 offsets are made
in int32, values are loaded before a select rather than inside it, and the NaN rule is
kept off the common path (a row that holds a NaN is done
again by the exact loop).  With ``relu`` the forward kernel also applies a ReLU that came
before the pool: max(relu(x)) = relu(max(x)) (see ``pooling.ReLUMaxPool2D``).
"""

import functools

import numpy as np

from ...kernels import numba

#: ``arg`` of a window whose (ReLU-ed) maximum is 0: no input gets its gradient.
NO_WINNER = -1


def maxpool_kernels(C, ph, pw, sh, sw, relu):  # noqa: N803 (the formula's names)
    """(forward, backward) for windows ph × pw moved by (sh, sw) over C channels (compile-time constants)."""
    tiled = sh == ph and sw == pw  # windows side by side: each input pixel is in one window at most

    def row_max(x, b, i, yo, ao, exact):  # pragma: no cover (compiled, inlined)
        # Output row i of sample b: each window's maximum and its offset; returns how many NaNs
        # it met.  Strict ">" keeps the first maximum on ties (PyTorch, NumPy's argmax).  The
        # NaN rule (a NaN wins once and is kept, as argmax does) only when ``exact``: it stops
        # the loop from vectorising, so a row runs exactly only when it holds a NaN.
        nans = 0
        for j in range(len(yo) // C):
            for c in range(C):
                best = x[b, i * sh, j * sw * C + c]
                k = 0
                for u in range(ph):
                    for v in range(pw):
                        value = x[b, i * sh + u, (j * sw + v) * C + c]
                        nans += value != value
                        better = value > best or (exact and value != value and best == best)
                        best = value if better else best
                        k = u * pw + v if better else k
                yo[j * C + c] = best
                ao[j * C + c] = k
        return nans

    row_max = _jit_inline(row_max)

    def forward(x, y, arg, zero):  # pragma: no cover (compiled)
        # x (B, H, W·C) -> y, arg (B, OH, OW·C).
        for b in range(y.shape[0]):
            for i in range(y.shape[1]):
                yo, ao = y[b, i], arg[b, i]
                if row_max(x, b, i, yo, ao, False):
                    row_max(x, b, i, yo, ao, True)
                if relu:  # ReLU: max(x, 0), NaN stays NaN; a window with no positive value passes no gradient
                    for t in range(len(yo)):
                        dead = not yo[t] > zero and yo[t] == yo[t]
                        yo[t] = zero if dead else yo[t]
                        ao[t] = NO_WINNER if dead else ao[t]

    def backward(dy, arg, dx, zero):  # pragma: no cover (compiled)
        # dy, arg (B, OH, OW·C) -> dx (B, H, W·C): dy at each window's winner, 0 elsewhere.
        # Tiled windows (side by side) write each covered pixel once; overlapping ones add up.
        B, OH, OWC = dy.shape[0], dy.shape[1], dy.shape[2]
        OW = OWC // C
        H, WC = dx.shape[1], dx.shape[2]
        for b in range(B):
            for r in range(H):  # tiled: only the rows and columns no window reaches need zeros
                first = OW * pw * C if tiled and r < OH * ph else 0
                for t in range(first, WC):
                    dx[b, r, t] = zero
            for i in range(OH):
                d, a = dy[b, i], arg[b, i]
                for u in range(ph):
                    row = dx[b, i * sh + u]
                    for j in range(OW):
                        for v in range(pw):
                            k, at = np.int32(u * pw + v), (j * sw + v) * C
                            for c in range(C):
                                g = d[j * C + c]  # loaded unconditionally, so that the select vectorises
                                won = np.int32(a[j * C + c]) == k
                                if tiled:
                                    row[at + c] = g if won else zero
                                elif won:
                                    row[at + c] += g

    return _jit(forward), _jit(backward)


if numba is not None:
    _jit = numba.njit(nogil=True)
    _jit_inline = numba.njit(nogil=True, inline="always")  # inlined: the caller's constant ``exact`` folds
    maxpool_kernels = functools.lru_cache(maxsize=64)(maxpool_kernels)
