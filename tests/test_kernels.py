"""The compiled optimizer kernels agree with the NumPy reference path."""

import numpy as np
import pytest

from layerwise import kernels, optim

CASES = [
    (optim.Adam, {}),
    (optim.Adam, {"weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
    (optim.AdamW, {"weight_decay": 0.1}),
    (optim.SGD, {"lr": 0.1}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
]


def run_steps(cls, kwargs, use_kernels, dtype, steps=5):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(1000).astype(dtype), rng.standard_normal((20, 30)).astype(dtype)]
    backup = [np.empty_like(p) for p in params]
    opt = cls(**kwargs)
    opt.use_kernels = use_kernels
    for k in range(steps):
        before = [p.copy() for p in params]
        grads = [np.random.default_rng(k).standard_normal(p.shape).astype(dtype) for p in params]
        opt.step(params, grads, backup=backup)
        for b, old in zip(backup, before, strict=True):
            np.testing.assert_array_equal(b, old)  # backup holds the weights before the step
    return params, opt


@pytest.mark.skipif(not kernels.numba_enabled(), reason="Numba not installed")
@pytest.mark.parametrize(("cls", "kwargs"), CASES)
@pytest.mark.parametrize(("dtype", "tol"), [(np.float32, 2e-6), (np.float64, 1e-12)])
def test_kernel_matches_numpy(cls, kwargs, dtype, tol):
    ref, ref_opt = run_steps(cls, kwargs, False, dtype)
    fast, fast_opt = run_steps(cls, kwargs, True, dtype)
    for a, b in zip(ref, fast, strict=True):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    for slot, arrays in ref_opt.state.items():
        for a, b in zip(arrays, fast_opt.state[slot], strict=True):
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def test_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("LAYERWISE_KERNELS", "numpy")
    assert not kernels.numba_enabled()
    assert not optim.Adam().use_kernels


def test_numba_is_installed_in_ci():
    # The test extra installs numba, so CI exercises the compiled path; fail loudly if it is missing.
    import os

    if os.environ.get("CI"):
        assert kernels.numba is not None
