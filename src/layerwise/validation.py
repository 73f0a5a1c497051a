"""Checks at the public boundary: run once per call, never per batch.

Each raises an error from ``layerwise.errors`` whose message names the
argument, what was expected and what was given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigError, DTypeError, InputError, LabelError, ShapeError
from .losses import CrossEntropyLogit, Logistic, Loss


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _as_array(value: Any, name: str, expected: str) -> np.ndarray:
    """np.asarray, turning NumPy's error for ragged nested lists into a ShapeError."""
    try:
        return np.asarray(value)
    except ValueError as e:  # "setting an array element with a sequence ... inhomogeneous shape"
        raise ShapeError(f"{name}: expected {expected}, got a ragged nested sequence ({e})") from None


#: all_finite checks this many numbers at a time: the temporary mask stays in the core's cache.
_FINITE_CHUNK = 1 << 18


def all_finite(x: np.ndarray) -> bool:
    """np.isfinite(x).all() without a mask as large as x.

    For a whole data set (MNIST: 47 million numbers) that mask is a fresh 47 MB allocation,
    and faulting its pages in made the check 5-8x slower (143 ms against 18 ms, measured).
    """
    if x.ndim == 0 or x.size <= _FINITE_CHUNK:
        return bool(np.isfinite(x).all())
    step = max(1, _FINITE_CHUNK // (x.size // len(x)))  # whole samples (rows of the first axis) per chunk
    return all(np.isfinite(x[lo : lo + step]).all() for lo in range(0, len(x), step))


def check_features(x: Any, input_shape: int | tuple[int, ...] | None, name: str = "x") -> np.ndarray:
    """x: (n, *input_shape); for a flat ``input_shape`` (n_features,) also (n, *dims) with prod(dims) == n_features.

    An image network with input_shape (1, 28, 28) also takes (n, 28, 28): dimensions
    of size 1 may be left out.  Reshaping never copies.  Numeric dtypes only; floats
    must be finite.  Returns an ndarray of shape (n, *input_shape).
    """
    shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else input_shape
    shape = None if shape is None else tuple(int(d) for d in shape)
    flat = shape is not None and len(shape) == 1
    shown = "n_samples" if shape is None else "(n_samples, " + ", ".join(map(str, shape)) + ")"
    if isinstance(x, (str, bytes)) or x is None:
        raise DTypeError(f"{name}: expected a numeric array of shape {shown}, got {type(x).__name__}")
    x = _as_array(x, name, f"a numeric array of shape {shown}")
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DTypeError(f"{name}: expected a numeric (integer or float) array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ShapeError(
            f"{name}: expected a {'2-D ' if flat else ''}array of shape {shown}, got shape {x.shape}"
            + (" (a single sample? use x[None, :])" if x.ndim == 1 else "")
        )
    if x.shape[0] == 0:
        raise InputError(f"{name}: expected at least one sample, got an empty array of shape {x.shape}")
    if shape is None:
        pass
    elif flat:
        if x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        if x.shape[1] != shape[0]:
            raise ShapeError(f"{name}: expected {shape[0]} features per sample, got shape {x.shape}")
    elif x.shape[1:] != shape:
        if [d for d in x.shape[1:] if d != 1] != [d for d in shape if d != 1]:
            raise ShapeError(f"{name}: expected samples of shape {shape}, i.e. x of shape {shown}, got {x.shape}")
        x = x.reshape(x.shape[0], *shape)
    if np.issubdtype(x.dtype, np.floating) and not all_finite(x):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"{name}: expected finite values, got {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return x


def check_targets(y: Any, n_samples: int, n_outputs: int, loss: Loss, name: str = "y") -> np.ndarray:
    """Targets for ``loss``; cross-entropy one-hot rows become integer labels (n,).

    CrossEntropyLogit: labels (n,) in [0, n_outputs) or one-hot (n, n_outputs).
    Logistic: (n,) or (n, 1) in [0, 1].  MSE: (n, n_outputs) (or (n,) when n_outputs == 1).
    """
    if isinstance(y, (str, bytes)) or y is None:
        raise DTypeError(f"{name}: expected a numeric array of {n_samples} targets, got {type(y).__name__}")
    y = _as_array(y, name, f"a numeric array of {n_samples} targets")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DTypeError(f"{name}: expected numeric targets, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n_samples:
        raise ShapeError(f"{name}: expected {n_samples} targets (one per sample of x), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise InputError(f"{name}: expected finite values, got NaN or inf")
    if isinstance(loss, CrossEntropyLogit):
        return _class_labels(y, n_outputs, name)
    if isinstance(loss, Logistic):
        if n_outputs != 1:
            raise ShapeError(
                f"loss: the logistic loss needs a network with 1 output, this one has {n_outputs} "
                "(use crossEntropyLogit for several classes)"
            )
        if y.size != n_samples:
            raise ShapeError(f"{name}: expected shape ({n_samples},) or ({n_samples}, 1), got {y.shape}")
        if y.min() < 0 or y.max() > 1:
            raise LabelError(
                f"{name}: expected targets in [0, 1] for the logistic loss, got range [{y.min()}, {y.max()}]"
            )
        return y.reshape(n_samples, 1)
    if y.ndim == 1 and n_outputs == 1:
        y = y[:, None]
    elif y.ndim == 1 and n_outputs > 1 and np.issubdtype(y.dtype, np.integer):
        # (n,) integer targets for several outputs can only be class labels: compare with their one-hot rows
        labels = _class_labels(y, n_outputs, name)
        y = np.zeros((n_samples, n_outputs), dtype=np.float32)  # 0 and 1 are exact: no upcast of a float32 net
        y[np.arange(n_samples), labels] = 1.0
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ShapeError(f"{name}: expected shape ({n_samples}, {n_outputs}), got {y.shape}")
    return y


def _class_labels(y: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    if y.ndim == 2:
        if y.shape[1] != n_classes:
            raise ShapeError(f"{name}: one-hot rows must have {n_classes} columns, got shape {y.shape}")
        ones, zeros = (y == 1), (y == 0)
        bad = np.flatnonzero((ones.sum(axis=1) != 1) | ((ones | zeros).sum(axis=1) != n_classes))
        if bad.size:
            raise LabelError(
                f"{name}: expected one-hot rows (a single 1, the rest 0), row {bad[0]} is {y[bad[0]].tolist()}"
            )
        return ones.argmax(axis=1)
    if y.ndim != 1:
        raise ShapeError(f"{name}: expected labels of shape (n,) or one-hot (n, {n_classes}), got {y.shape}")
    if np.issubdtype(y.dtype, np.floating) and not np.array_equal(y, np.round(y)):
        raise LabelError(
            f"{name}: expected integer class labels, got non-integer values such as {y[y != np.round(y)][0]}"
        )
    low, high = y.min(), y.max()
    if low < 0 or high >= n_classes:
        culprit = low if low < 0 else high
        raise LabelError(
            f"{name}: expected labels in [0, {n_classes - 1}] (the network has {n_classes} outputs), got {culprit}"
        )
    return y.astype(np.intp, copy=False)


def train_state_problem(state: Any) -> str | None:
    """What is wrong with a ``Model.train_state`` (from a checkpoint), or None if it can resume.

    Expected: {"epoch": int >= 0, "step": int >= 0, "rng_state": PCG64 state dict,
    "totals": {"loss", "correct", "seen", "seconds": numbers}, "history": {name: [numbers]}?}.
    """
    if not isinstance(state, dict):
        return f"expected a dict, got {type(state).__name__}"
    for key in ("epoch", "step"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key!r} must be an integer >= 0, got {value!r}"
    totals = state.get("totals")
    if not isinstance(totals, dict) or set(totals) != {"loss", "correct", "seen", "seconds"}:
        return f"'totals' must hold loss, correct, seen and seconds, got {totals!r}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in totals.values()):
        return f"'totals' must hold numbers, got {totals!r}"
    history = state.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(v, list) and all(isinstance(e, (int, float)) for e in v) for v in history.values()
    ):
        return "'history' must map metric names to lists of numbers"
    for key in ("rng_state", "noise_rng_state"):
        if key == "noise_rng_state" and key not in state:  # written from version 0.2 on
            continue
        try:
            np.random.default_rng().bit_generator.state = state.get(key)
        except (TypeError, ValueError, KeyError, OverflowError) as e:  # OverflowError: -1 for a uint64
            return f"{key!r} is not a PCG64 state ({e})"
    return None


# -- weights --------------------------------------------------------------------------------
def check_sample_weight(sample_weight: Any, n_samples: int, name: str = "sample_weight") -> np.ndarray | None:
    """None, or (n_samples,) float64 weights: finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, bytes)):
        raise DTypeError(f"{name}: expected {n_samples} numeric weights, got {type(sample_weight).__name__}")
    w = _as_array(sample_weight, name, f"{n_samples} numeric weights")
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise DTypeError(f"{name}: expected numeric weights, got dtype {w.dtype}")
    if w.shape not in ((n_samples,), (n_samples, 1)):
        raise ShapeError(f"{name}: expected shape ({n_samples},) (one weight per sample), got {w.shape}")
    w = w.reshape(n_samples).astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise InputError(f"{name}: expected finite weights >= 0, got {w[bad]} at index {bad}")
    if not w.any():
        raise InputError(f"{name}: every weight is zero, so there is nothing to learn from")
    return w


def class_weights(class_weight: Any, y: np.ndarray, n_outputs: int, loss: Loss) -> np.ndarray | None:
    """Per-sample weights (n,) from ``{class: weight}`` for checked targets y; classes left out weigh 1."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise ConfigError(f"class_weight: expected a dict {{class: weight}}, got {type(class_weight).__name__}")
    if isinstance(loss, CrossEntropyLogit):
        n_classes, labels = n_outputs, y
    elif isinstance(loss, Logistic):
        if not np.isin(y, (0, 1)).all():
            raise ConfigError("class_weight: the logistic loss's targets must be 0 or 1 to have classes")
        n_classes, labels = 2, y.reshape(-1).astype(np.intp)
    else:
        raise ConfigError(f"class_weight: needs a classification loss, not {type(loss).__name__} (use sample_weight)")
    table = np.ones(n_classes)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_classes:
            raise ConfigError(f"class_weight: keys must be class labels 0..{n_classes - 1}, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"class_weight[{key}]: expected a number, got {value!r}")
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"class_weight[{key}]: expected a finite weight >= 0, got {value!r}")
        table[int(key)] = float(value)
    w = table[labels]
    if not w.any():
        raise ConfigError("class_weight: every sample's class weighs 0, so there is nothing to learn from")
    return w


def combined_weights(
    sample_weight: Any, class_weight: Any, y: np.ndarray, n_outputs: int, loss: Loss
) -> np.ndarray | None:
    """sample_weight × class_weight[y] (Keras multiplies them), or None when neither is given."""
    from .losses import takes_sample_weight

    w = check_sample_weight(sample_weight, len(y))
    c = class_weights(class_weight, y, n_outputs, loss)
    if w is None and c is None:
        return None
    if not takes_sample_weight(loss):
        raise ConfigError(f"loss: {type(loss).__name__}.forward takes no sample_weight, so it cannot weigh samples")
    w = c if w is None else w if c is None else w * c
    if not w.any():
        raise InputError("sample_weight × class_weight: every weight is zero, so there is nothing to learn from")
    return w
