"""A training batch shared by Numba's OpenMP threads: one parallel region per pass, no GIL.

In training, a CNN step is about eight passes big enough to share between the cores.
Handing half of each to a Python thread costs an operating-system wake-up per pass (about
85 µs on the machines we measured; LeNet-5's whole step is 3-5 ms), and both threads then
queue for the GIL between kernels.  Here each pass is one compiled *parallel region*: the
threads of Numba's OpenMP layer take a slice of the batch each, run the same serial
kernels as the Python-thread path (``conv_kernels``, ``pool_kernels``) and, for the
convolutions' matrix products, call BLAS themselves (one BLAS thread each: SciPy's BLAS,
through Numba's ``np.dot``, and NumPy's own sgemm for the filter gradient, ``numpy_blas.py``).
Between regions OpenMP's threads spin for a moment before they sleep, so a region starts
in microseconds.

The formulas and the slices are those of the Python-thread path (``sliced.py``):
forward ``y = cols·W_rowsᵀ + b``; backward ``dW = dyᵀ·cols`` (as colsᵀ·dy), ``db = Σ dy``,
``dcols = dy·W_rows``; each slice's dW and db are summed in slice order, so the result
depends on the number of slices, not on which thread finished first.

Used only while ``layerwise.kernels.one_blas_thread()`` holds BLAS at one thread (OpenMP's
spinning threads would fight BLAS's own, and each region's BLAS calls must not start threads
of their own), and only when Numba's threading layer is safe to launch from several Python
threads at once (OpenMP or TBB, not ``workqueue``) and SciPy is installed.  Not in a process
forked from one that ran a region: GNU OpenMP does not survive a fork (the child would be
terminated), so a forked child uses the Python threads.  ``LAYERWISE_TEAM=0`` turns the
regions off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import numba


def only_prange() -> dict[str, bool]:
    """``parallel=`` for the kernels' regions: only their explicit ``prange`` loop over the slices.

    Numba's other rewrites (array expressions such as ``dW[k] += product[k]`` into parallel loops
    of their own) gain nothing inside a slice and multiply the compile time.  A new dict each
    time: Numba empties the one it is given.
    """
    keys = ("comprehension", "reduction", "inplace_binop", "setitem", "numpy", "stencil", "fusion")
    return dict.fromkeys(keys, False) | {"prange": True}


def compile_region(f: Any, **options: Any) -> Any:
    """``f`` compiled as a parallel region (its ``prange`` over the slices), cached on disk.

    options: more ``numba.njit`` options (e.g. ``fastmath``).
    """
    return numba.njit(nogil=True, cache=True, parallel=only_prange(), **options)(f)


_state: dict[str, int | bool] = {}  # "pid": the process that asked first, "ok": its answer


def available() -> bool:
    """Can passes run as parallel regions here?  Checked once per process: SciPy's BLAS, a thread-safe layer."""
    pid = os.getpid()
    if _state.get("pid") != pid:
        # A forked child of a process that started OpenMP must not start a region.
        _state["ok"] = _probe() if "pid" not in _state else False
        _state["pid"] = pid
    return bool(_state["ok"])


@contextlib.contextmanager
def threads(slices: int) -> Iterator[None]:
    """Run the next region on at most ``slices`` of Numba's threads (``--threads 2`` on a bigger machine)."""
    want = min(slices, numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    if want == before:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _probe() -> bool:
    if numba is None or os.environ.get("LAYERWISE_TEAM", "1") == "0":
        return False
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot calls BLAS through it)
    except ImportError:
        return False
    try:
        _probe_region(np.zeros(2))  # starts Numba's threading layer
        return numba.threading_layer() in ("omp", "tbb")
    except Exception:  # noqa: BLE001 - no parallel layer at all: the Python threads do the work
        return False


if numba is not None:

    @numba.njit(parallel=True, nogil=True, cache=True)
    def _probe_region(a):  # pragma: no cover (compiled)
        for k in numba.prange(len(a)):
            a[k] += 1
