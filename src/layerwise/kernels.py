"""Optional compiled kernels (Numba) for the optimizer updates.

Adam in NumPy makes about a dozen passes over the parameters per step (each
ufunc reads and writes the whole buffer); one compiled loop makes a single pass
and, with ``fastmath`` and NumPy's error model, vectorises.  On MNIST's
784-140-10 network (111,310 parameters) that is 182 µs -> 41 µs per step
(including the divergence guard's copy of the old weights).

The kernels are used when Numba is installed (``pip install layerwise[fast]``)
and ``LAYERWISE_KERNELS`` is not ``numpy``; the NumPy code in ``optim.py``
stays the reference and is tested against them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

try:  # Numba is optional: without it everything runs on the NumPy path.
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None


def numba_enabled() -> bool:
    """True when Numba is importable and ``LAYERWISE_KERNELS`` does not ask for ``numpy``."""
    return numba is not None and os.environ.get("LAYERWISE_KERNELS", "auto").lower() != "numpy"


# Every scalar argument arrives with the arrays' dtype (see optim.py), and no literal
# appears in the arithmetic: an int or float64 constant would promote float32 work to
# float64 and stop the loop from vectorising (65 µs instead of 100+ µs per MNIST step).
#
# Subnormal numbers: a weight whose gradient has died out (a dead ReLU unit, a border
# pixel that is almost always 0) has its moments decay geometrically, m by β1 and v by β2
# per step, into the subnormal range, where every multiplication takes a microcode
# assist: the MNIST step measured 340 µs instead of 50 µs.  The kernels therefore read
# a moment below ``tiny`` (the smallest normal number divided by its decay factor) as 0,
# and leave out of v a gradient whose square would be subnormal.  That never changes a
# weight: such a v is below 1e-34, so sqrt(v) is far below half an ulp of eps (1e-8),
# and such an m moves a weight by less than 1e-28.  (torch.optim keeps the subnormals
# and pays for them unless torch.set_flush_denormal(True).)


def _adam(p, g, m, v, backup, one_minus_beta1, beta2, one_minus_beta2, step_size, bias2_sqrt, eps, l2, decay,
          tiny_m, tiny_v, tiny_g, zero):  # fmt: skip
    # torch.optim.Adam's arithmetic, one element at a time; backup keeps the old
    # weights for the divergence guard at no extra pass over memory.
    for i in range(p.size):  # pragma: no cover (compiled)
        w = p[i]
        backup[i] = w
        grad = g[i] + l2 * w
        m0 = m[i]
        m0 = zero if abs(m0) < tiny_m else m0  # selects, not branches: the loop still vectorises
        v0 = v[i]
        v0 = zero if v0 < tiny_v else v0
        g2 = zero if abs(grad) < tiny_g else grad
        mi = m0 + one_minus_beta1 * (grad - m0)
        vi = beta2 * v0 + one_minus_beta2 * g2 * g2
        m[i] = mi
        v[i] = vi
        p[i] = w * decay - step_size * (mi / (np.sqrt(vi) / bias2_sqrt + eps))


def _sgd(p, g, buf, backup, lr, momentum, nesterov, l2, first, tiny_b, zero):
    for i in range(p.size):  # pragma: no cover (compiled)
        w = p[i]
        backup[i] = w
        grad = g[i] + l2 * w
        if momentum != 0:
            b0 = buf[i]
            b0 = zero if abs(b0) < tiny_b else b0  # a momentum that decayed into subnormals: 0 (see above)
            b = grad if first else momentum * b0 + grad
            buf[i] = b
            grad = grad + momentum * b if nesterov else b
        p[i] = w - lr * grad


if numba is not None:
    _jit = numba.njit(fastmath=True, error_model="numpy", cache=True, nogil=True)
    adam_kernel = _jit(_adam)
    sgd_kernel = _jit(_sgd)
else:  # pragma: no cover
    adam_kernel = sgd_kernel = None


# -- one pool of threads: BLAS on one thread while our kernels share the batch ---------------
# A CNN step alternates matrix products (BLAS, split over the cores by BLAS's own threads)
# with passes over memory (split by ours).  Two pools taking turns on the same cores lose
# time: a BLAS thread busy-waits after each product and slows our passes down, and each
# pass walks the whole batch's patch matrix between products.  During training, a network
# whose layers can share the batch themselves (``Conv2D`` with the compiled kernels) runs
# with BLAS held at one thread; each of our threads then takes a slice of the batch and
# multiplies its own chunks of it (``layers/_fast/sliced.py``).
_one_blas_thread_users = 0  # trainings inside one_blas_thread() now (threads of this process)
_one_blas_thread_lock = threading.Lock()
_one_blas_thread_limiter: Any = None


def set_threads(n: int) -> bool:
    """This process's thread count from now on: BLAS's (threadpoolctl) and the compiled CNN
    kernels'.  False when threadpoolctl is missing: the kernels' count is set, BLAS's is not."""
    from .layers import _fast  # here: layers import this module

    _fast.THREADS = n
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(n)
    return True


def one_blas_thread_active() -> bool:
    """True inside ``one_blas_thread()``: BLAS runs on one thread, layers split the batch themselves."""
    return _one_blas_thread_users > 0


@contextlib.contextmanager
def one_blas_thread(active: bool = True) -> Iterator[None]:
    """Hold BLAS at one thread (threadpoolctl) for the duration; does nothing when ``active`` is
    False, when the kernels run on one thread, or without threadpoolctl.

    Trainings in several threads of one process share the hold: the first one in sets
    it, the last one out gives BLAS its threads back.
    """
    global _one_blas_thread_users, _one_blas_thread_limiter
    from .layers._fast import threads  # here: layers import this module

    if not active or threads() < 2:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (``pip install layerwise[fast]``): the batch stays whole
        yield
        return
    from .layers._fast import team

    team.available()  # loads SciPy's BLAS, which the parallel regions call, before the limit is taken
    with _one_blas_thread_lock:
        if _one_blas_thread_users == 0:
            _one_blas_thread_limiter = threadpool_limits(limits=1, user_api="blas")
        _one_blas_thread_users += 1
    try:
        yield
    finally:
        with _one_blas_thread_lock:
            _one_blas_thread_users -= 1
            if _one_blas_thread_users == 0:
                _one_blas_thread_limiter.restore_original_limits()
                _one_blas_thread_limiter = None
