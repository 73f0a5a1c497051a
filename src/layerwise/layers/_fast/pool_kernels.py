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
    """(forward, backward) for windows ph × pw moved by (sh, sw) over C channels."""
    tiled = sh == ph and sw == pw  # windows side by side: each input pixel is in one window at most

    def forward(x, y, arg, zero):  # pragma: no cover (compiled)
        # x (B, H, W·C) -> y, arg (B, OH, OW·C).  Strict ">" keeps the first maximum on ties
        # (PyTorch, NumPy's argmax).
        B, OH, OWC = y.shape[0], y.shape[1], y.shape[2]
        OW = OWC // C
        for b in range(B):
            for i in range(OH):
                yo, ao = y[b, i], arg[b, i]
                nans = 0
                for j in range(OW):
                    for c in range(C):
                        best = x[b, i * sh, j * sw * C + c]
                        k = 0
                        for u in range(ph):
                            for v in range(pw):
                                value = x[b, i * sh + u, (j * sw + v) * C + c]
                                nans += value != value
                                better = value > best
                                best = value if better else best
                                k = u * pw + v if better else k
                        yo[j * C + c] = best
                        ao[j * C + c] = k
                if nans:  # NaN wins once and is kept, as argmax does: the exact rule, for this row
                    for j in range(OW):
                        for c in range(C):
                            best = x[b, i * sh, j * sw * C + c]
                            k = 0
                            for u in range(ph):
                                for v in range(pw):
                                    value = x[b, i * sh + u, (j * sw + v) * C + c]
                                    if value > best or (value != value and best == best):
                                        best = value
                                        k = u * pw + v
                            yo[j * C + c] = best
                            ao[j * C + c] = k
                if relu:  # ReLU: max(x, 0), NaN stays NaN; a window with no positive value passes no gradient
                    for t in range(OWC):
                        dead = not yo[t] > zero and yo[t] == yo[t]
                        yo[t] = zero if dead else yo[t]
                        ao[t] = NO_WINNER if dead else ao[t]

    def backward(dy, arg, dx, zero):  # pragma: no cover (compiled)
        # dy, arg (B, OH, OW·C) -> dx (B, H, W·C): dy at each window's winner, 0 elsewhere;
        # overlapping windows add up.
        B, OH, OWC = dy.shape[0], dy.shape[1], dy.shape[2]
        OW = OWC // C
        for b in range(B):
            dx[b] = zero
            for i in range(OH):
                d, a = dy[b, i], arg[b, i]
                for u in range(ph):
                    row = dx[b, i * sh + u]
                    for j in range(OW):
                        for v in range(pw):
                            k, at = np.int32(u * pw + v), (j * sw + v) * C
                            for c in range(C):
                                if np.int32(a[j * C + c]) == k:
                                    row[at + c] += d[j * C + c]

    def backward_tiled(dy, arg, dx, zero):  # pragma: no cover (compiled)
        # Windows side by side: each covered pixel is written once.
        B, OH, OWC = dy.shape[0], dy.shape[1], dy.shape[2]
        OW = OWC // C
        H, WC = dx.shape[1], dx.shape[2]
        for b in range(B):
            for r in range(H):  # rows and columns no window reaches
                first = 0 if r >= OH * ph else OW * pw * C
                for t in range(first, WC):
                    dx[b, r, t] = zero
            for i in range(OH):
                d, a = dy[b, i], arg[b, i]
                for u in range(ph):
                    row = dx[b, i * ph + u]
                    for j in range(OW):
                        for v in range(pw):
                            k, at = np.int32(u * pw + v), (j * pw + v) * C
                            for c in range(C):
                                g = d[j * C + c]  # loaded unconditionally, so that the select vectorises
                                row[at + c] = g if np.int32(a[j * C + c]) == k else zero

    return _jit(forward), _jit(backward_tiled if tiled else backward)


if numba is not None:
    _jit = numba.njit(nogil=True)
    maxpool_kernels = functools.lru_cache(maxsize=64)(maxpool_kernels)
