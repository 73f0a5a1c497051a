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


@pytest.mark.skipif(not kernels.numba_enabled(), reason="Numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_moments_decayed_into_subnormals_do_not_change_the_weights(kind, dtype):
    """Dead weights (gradient 0 for many steps, then tiny) drive the moments to subnormal numbers.  The kernels
    read those as 0 (a multiplication of a subnormal is ~40x slower); that must leave every weight to the last
    bit as the same kernel computes it keeping the subnormals (limits 0: nothing flushed)."""
    tiny, s = np.finfo(dtype).tiny, dtype
    limits = optim._subnormal_limits(np.dtype(dtype), 0.9, 0.999)
    results = []
    for flush in (False, True):
        rng = np.random.default_rng(1)
        p = rng.standard_normal(3000).astype(dtype)
        p[:5] = 0.0  # weights at exactly 0, where the smallest change would show
        m, v, backup = np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
        for step in range(1, 60):
            g = rng.standard_normal(3000).astype(dtype)
            if step > 2:  # then most gradients are 0, or far below any normal square
                g[:2500] = 0.0
                g[2500:2800] *= s(tiny**0.6)
            if kind == "adam":
                size, bias2 = s(1e-3 / (1 - 0.9**step)), s(np.sqrt(1 - 0.999**step))
                lim = limits if flush else (s(0), s(0), s(0), s(0))
                kernels.adam_kernel(p, g, m, v, backup, s(0.1), s(0.999), s(0.001), size, bias2, s(1e-8), s(0),
                                    s(1), *lim)  # fmt: skip
            else:
                lim = s(tiny / 0.9) if flush else s(0)
                kernels.sgd_kernel(p, g, m, backup, s(0.1), s(0.9), False, s(0), step == 1, lim, s(0))
            if step == 2:  # moments already as small as thousands of steps of decay make them
                m[:2000] *= s(tiny * 1e3)
                v[:2000] *= s(tiny * 1e3)
        results.append((p, m, v))
    (p_ref, m_ref, v_ref), (p_fast, m_fast, v_fast) = results
    assert np.any((m_ref != 0) & (np.abs(m_ref) < tiny))  # the unflushed run does hold subnormals
    assert np.array_equal(p_fast, p_ref)
    for ref, fast in ((m_ref, m_fast), (v_ref, v_fast)):
        normal = np.abs(ref) >= 1e6 * tiny
        assert np.array_equal(fast[normal], ref[normal])  # only what was within a hair of subnormal differs
        assert np.all(np.abs(fast[~normal] - ref[~normal]) < 1e7 * tiny)
