"""The compiled Conv2D/MaxPool2D kernels (layers/_fast/, Numba) agree with the NumPy reference path.

Each test runs the same layer twice, once with ``use_kernels = False`` (NumPy) and
once with ``use_kernels = True`` (Numba), on the same data, and compares outputs,
input gradients and parameter gradients.  The NumPy path itself is checked against
finite differences and PyTorch in the gradcheck/parity tests; one PyTorch check
here makes sure the compiled path is not merely consistently wrong.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise import kernels
from layerwise.callbacks import Callback
from layerwise.layers import _fast
from layerwise.layers._fast import sliced, team
from layerwise.layers.pooling import ReLUMaxPool2D

needs_numba = pytest.mark.skipif(_fast.numba is None, reason="Numba not installed (pip install layerwise[fast])")


@pytest.fixture
def threads(request, monkeypatch):
    """How the compiled kernels share a pass (the tests parametrize it, ``indirect``):

    "one-thread": on the calling thread alone; "split": cut into 3 uneven batch slices on Python
    threads; "sliced": as in training under ``one_blas_thread`` where parallel regions are not
    available, Conv2D's products cut too, a sample per chunk; "team": as in training with them
    (``_fast/team.py``: Numba's OpenMP threads, 3 slices, a sample per chunk).
    """
    mode = request.param
    if mode == "one-thread":
        monkeypatch.setattr(_fast, "PARALLEL_MIN_BYTES", 1 << 62)
    else:
        monkeypatch.setattr(_fast, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(_fast, "THREADS", 3)
    if mode in ("sliced", "team"):
        monkeypatch.setattr(kernels, "_one_blas_thread_users", 1)
        monkeypatch.setattr(sliced, "CHUNK_BYTES", 1)
    if mode in ("split", "sliced"):  # the Python threads, also inside fit (where regions would run)
        monkeypatch.setattr(team, "_state", {"pid": os.getpid(), "ok": False})
    if mode == "team":
        request.getfixturevalue("regions")  # conftest.py: off in the other tests
    return mode


MODES = ["one-thread", "split", "sliced", "team"]
MODES_DTYPES = [(mode, dtype) for mode in MODES for dtype in (np.float32, np.float64)]


TOL = {np.float32: 2e-5, np.float64: 1e-12}

CONV_CASES = [
    # filters, kernel_size, stride, padding, x shape (batch, C, H, W)
    (4, 3, 1, 0, (2, 3, 7, 9)),
    (6, 5, 1, 2, (5, 1, 28, 28)),  # LeNet's first layer
    (3, 3, 2, 0, (2, 2, 7, 9)),
    (2, 3, 2, 1, (2, 1, 7, 9)),
    (3, 3, 1, "same", (2, 2, 7, 9)),
    (2, (2, 4), 2, "same", (2, 2, 7, 9)),  # even kernel: asymmetric padding
    (3, (2, 4), 1, "same", (2, 1, 7, 9)),  # the same, stride 1: patches small enough to skip (conv_small)
    (2, (1, 3), (2, 1), (1, 0), (2, 3, 5, 8)),  # per-axis stride and padding
    (1, 3, 3, 2, (2, 2, 8, 7)),  # padding larger than 1: whole rows of zeros
    (3, 2, 2, 0, (1, 5, 7, 9)),  # the last row and column fall off
    (2, 5, 1, 0, (1, 1, 5, 5)),  # 1x1 output
    (4, 1, 1, 0, (2, 3, 4, 3)),  # 1x1 kernel
    (16, 5, 1, 0, (2, 6, 14, 14)),  # LeNet's second layer: stride 1, patches of more than SMALL_PATCH numbers
]
# Training's parallel regions compile anew for each layer shape and dtype (2-5 s the first time on
# a machine, then cached): "team" runs in float32 on LeNet-5's two layers, which its training
# compiles anyway, and on a strided, unevenly padded one; tests/test_team_regions.py trains a
# whole network (the fused ReLU-pool included) in regions against the Python threads.
TEAM_CONV_CASES = [CONV_CASES[i] for i in (1, 5, 12)]


def with_modes(cases: list[tuple], team_cases: list[tuple]) -> list[tuple]:
    """(mode, dtype, *case) for every mode and dtype, "team" only in float32 and on ``team_cases``."""
    return [
        (mode, dtype, *case)
        for mode, dtype in MODES_DTYPES
        for case in cases
        if mode != "team" or (dtype == np.float32 and case in team_cases)
    ]


def conv_pass(layer, x, dy, use_kernels, need_dx=True):
    layer.use_kernels = use_kernels
    x_before = x.copy()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy.copy(), need_dx=need_dx)
    np.testing.assert_array_equal(x, x_before)  # the caller's input is never modified
    return y.copy(), None if dx is None else dx.copy(), {k: g.copy() for k, g in layer.grads.items()}


def assert_same(a, b, dtype):
    """Equal to rounding: sums in another order differ by a few ulps of the array's largest entries (a filter
    gradient is a sum over every pixel of the batch), so the absolute tolerance scales with those."""
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * max(1.0, float(np.abs(b).max())))


def channels_last_view(x: np.ndarray) -> np.ndarray:
    """The same values as x (B, C, H, W), stored channels last (as a Conv2D hands on its output)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@needs_numba
@pytest.mark.parametrize(
    ("threads", "dtype", "filters", "kernel", "stride", "padding", "shape"),
    with_modes(CONV_CASES, TEAM_CONV_CASES),
    indirect=["threads"],
)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_conv2d_compiled_equals_numpy(filters, kernel, stride, padding, shape, dtype, layout, threads):
    rng = np.random.default_rng(sum(shape))
    layer = lw.Conv2D(filters, kernel, stride=stride, padding=padding, rng=1, dtype=dtype)
    layer.build(shape[1:])
    layer.params["b"][...] = rng.standard_normal(filters)
    x = rng.standard_normal(shape).astype(dtype)
    if layout == "channels_last":
        x = channels_last_view(x)
    dy = rng.standard_normal((shape[0], *layer.output_shape(shape[1:]))).astype(dtype)
    ref = conv_pass(layer, x, dy, use_kernels=False)
    fast = conv_pass(layer, x, dy, use_kernels=True)
    assert_same(fast[0], ref[0], dtype)
    assert_same(fast[1], ref[1], dtype)
    for name in ("W", "b"):
        assert_same(fast[2][name], ref[2][name], dtype)
    # Without dx (a network's first layer in training) the parameter gradients stay the same.
    skipped = conv_pass(layer, x, dy, use_kernels=True, need_dx=False)
    assert skipped[1] is None
    for name in ("W", "b"):
        np.testing.assert_array_equal(skipped[2][name], fast[2][name])


@needs_numba
@pytest.mark.parametrize(("filters", "kernel", "stride", "padding", "shape"), CONV_CASES)
def test_im2col_strategies_agree(filters, kernel, stride, padding, shape, monkeypatch):
    """Short window rows are copied column by column, long ones run by run: both fill cols alike."""
    monkeypatch.setattr(_fast, "SMALL_PATCH", 0)  # always cut patches, even where conv_small would skip them
    layer = lw.Conv2D(filters, kernel, stride=stride, padding=padding)
    layer.build(shape[1:])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    cols = {}
    for name, short_run in (("runs", 0), ("columns", 1 << 20)):
        monkeypatch.setattr(_fast, "SHORT_RUN", short_run)
        layer.use_kernels = True
        cols[name] = layer.forward(x) is not None and layer.cols.copy()
    layer.use_kernels = False
    layer.forward(x)
    np.testing.assert_array_equal(cols["runs"], layer.cols)
    np.testing.assert_array_equal(cols["columns"], layer.cols)


@needs_numba
def test_small_patches_skip_the_patch_matrix():
    """LeNet's first layer (25 numbers per patch) takes conv_small; a stride of 2 or a big patch takes im2col."""
    x = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
    for layer, small in ((lw.Conv2D(6, 5, padding=2), True), (lw.Conv2D(6, 5, stride=2), False),
                         (lw.Conv2D(6, 7), False)):  # fmt: skip
        layer.build(x.shape[1:])
        layer.forward(x, training=True)
        assert layer._small is small
        assert (layer.cols is None) is small


@needs_numba
def test_conv2d_compiled_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = lw.Conv2D(3, (3, 2), stride=(2, 1), padding=1, rng=2, dtype=np.float64)
    layer.build((2, 7, 6))
    layer.params["b"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 6))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.params["W"], requires_grad=True)
    tb = torch.tensor(layer.params["b"], requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=(2, 1), padding=1)
    ty.backward(torch.tensor(dy))
    assert layer.use_kernels
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("use_kernels", [False, True], ids=["numpy", "numba"])
def test_conv2d_scratch_buffers_follow_the_batch_size(use_kernels):
    """Reused buffers: a smaller last batch, then full batches again, give fresh results; outputs are new arrays."""
    rng = np.random.default_rng(3)
    layer = lw.Conv2D(4, 3, padding=1, rng=1, dtype=np.float32)
    layer.build((3, 6, 5))
    twin = lw.Conv2D(4, 3, padding=1, rng=1, dtype=np.float32)
    twin.build((3, 6, 5))
    twin.use_kernels = False
    outputs = []
    for batch in (8, 3, 8, 1, 8):
        x = rng.standard_normal((batch, 3, 6, 5)).astype(np.float32)
        dy = rng.standard_normal((batch, 4, 6, 5)).astype(np.float32)
        layer.use_kernels = use_kernels
        y, dx = layer.forward(x, training=True), layer.backward(dy)
        y_ref, dx_ref = twin.forward(x, training=True), twin.backward(dy)
        assert_same(y, y_ref, np.float32)
        assert_same(dx, dx_ref, np.float32)
        assert_same(layer.grads["W"], twin.grads["W"], np.float32)
        outputs.append((y, y.copy()))
    for y, saved in outputs:  # no later call wrote into an earlier output
        np.testing.assert_array_equal(y, saved)


@needs_numba
def test_conv2d_output_is_channels_last_and_next_conv_reads_it_without_copy():
    layer = lw.Conv2D(5, 3, rng=0)
    layer.build((2, 8, 8))
    y = layer.forward(np.ones((2, 2, 8, 8), np.float32))
    assert y.shape == (2, 5, 6, 6)
    assert _fast.is_channels_last(y) and not y.flags.c_contiguous
    assert np.shares_memory(_fast.channels_last(y), y)


# ----------------------------------------------------------------------------- MaxPool2D

POOL_CASES = [
    # pool, stride, x shape
    (2, None, (2, 3, 6, 6)),
    (2, None, (2, 2, 7, 9)),  # odd sizes: the last row/column is dropped
    (3, None, (1, 2, 7, 9)),
    (2, 1, (2, 2, 5, 6)),  # overlapping windows add up in dx
    (3, 2, (2, 2, 7, 9)),
    ((2, 3), (1, 2), (2, 2, 6, 9)),
    (2, 2, (1, 1, 7, 7)),
    (2, 3, (2, 3, 8, 8)),  # stride larger than the pool: pixels no window sees
]


LENET_POOL2 = (2, None, (2, 16, 10, 10))  # LeNet-5's second pooling layer


def pool_pass(layer, x, dy, use_kernels):
    layer.use_kernels = use_kernels
    x_before = x.copy()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy.copy())
    np.testing.assert_array_equal(x, x_before)
    return y, dx


@needs_numba
@pytest.mark.parametrize(
    ("threads", "dtype", "pool", "stride", "shape"),
    with_modes(POOL_CASES + [LENET_POOL2], [LENET_POOL2]),
    indirect=["threads"],
)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_maxpool_compiled_equals_numpy(pool, stride, shape, dtype, layout, threads):
    rng = np.random.default_rng(sum(shape))
    # Values on a coarse grid: many ties, which both paths must break alike (first maximum).
    x = rng.integers(-3, 4, shape).astype(dtype)
    if layout == "channels_last":
        x = channels_last_view(x)
    layer = lw.MaxPool2D(pool, stride)
    dy = rng.standard_normal((shape[0], *layer.output_shape(shape[1:]))).astype(dtype)
    y_ref, dx_ref = pool_pass(layer, x, dy, use_kernels=False)
    y, dx = pool_pass(layer, x, dy, use_kernels=True)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == dx.dtype == dtype
    assert_same(dx, dx_ref, dtype)  # overlapping windows may add in another order
    # Channels-last memory in and out, as a Conv2D hands on its output: no transposes between the layers.
    assert _fast.is_channels_last(y) and _fast.is_channels_last(dx)


@needs_numba
def test_maxpool_compiled_ties_and_nan_like_numpy():
    x = np.array([[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, np.nan], [np.nan, 3.0, 0.0, 0.0], [3.0, np.nan, 0.0, -0.0]]]])
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    results = {}
    for use_kernels in (False, True):
        layer = lw.MaxPool2D(2)
        layer.use_kernels = use_kernels
        results[use_kernels] = (layer.forward(x), layer.backward(dy))
    np.testing.assert_array_equal(results[True][0], results[False][0])
    np.testing.assert_array_equal(results[True][1], results[False][1])
    # The first maximum wins: dx of the all-ones window goes to its top-left pixel.
    assert results[True][1][0, 0, 0, 0] == 1.0 and results[True][1][0, 0, 0:2, 0:2].sum() == 1.0


@needs_numba
def test_maxpool_scratch_follows_the_batch_size():
    rng = np.random.default_rng(5)
    layer, twin = lw.MaxPool2D(2), lw.MaxPool2D(2)
    twin.use_kernels = False
    for batch in (6, 2, 6):
        x = channels_last_view(rng.standard_normal((batch, 3, 6, 6)).astype(np.float32))
        dy = rng.standard_normal((batch, 3, 3, 3)).astype(np.float32)
        np.testing.assert_array_equal(layer.forward(x), twin.forward(x))
        np.testing.assert_array_equal(layer.backward(dy), twin.backward(dy))


# ----------------------------------------------------------------------------- a whole network


@needs_numba
@pytest.mark.parametrize(("threads", "dtype"), with_modes([()], [()]), indirect=["threads"])
def test_training_a_cnn_compiled_equals_numpy(dtype, threads):
    """A few Adam steps of a small LeNet-like network end at the same weights on both paths.

    (test_team_regions trains the same network: in "team" mode its regions are compiled once.)"""
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 12, 12)).astype(dtype)
    y = rng.integers(0, 3, 40)
    weights = {}
    for use_kernels in (False, True):
        net = lw.Sequential(
            [lw.Conv2D(4, 3, padding=1), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(6, 3), lw.ReLU(), lw.MaxPool2D(2),
             lw.Flatten(), lw.Dense(3)],
            input_shape=(1, 12, 12), dtype=dtype, seed=1,
        )  # fmt: skip
        for layer in net.layers:
            if hasattr(layer, "use_kernels"):
                layer.use_kernels = use_kernels
        model = lw.Model(net, optimizer=lw.optim.Adam(1e-2))
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        weights[use_kernels] = net.flat_params.copy()
    np.testing.assert_allclose(weights[True], weights[False], rtol=10 * TOL[dtype], atol=10 * TOL[dtype])


@needs_numba
@pytest.mark.parametrize(("threads", "dtype"), with_modes([()], []), indirect=["threads"])
def test_relu_and_maxpool_fused_equal_the_two_layers(dtype, threads):
    """A network runs ReLU → MaxPool2D as one step; outputs and every gradient are bit for bit those of
    the two layers run one by one (as they are while a hook observes the forward pass)."""
    rng = np.random.default_rng(3)
    net = lw.Sequential(
        [lw.Conv2D(5, 3, padding=1), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(4, 3), lw.ReLU(), lw.MaxPool2D(2, stride=1),
         lw.Flatten(), lw.Dense(3)],
        input_shape=(2, 9, 9), dtype=dtype, seed=2,
    )  # fmt: skip
    assert [type(step).__name__ for _, step in net._steps].count("ReLUMaxPool2D") == 2
    x = rng.standard_normal((6, 2, 9, 9)).astype(dtype)
    x[0, :, :4, :4] = -1.0  # windows where every value is negative: no gradient may pass
    x[1, 0, :, :] = 0.0  # ties at 0
    dy = rng.standard_normal((6, 3)).astype(dtype)

    def run() -> tuple[np.ndarray, ...]:
        y = net.forward(x, training=True)
        dx = net.backward(dy.copy())
        return y.copy(), dx.copy(), net.flat_grads.copy()

    pools = [step.pool for _, step in net._steps if isinstance(step, ReLUMaxPool2D)]
    fused = run()
    assert all(pool.relu_fused for pool in pools)
    handle = net.register_forward_hook(lambda layer, inp, out: None)  # forward layer by layer
    separate = run()
    assert not any(pool.relu_fused for pool in pools)
    handle.remove()
    for a, b in zip(fused, separate, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_numba
def test_training_holds_blas_at_one_thread_only_for_networks_that_split_the_batch(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if _fast.threads() < 2:
        pytest.skip("one core: the batch is never split")

    def blas_threads() -> int:
        return min(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")

    seen: dict[str, tuple[bool, int]] = {}

    class Spy(Callback):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def on_train_batch_end(self, batch, logs=None):
            seen[self.name] = (kernels.one_blas_thread_active(), blas_threads())

    before = blas_threads()
    rng = np.random.default_rng(0)
    cnn = lw.Sequential([lw.Conv2D(4, 3), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(6, 3), lw.Flatten(), lw.Dense(2)],
                        input_shape=(1, 10, 10), seed=0)  # fmt: skip
    first_only = lw.Sequential([lw.Conv2D(4, 3), lw.ReLU(), lw.Flatten(), lw.Dense(2)], input_shape=(1, 6, 6), seed=0)
    assert cnn.splits_batch and not first_only.splits_batch  # a first layer of 3x3 patches multiplies no patches
    lw.Model(cnn).fit(rng.random((8, 1, 10, 10)), rng.integers(0, 2, 8), epochs=1, batch_size=4, verbose=0,
                      callbacks=[Spy("cnn")])  # fmt: skip
    lw.Model(first_only).fit(rng.random((8, 1, 6, 6)), rng.integers(0, 2, 8), epochs=1, batch_size=4, verbose=0,
                             callbacks=[Spy("first_only")])  # fmt: skip
    assert seen["cnn"] == (True, 1)
    assert seen["first_only"] == (False, before)
    assert blas_threads() == before and not kernels.one_blas_thread_active()  # restored after fit


def test_kernels_follow_the_environment_switch(monkeypatch):
    monkeypatch.setenv("LAYERWISE_KERNELS", "numpy")
    assert not lw.Conv2D(2, 3).use_kernels
    assert not lw.MaxPool2D(2).use_kernels
    monkeypatch.setenv("LAYERWISE_KERNELS", "auto")
    assert lw.Conv2D(2, 3).use_kernels == lw.MaxPool2D(2).use_kernels == (_fast.numba is not None)


def test_scratch_reuses_and_releases():
    scratch = _fast.Scratch()
    a = scratch.get("cols", (100, 30), np.dtype(np.float32))
    b = scratch.get("cols", (40, 30), np.dtype(np.float32))  # the smaller last batch: same memory
    assert np.shares_memory(a, b) and b.shape == (40, 30) and b.flags.c_contiguous
    big = scratch.get("cols", (100_000, 30), np.dtype(np.float32))  # a large inference batch
    small = scratch.get("cols", (100, 30), np.dtype(np.float32))  # back to training: the big buffer goes
    assert not np.shares_memory(big, small)
    ones = scratch.ones(50, np.dtype(np.float64))
    assert ones.dtype == np.float64 and (ones == 1).all()


@pytest.mark.parametrize("use_kernels", [False, True], ids=["numpy", "numba"])
def test_wrong_shapes_are_shape_errors_not_crashes(use_kernels):
    """The compiled kernels index memory without bounds checks, so the layers check shapes first."""
    conv = lw.Conv2D(2, 3)
    conv.build((1, 6, 6))
    conv.use_kernels = use_kernels
    with pytest.raises(lw.errors.ShapeError, match=r"x must have shape \(batch, 1, 6, 6\)"):
        conv.forward(np.zeros((2, 1, 7, 6), np.float32))
    conv.forward(np.zeros((2, 1, 6, 6), np.float32))
    with pytest.raises(lw.errors.ShapeError, match="dy must have the output's shape"):
        conv.backward(np.zeros((3, 2, 4, 4), np.float32))
    pool = lw.MaxPool2D(2)
    pool.use_kernels = use_kernels
    pool.forward(np.zeros((2, 3, 6, 6), np.float32))
    if use_kernels:
        with pytest.raises(lw.errors.ShapeError, match="dy must have the output's shape"):
            pool.backward(np.zeros((2, 3, 4, 4), np.float32))


def test_threads_option_sets_blas_and_kernel_threads(monkeypatch):
    """``--threads N`` governs the compiled kernels' threads as well as BLAS's."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import argparse

    from layerwise.cli.common import set_threads

    monkeypatch.setattr(_fast, "THREADS", None)
    # set_threads changes the whole process: the limiter gives the other tests their threads back.
    with threadpoolctl.threadpool_limits(limits=None):
        set_threads(argparse.Namespace(threads=1))
        assert _fast.threads() == 1
        blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        assert blas and all(info["num_threads"] == 1 for info in blas), blas
        users = kernels._one_blas_thread_users
        with kernels.one_blas_thread():
            assert kernels._one_blas_thread_users == users  # one kernel thread: nothing to split


@needs_numba
def test_one_blas_thread_is_shared_by_trainings_in_several_threads(monkeypatch):
    """The first training in sets the hold, the last one out gives BLAS its threads back."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_fast, "THREADS", 2)

    def blas_threads() -> int:
        return min(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")

    before = blas_threads()
    first, second = kernels.one_blas_thread(), kernels.one_blas_thread()
    first.__enter__()
    second.__enter__()  # as another thread's fit would
    assert kernels.one_blas_thread_active() and blas_threads() == 1
    first.__exit__(None, None, None)
    assert kernels.one_blas_thread_active() and blas_threads() == 1  # the other training still runs
    second.__exit__(None, None, None)
    assert not kernels.one_blas_thread_active() and blas_threads() == before


@needs_numba
@pytest.mark.parametrize("threads", ["one-thread", "split", "sliced"], indirect=True)
@pytest.mark.parametrize("stride", [1, 2], ids=["small-patches", "patch-matrix"])
def test_conv2d_input_of_another_dtype_gives_what_numpy_gives(stride, threads):
    """float64 (or uint8) images into a float32 layer: the compiled paths return NumPy's result dtype and values."""
    rng = np.random.default_rng(5)
    layer = lw.Conv2D(4, 3, stride=stride, padding=1, rng=0, dtype=np.float32)
    layer.build((1, 9, 9))
    for x in (rng.random((3, 1, 9, 9)), rng.integers(0, 255, (3, 1, 9, 9)).astype(np.uint8)):
        dy = rng.standard_normal((3, *layer.output_shape((1, 9, 9)))).astype(np.float32)
        ref = conv_pass(layer, x, dy, use_kernels=False)
        fast = conv_pass(layer, x, dy, use_kernels=True)
        assert fast[0].dtype == ref[0].dtype
        np.testing.assert_allclose(fast[0], ref[0], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(fast[1], ref[1], rtol=1e-5, atol=1e-4)
        for name in ("W", "b"):
            np.testing.assert_allclose(fast[2][name], ref[2][name], rtol=1e-4, atol=1e-3)
