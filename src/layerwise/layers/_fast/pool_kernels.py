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
from . import team

#: ``arg`` of a window whose (ReLU-ed) maximum is 0: no input gets its gradient.
NO_WINNER = -1


# The loops are module-level functions that take the sizes as arguments and are inlined into
# each layer shape's kernel (``maxpool_kernels``), where the sizes are constants: the compiler
# then unrolls and vectorises them, and Numba caches the kernels on disk (a closure over plain
# numbers is cached; one over another compiled function is not).


def _row_max(x, b, i, yo, ao, exact, C, ph, pw, sh, sw):  # noqa: N803  # pragma: no cover (compiled, inlined)
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


def _forward(x, y, arg, zero, lo, hi, C, ph, pw, sh, sw, relu):  # noqa: N803  # pragma: no cover (compiled, inlined)
    # Samples lo..hi: x (B, H, W·C) -> y, arg (B, OH, OW·C).
    for b in range(lo, hi):
        for i in range(y.shape[1]):
            yo, ao = y[b, i], arg[b, i]
            if _row_max(x, b, i, yo, ao, False, C, ph, pw, sh, sw):
                _row_max(x, b, i, yo, ao, True, C, ph, pw, sh, sw)
            if relu:  # ReLU: max(x, 0), NaN stays NaN; a window with no positive value passes no gradient
                for t in range(len(yo)):
                    dead = not yo[t] > zero and yo[t] == yo[t]
                    yo[t] = zero if dead else yo[t]
                    ao[t] = NO_WINNER if dead else ao[t]


def _backward(dy, arg, dx, zero, lo, hi, C, ph, pw, sh, sw, tiled):  # noqa: N803  # pragma: no cover (compiled, inlined)
    # Samples lo..hi: dy, arg (B, OH, OW·C) -> dx (B, H, W·C): dy at each window's winner, 0 elsewhere.
    # Tiled windows (side by side) write each covered pixel once; overlapping ones add up.
    OH, OWC = dy.shape[1], dy.shape[2]
    OW = OWC // C
    H, WC = dx.shape[1], dx.shape[2]
    for b in range(lo, hi):
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


def maxpool_kernels(C, ph, pw, sh, sw, relu):  # noqa: N803 (the formula's names)
    """Kernels for windows ph × pw moved by (sh, sw) over C channels (compile-time constants).

    (forward, backward, forward_team, backward_team): ``forward(x, y, arg, zero)`` and
    ``backward(dy, arg, dx, zero)`` do the whole batch they are given; the ``_team`` ones take
    a last argument ``slices`` and are parallel regions, a slice of the batch per thread (``team.py``).
    """
    tiled = sh == ph and sw == pw  # windows side by side: each input pixel is in one window at most

    def forward(x, y, arg, zero):  # pragma: no cover (compiled)
        _forward(x, y, arg, zero, 0, y.shape[0], C, ph, pw, sh, sw, relu)

    def backward(dy, arg, dx, zero):  # pragma: no cover (compiled)
        _backward(dy, arg, dx, zero, 0, dy.shape[0], C, ph, pw, sh, sw, tiled)

    def forward_team(x, y, arg, zero, slices):  # pragma: no cover (compiled)
        B = y.shape[0]
        for k in prange(slices):
            _forward(x, y, arg, zero, B * k // slices, B * (k + 1) // slices, C, ph, pw, sh, sw, relu)

    def backward_team(dy, arg, dx, zero, slices):  # pragma: no cover (compiled)
        B = dy.shape[0]
        for k in prange(slices):
            _backward(dy, arg, dx, zero, B * k // slices, B * (k + 1) // slices, C, ph, pw, sh, sw, tiled)

    return _jit(forward), _jit(backward), _jit_parallel(forward_team), _jit_parallel(backward_team)


if numba is not None:
    _jit = numba.njit(nogil=True, cache=True)

    _jit_parallel = team.compile_region

    _inline = numba.njit(nogil=True, inline="always")  # inlined: the caller's constants fold
    prange = numba.prange
    _row_max, _forward, _backward = _inline(_row_max), _inline(_forward), _inline(_backward)
    maxpool_kernels = functools.lru_cache(maxsize=64)(maxpool_kernels)
