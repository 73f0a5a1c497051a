"""NumPy's own sgemm, called from compiled kernels: the filter-gradient product in training's regions.

The parallel regions (``team.py``) multiply matrices through Numba's ``np.dot``, which calls
SciPy's BLAS.  NumPy's wheels bundle a newer OpenBLAS, and its sgemm runs the filter-gradient
product colsᵀ·dy faster on one thread: 38 against 28 GMAC/s for LeNet-5's second layer
(16 filters) and 59-61 against 51-53 for the convnet's (64 filters), measured here; the forward
and patch-gradient products run at the same speed in both, so only that product moves.

The function is looked up in NumPy's own extension module (``dlsym`` searches the libraries it
was linked with), under the name of the CBLAS function with 64-bit integers that NumPy's
OpenBLAS wheels export, and registered with LLVM under a fixed name, so that Numba's disk
cache of the kernels stays valid from one process to the next.  The call itself
(``conv_kernels.colsT_dy``) lives beside the regions that inline it: Numba notices a
changed source file only for the file of the function it caches.  Where it is not found (another
NumPy build), ``available()`` is False and the kernels keep Numba's ``np.dot``.
"""

from __future__ import annotations

import ctypes
import functools

from ...kernels import numba

#: The name the kernels call; bound to NumPy's function by ``available()``.
SYMBOL = "layerwise_numpy_sgemm64"
#: CBLAS's constants for the call.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


@functools.cache
def available() -> bool:
    """Is NumPy's 64-bit-integer CBLAS sgemm there (and now registered for the kernels)?"""
    if numba is None:
        return False
    try:
        from numpy._core import _multiarray_umath

        address = ctypes.cast(ctypes.CDLL(_multiarray_umath.__file__).scipy_cblas_sgemm64_, ctypes.c_void_p).value
    except (ImportError, OSError, AttributeError):
        return False
    if not address:
        return False
    import llvmlite.binding

    llvmlite.binding.add_symbol(SYMBOL, address)
    return True
