"""Optimizers (no per-step allocations, exact resume), schedules and the LR callback."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import layerwise as lw
from layerwise import optim, schedules
from layerwise.callbacks import Callback, LearningRateScheduler
from layerwise.errors import ConfigError, ModelFileError

CONFIGS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "sgd-wd": lambda: optim.SGD(lr=0.1, weight_decay=0.01),
    "sgd-momentum": lambda: optim.SGD(lr=0.1, momentum=0.9),
    "sgd-nesterov-wd": lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda: optim.Adam(1e-3),
    "adam-wd": lambda: optim.Adam(1e-3, weight_decay=0.01),
    "adamw": lambda: optim.AdamW(1e-3),
    "rmsprop": lambda: optim.RMSProp(1e-3),
    "rmsprop-wd": lambda: optim.RMSProp(1e-3, weight_decay=0.01),
}

N_BIG = 1_000_000


def peak_during(fn) -> int:
    """Peak bytes traced (NumPy reports its buffers to tracemalloc) while fn() runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tracemalloc_sees_parameter_sized_temporaries(dtype):
    """The control for the test below: a naive update is caught."""
    p = np.zeros(N_BIG, dtype)
    g = np.ones(N_BIG, dtype)

    def naive():
        for _ in range(10):
            p[...] = p - 0.1 * g

    assert peak_during(naive) >= p.nbytes


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_parameter_sized_allocation_after_the_first_step(name, dtype):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(N_BIG).astype(dtype)]
    grads = [rng.standard_normal(N_BIG).astype(dtype)]
    opt = CONFIGS[name]()
    opt.step(params, grads)  # warm-up: state and scratch are allocated here

    def ten_steps():
        for _ in range(10):
            opt.step(params, grads)

    peak = peak_during(ten_steps)
    assert peak < params[0].nbytes // 100, f"{name}: {peak} bytes allocated during 10 steps"
    assert opt.iterations == 11
    assert np.isfinite(params[0]).all()


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_resume_is_bit_identical(name, dtype):
    rng = np.random.default_rng(1)
    shapes = [(7, 3), (3,), (50,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(8)]
    opt = CONFIGS[name]()
    for g in grads[:4]:
        opt.step(params, g)
    saved_state = opt.state_dict()
    saved_params = [p.copy() for p in params]
    for g in grads[4:]:
        opt.step(params, g)

    # state_dict returned copies: the later steps did not change it.
    fresh = CONFIGS[name]()
    resumed = [p.copy() for p in saved_params]
    fresh.load_state_dict(saved_state)
    assert fresh.iterations == 4
    for g in grads[4:]:
        fresh.step(resumed, g)
    for a, b in zip(params, resumed, strict=True):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == dtype
    assert fresh.iterations == opt.iterations == 8
    for slot, arrays in opt.state_dict()["slots"].items():
        for a, b in zip(arrays, fresh.state_dict()["slots"][slot], strict=True):
            np.testing.assert_array_equal(a, b)


def test_state_dict_carries_the_config():
    opt = optim.Adam(lr=0.02, betas=(0.8, 0.95), eps=1e-5, weight_decay=0.1)
    other = optim.Adam()
    other.load_state_dict(opt.state_dict())
    assert (other.lr, other.betas, other.eps, other.weight_decay) == (0.02, (0.8, 0.95), 1e-5, 0.1)
    assert isinstance(other.betas, tuple)


def test_load_state_dict_refuses_another_optimizer():
    with pytest.raises(ModelFileError):
        optim.SGD().load_state_dict(optim.Adam().state_dict())


def test_state_is_allocated_with_the_parameters_dtype():
    opt = optim.Adam()
    params = [np.zeros(5, np.float32), np.zeros((2, 2), np.float64)]
    opt.step(params, [np.ones(5, np.float32), np.ones((2, 2))])
    assert [a.dtype for a in opt.state["m"]] == [np.float32, np.float64]
    assert [a.shape for a in opt.state["v"]] == [(5,), (2, 2)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.SGD(lr=0),
        lambda: optim.SGD(lr=-1),
        lambda: optim.SGD(lr=float("nan")),
        lambda: optim.SGD(momentum=1.0),
        lambda: optim.SGD(nesterov=True),
        lambda: optim.Adam(betas=(0.9,)),
        lambda: optim.Adam(betas=(1.0, 0.9)),
        lambda: optim.RMSProp(weight_decay=-0.1),
    ],
)
def test_bad_hyper_parameters(make):
    with pytest.raises(ConfigError):
        make()


@pytest.mark.parametrize(
    "name,cls",
    [
        ("SGD", optim.SGD),
        ("sgd", optim.SGD),
        ("ADAM", optim.Adam),
        ("Adam", optim.Adam),
        ("adamw", optim.AdamW),
        ("RMSProp", optim.RMSProp),
    ],
)
def test_optimizer_names(name, cls):
    assert type(optim.get_optimizer(name)) is cls
    net = lw.NeuralNetwork(3, [(2, "Linear")], seed=0)
    model = lw.Model(net, optimizer=name)
    assert type(model.optimizer) is cls
    model.fit(np.eye(3)[:2], np.array([0, 1]), epochs=1, verbose=0)
    assert model.optimizer.iterations == 1


@pytest.mark.parametrize("name", ["lbfgs", "", None, 3])
def test_unknown_optimizer_names(name):
    with pytest.raises(ConfigError):
        optim.get_optimizer(name)


# ----------------------------------------------------------------------------- schedules


def test_step_decay():
    s = schedules.StepDecay(0.1, step_size=2, gamma=0.5)
    assert [s(e) for e in range(6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_decay():
    s = schedules.CosineDecay(1.0, epochs=10, min_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.55)
    assert s(10) == pytest.approx(0.1)
    assert s(25) == pytest.approx(0.1)
    assert s(2) == pytest.approx(0.1 + 0.45 * (1 + np.cos(np.pi * 0.2)))
    values = [s(e) for e in range(11)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_linear_warmup():
    s = schedules.LinearWarmup(0.1, warmup_epochs=4)
    assert [s(e) for e in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    chained = schedules.LinearWarmup(0.1, 2, after=schedules.StepDecay(0.1, 1, 0.5))
    assert [chained(e) for e in range(5)] == pytest.approx([0.05, 0.1, 0.1, 0.05, 0.025])


@pytest.mark.parametrize(
    "make",
    [
        lambda: schedules.StepDecay(0.1, 0),
        lambda: schedules.CosineDecay(0.1, 0),
        lambda: schedules.LinearWarmup(0.1, 0),
    ],
)
def test_bad_schedules(make):
    with pytest.raises(ConfigError):
        make()


class RecordLR(Callback):
    def __init__(self):
        self.lrs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.lrs.append(self.model.optimizer.lr)


def test_learning_rate_scheduler_sets_optimizer_lr():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    net = lw.NeuralNetwork(3, [(2, "Linear")], seed=0)
    model = lw.Model(net, optimizer=optim.SGD(lr=1.0))
    schedule = schedules.StepDecay(0.2, step_size=1, gamma=0.5)
    rec = RecordLR()
    model.fit(x, y, epochs=4, batch_size=10, callbacks=[LearningRateScheduler(schedule), rec], verbose=0)
    assert rec.lrs == pytest.approx([0.2, 0.1, 0.05, 0.025])
    assert model.optimizer.lr == pytest.approx(0.025)


def test_learning_rate_scheduler_lr_is_used_by_the_update():
    """A schedule's lr really drives the step: equal to a fresh SGD at that lr."""
    x = np.eye(2, dtype=np.float64)
    y = np.array([0, 1])
    a = lw.Model(lw.NeuralNetwork(2, [(2, "Linear")], init="zeros", dtype=np.float64), optimizer=optim.SGD(lr=1.0))
    a.fit(x, y, epochs=1, batch_size=2, shuffle=False, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 0.3)])
    b = lw.Model(lw.NeuralNetwork(2, [(2, "Linear")], init="zeros", dtype=np.float64), optimizer=optim.SGD(lr=0.3))
    b.fit(x, y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    np.testing.assert_array_equal(a.net.flat_params, b.net.flat_params)


@pytest.mark.parametrize("bad", [lambda e: 0.0, lambda e: -1.0, lambda e: float("nan")])
def test_learning_rate_scheduler_rejects_bad_values(bad):
    model = lw.Model(lw.NeuralNetwork(2, [(2, "Linear")], seed=0))
    with pytest.raises(ConfigError):
        model.fit(np.eye(2), np.array([0, 1]), callbacks=[LearningRateScheduler(bad)], verbose=0)


def test_learning_rate_scheduler_records_the_rate_in_history():
    import layerwise as lw

    net = lw.NeuralNetwork(3, [(2, "Linear")], seed=0)
    model = lw.Model(net, optimizer=lw.optim.SGD(lr=0.1))
    schedule = lw.schedules.StepDecay(0.1, step_size=1, gamma=0.5)
    x = np.random.default_rng(0).standard_normal((8, 3))
    history = model.fit(
        x, np.arange(8) % 2, epochs=3, verbose=0, callbacks=[lw.callbacks.LearningRateScheduler(schedule)]
    )
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.05, 0.025])
