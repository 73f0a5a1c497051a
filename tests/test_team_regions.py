"""Training's parallel regions (layers/_fast/team.py): taken where they should be, BLAS held, fork-safe.

That the regions compute what the NumPy reference computes is tested with every other
threading mode in test_conv_kernels.py ("team").
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise import kernels
from layerwise.layers import _fast
from layerwise.layers._fast import team

pytestmark = [
    pytest.mark.skipif(_fast.numba is None, reason="Numba not installed (pip install layerwise[fast])"),
    pytest.mark.usefixtures("regions"),  # on here (conftest.py turns them off elsewhere)
]


def small_cnn(seed: int = 0) -> lw.Model:
    net = lw.Sequential(
        [lw.Conv2D(4, 3, padding=1), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(6, 3), lw.ReLU(), lw.MaxPool2D(2),
         lw.Flatten(), lw.Dense(3)],
        input_shape=(1, 12, 12), seed=seed,
    )  # fmt: skip
    return lw.Model(net, optimizer=lw.optim.Adam(1e-2), seed=seed)


def data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((n, 1, 12, 12)).astype(np.float32), rng.integers(0, 3, n)


def test_the_parallel_regions_are_available_with_the_test_dependencies():
    # SciPy and a thread-safe Numba layer come with `pip install -e .[test]`: training must not
    # quietly fall back to the Python threads there.
    assert team.available()
    assert _fast.numba.threading_layer() in ("omp", "tbb")


def test_training_runs_every_conv_and_pool_pass_as_a_region(monkeypatch):
    monkeypatch.setattr(_fast, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_fast, "THREADS", 2)
    answers: list[int] = []
    original = _fast.team_slices

    def spy(batch: int, nbytes: int) -> int:
        answers.append(original(batch, nbytes))
        return answers[-1]

    monkeypatch.setattr(_fast, "team_slices", spy)
    x, y = data()
    model = small_cnn()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    # 8 per step (conv1 forward and filter gradient, conv2 forward and backward, two pools forward
    # and backward) for 3 steps, and 4 in the forward pass that checks the epoch's last update
    assert len(answers) == 3 * 8 + 4 and all(a == 2 for a in answers), answers
    answers.clear()
    model.predict(x)  # inference: no hold on BLAS, so the Python threads
    assert answers and not any(answers)


def test_regions_and_python_threads_train_to_the_same_weights(monkeypatch):
    """The same slices, the same formulas: the two ways of sharing a step agree to rounding."""
    monkeypatch.setattr(_fast, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_fast, "THREADS", 2)
    x, y = data()
    weights = []
    for ok in (True, False):
        monkeypatch.setattr(team, "_state", {"pid": os.getpid(), "ok": ok})
        model = small_cnn()
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        weights.append(model.net.flat_params.copy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-4, atol=1e-5)
    # and the regions are deterministic: the same run again gives the same bits
    monkeypatch.setattr(team, "_state", {"pid": os.getpid(), "ok": True})
    again = small_cnn()
    again.fit(x, y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(again.net.flat_params, weights[0])


def test_the_filter_gradient_takes_numpys_sgemm_and_agrees_with_numbas_dot(monkeypatch):
    """numpy_blas: in a region, colsᵀ·dy goes through NumPy's own sgemm (NumPy's wheels export it),
    float32 only; dW agrees with Numba's np.dot to rounding, db and dx are the same bits.

    The layer has small_cnn's second shape, whose float32 region the tests above compiled already."""
    from layerwise.layers._fast import conv_kernels, numpy_blas

    assert numpy_blas.available()
    monkeypatch.setattr(_fast, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_fast, "THREADS", 2)
    asked: list[bool] = []
    original = conv_kernels.patch_team_kernels

    def spy(*args):
        if len(args) == 10:  # backward's: the layer shape, then numpy_sgemm
            asked.append(args[-1])
        return original(*args)

    monkeypatch.setattr(conv_kernels, "patch_team_kernels", spy)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 4, 6, 6)).astype(np.float32)  # 4 channels · 3×3 = 36 > SMALL_PATCH: patches
    results = {}
    for dtype, use in ((np.float32, True), (np.float32, False), (np.float64, True)):
        monkeypatch.setattr(numpy_blas, "available", lambda use=use: use)
        layer = lw.Conv2D(6, 3, dtype=dtype)
        layer.build((4, 6, 6), rng=np.random.default_rng(0))
        dy = np.random.default_rng(4).standard_normal((9, *layer.output_shape((4, 6, 6)))).astype(dtype)
        asked.clear()
        with kernels.one_blas_thread():
            layer.forward(x.astype(dtype), training=True)
            dx = layer.backward(dy)
        assert asked == [dtype == np.float32 and use], asked  # float64 never calls sgemm
        results[dtype, use] = layer.grads["W"].copy(), layer.grads["b"].copy(), np.array(dx)
    (w1, b1, dx1), (w2, b2, dx2) = results[np.float32, True], results[np.float32, False]
    np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(b1, b2)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_allclose(w1, results[np.float64, True][0], rtol=1e-4, atol=1e-4)


def test_the_hold_limits_every_blas_the_regions_call():
    """SciPy's BLAS (Numba's np.dot inside a region) must run on one thread too, or each region's
    threads would start BLAS threads of their own."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if _fast.threads() < 2:
        pytest.skip("one core: training never holds BLAS")
    with kernels.one_blas_thread():
        blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        assert any("scipy" in info["filepath"] for info in blas), blas  # loaded before the limit
        assert all(info["num_threads"] == 1 for info in blas), blas


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_trains_on_python_threads_instead_of_being_terminated():
    """GNU OpenMP does not survive a fork: a child of a process that ran regions must not start one."""
    x, y = data()
    with kernels.one_blas_thread():
        small_cnn().fit(x, y, epochs=1, batch_size=16, verbose=0)  # the parent runs regions
    assert team.available()
    pid = os.fork()
    if pid == 0:  # the child: train, and say how it went by the exit code
        code = 1
        try:
            if not team.available():
                small_cnn().fit(x, y, epochs=1, batch_size=16, verbose=0)
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
