"""``gradient_descent(...)``: the worked solution of a small gradient-descent problem (the seed's Problem 3).

The numbers come from a real, recorded run of ``Model.fit`` (see ``record.py``); this
module checks the inputs, builds the float64 network and its ``Model``, and hands the
records to ``SheetWriter`` (``steps.py``), which lays them out as equations.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, LabelError, ShapeError
from ..layers import Dense
from ..losses import CrossEntropyLogit, Loss, get_loss
from ..model import Model
from ..network import NeuralNetwork
from ..optim import SGD, Adam, Optimizer
from ..validation import check_positive_int, check_targets
from .record import max_difference, record_training, train_plain
from .steps import SheetWriter
from .worksheet import Worksheet, check_digits

LAYOUTS = ("seed", "rows")
OPTIMIZERS = ("sgd", "momentum", "adam")
INITS = ("zeros", "he", "xavier", "uniform")
MAX_STEPS = 1000
#: The sheet's check: an independent Model.fit must end this close to the recorded run.
TOLERANCE = 1e-12
PROBLEM3 = np.eye(2)


def gradient_descent(
    arch: str | Sequence[tuple[int, Any]] = "[(2,Linear)]",
    x: Any = None,
    y: Any = None,
    *,
    init: str = "zeros",
    W: Sequence[Any] | None = None,
    b: Sequence[Any] | None = None,
    loss: str | Loss = "crossEntropyLogit",
    optimizer: str = "sgd",
    lr: float = 1.0,
    momentum: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    steps: int = 2,
    batch_size: int | None = None,
    layout: str = "seed",
    digits: int = 4,
    seed: int = 0,
    title: str | None = None,
) -> Worksheet:
    """Train a small float64 network for ``steps`` steps and write every step out as equations.

    arch: the seed's notation, ``"[(2,ReLU),(2,Linear)]"``, or a list of (units, activation).
    x, y: the data *in the sheet's layout*: with ``layout="seed"`` (the default) columns are
        samples, x: (inputs, m), y: (outputs, m); with ``layout="rows"`` (layerwise's own)
        x: (m, inputs), y: (m, outputs).  A 1-D array is one row.  For crossEntropyLogit, y is
        one-hot, or one row (seed) / column (rows) of integer labels.  Both left out: the seed's
        Problem 3, X = Y = I₂.
    init: ``zeros`` (default, as in Problem 3), ``he``, ``xavier`` or ``uniform`` (seeded by ``seed``);
        W, b: explicit initial values, one per Dense layer, in the sheet's layout (W: (out, in)
        in the seed's, (in, out) in rows); they override ``init``.
    loss: ``crossEntropyLogit``, ``logistic`` or ``mse``.
    optimizer: ``sgd`` (momentum 0 unless ``momentum`` is given), ``momentum`` (SGD with
        ``momentum``, default 0.9, torch's form v = μv + g) or ``adam`` (``betas``, ``eps``).
    batch_size: samples per step (default: all of them); the batches go through the data
        in order, the last one smaller when batch_size does not divide m.
    digits: decimals printed (values that would round to 0 are printed as a × 10^k).
    Returns a ``Worksheet``; ``.to_markdown()``, ``.to_latex()``, ``.to_text()`` render it.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    digits = check_digits(digits)
    steps = check_positive_int("steps", steps)
    if steps > MAX_STEPS:
        raise ConfigError(f"steps: at most {MAX_STEPS} fit on a worksheet, got {steps}")
    problem3 = x is None and y is None
    if problem3:
        x, y = PROBLEM3, PROBLEM3
    elif x is None or y is None:
        raise ConfigError(f"{'x' if x is None else 'y'}: give both x and y (or neither, for the homework's Problem 3)")
    loss_obj = get_loss(loss)
    x_rows = _rows("x", x, layout)
    n, n_in = x_rows.shape
    make_net = _network_factory(arch, n_in, init, W, b, layout, seed)
    net = make_net()
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    n_out = dense[-1].units
    y_rows = _targets(y, n, n_out, loss_obj, layout)
    batch_size = n if batch_size is None else check_positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ConfigError(f"batch_size: expected at most the number of samples, {n}, got {batch_size}")
    make_optimizer, optimizer_info = _optimizer_factory(optimizer, lr, momentum, betas, eps)

    def make_model() -> Model:
        return Model(make_net(), loss=copy.deepcopy(loss_obj), optimizer=make_optimizer(), seed=seed)

    records, model = record_training(make_model, x_rows, y_rows, steps, batch_size)
    if len(records) != steps:  # pragma: no cover - fit_steps runs exactly `steps` steps
        raise RuntimeError(f"recorded {len(records)} steps, expected {steps}")
    plain = train_plain(make_model, x_rows, y_rows, steps, batch_size)
    difference = max_difference(model.net, plain.net)
    writer = SheetWriter(
        net=model.net,
        loss=loss_obj,
        optimizer=optimizer_info,
        records=records,
        x=x_rows,
        y=y_rows,
        batch_size=batch_size,
        layout=layout,
        digits=digits,
        arch=arch,
        init=f"{'W as given' if W is not None else init}, {'b as given' if b is not None else 'b = 0'}",
        problem3=problem3,
    )
    sheet = writer.write(title)
    writer.verification(sheet, difference, TOLERANCE, steps)
    return sheet


def _matrix(name: str, value: Any) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name}: expected a numeric matrix, got {value!r} ({e})") from None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.size == 0:
        raise ShapeError(f"{name}: expected a non-empty matrix (2-D), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ShapeError(f"{name}: expected finite numbers, got NaN or inf")
    return a


def _rows(name: str, value: Any, layout: str) -> np.ndarray:
    """A matrix in the sheet's layout -> layerwise's (samples, features)."""
    a = _matrix(name, value)
    return np.ascontiguousarray(a.T if layout == "seed" else a)


def _targets(y: Any, n: int, n_out: int, loss: Loss, layout: str) -> np.ndarray:
    """Targets as (n, n_out) rows, for Model.fit and for the sheet alike; labels become one-hot rows."""
    rows = _rows("y", y, layout)
    if isinstance(loss, CrossEntropyLogit) and n_out > 1 and rows.shape == (n, 1):
        labels = rows[:, 0]
        if not np.array_equal(labels, np.round(labels)) or labels.min() < 0 or labels.max() >= n_out:
            raise LabelError(f"y: expected class labels 0 to {n_out - 1} (or one-hot), got {labels.tolist()}")
        rows = np.eye(n_out)[labels.astype(np.intp)]
    if rows.shape[0] != n:
        where, shape = ("columns", rows.T.shape) if layout == "seed" else ("rows", rows.shape)
        raise ShapeError(f"y: expected {n} samples ({where}, as x has), got shape {shape}")
    check_targets(rows, n, n_out, loss, "y")  # one-hot rows, [0, 1] for logistic, n_out outputs
    return rows


def _network_factory(
    arch: Any, n_in: int, init: str, W: Sequence[Any] | None, b: Sequence[Any] | None, layout: str, seed: int
) -> Callable[[], NeuralNetwork]:
    """A function that builds the same float64 network, with the same initial weights, on every call."""
    if not isinstance(init, str) or init.lower() not in INITS:
        raise ConfigError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    net = NeuralNetwork(n_in, arch, init=init.lower(), seed=seed, dtype=np.float64)
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    for name, given in (("W", W), ("b", b)):
        if given is not None and (isinstance(given, (str, np.ndarray)) or len(given) != len(dense)):
            count = "a single array" if isinstance(given, (str, np.ndarray)) else f"{len(given)}"
            raise ShapeError(f"{name}: expected one matrix per layer ({len(dense)} for {arch!r}), got {count}")
    for k, layer in enumerate(dense):
        if W is not None:
            w = _matrix(f"W[{k + 1}]", W[k])
            w = w.T if layout == "seed" else w
            if w.shape != layer.W.shape:
                expected = layer.W.shape[::-1] if layout == "seed" else layer.W.shape
                order = "outputs × inputs" if layout == "seed" else "inputs × outputs"
                raise ShapeError(
                    f"W[{k + 1}]: expected shape {expected} ({order}) for layer {k + 1} of {arch!r} "
                    f"with {n_in} inputs, got {(w.T if layout == 'seed' else w).shape}"
                )
            layer.W = w
        if b is not None:
            v = np.array(b[k], dtype=np.float64).reshape(-1)
            if v.size != layer.units or not np.isfinite(v).all():
                raise ShapeError(f"b[{k + 1}]: expected {layer.units} finite numbers for layer {k + 1}, got {b[k]!r}")
            layer.b = v
    state = net.state_dict()

    def make() -> NeuralNetwork:
        fresh = NeuralNetwork(n_in, arch, init="zeros", seed=seed, dtype=np.float64)
        fresh.load_state_dict(state)
        return fresh

    return make


def _optimizer_factory(
    name: str, lr: float, momentum: float | None, betas: tuple[float, float], eps: float
) -> tuple[Callable[[], Optimizer], dict[str, Any]]:
    """A function making fresh, identical optimizers, and what the sheet says about them."""
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ConfigError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")
    if key == "adam":
        if momentum is not None:
            raise ConfigError("momentum: only for the sgd and momentum optimizers (Adam has betas)")
        Adam(lr, betas=betas, eps=eps)  # checks the numbers once, with Adam's own messages
        return lambda: Adam(lr, betas=betas, eps=eps), {"name": "adam", "lr": lr, "betas": betas, "eps": eps}
    mu = (0.9 if key == "momentum" else 0.0) if momentum is None else momentum
    SGD(lr, momentum=mu)
    if key == "momentum" and mu == 0:
        raise ConfigError("momentum: expected a value in (0, 1) for the momentum optimizer, got 0")
    return lambda: SGD(lr, momentum=mu), {"name": "sgd", "lr": lr, "momentum": mu}
