"""Training callbacks and the ``History`` that ``Model.fit`` returns, as in Keras.

A callback overrides any of the ``on_*`` hooks; ``self.model`` is the Model
being trained.  Setting ``model.stop_training = True`` ends training after the
current epoch.

Hooks and their logs: ``on_train_batch_begin(batch, logs)`` with ``{"size": n}``
and ``on_train_batch_end(batch, logs)`` with ``{"size", "loss", "accuracy"}`` of
that batch (before its update; batch counts from 0 in each epoch) are called once
per batch, and only for callbacks that override them, so other callbacks cost
nothing per batch.  ``on_epoch_end(epoch, logs)`` gets the epoch's ``LOG_KEYS``.
"""

from __future__ import annotations

import inspect
import math
import os
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .schedules import Schedule

if TYPE_CHECKING:
    from .model import Model


class Callback:
    model: Model

    def set_model(self, model: Model) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...


class History(Callback):
    """``history.history["loss"]`` etc.: one value per epoch; ``history.epoch``: epoch numbers."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


#: What ``Model.fit`` logs at the end of an epoch (the val_ ones only with validation_data).
LOG_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def check_callbacks(callbacks: Any) -> list[Callback]:
    """``fit``'s ``callbacks`` argument as a list: None or an iterable of Callback objects."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        raise ConfigError(f"callbacks: expected a list of callbacks, got one {type(callbacks).__name__}; pass [it]")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise ConfigError(f"callbacks: expected a list of Callback objects, got {type(callbacks).__name__}")
    result = list(callbacks)
    for i, cb in enumerate(result):
        if not isinstance(cb, Callback):
            raise ConfigError(
                f"callbacks[{i}]: expected a layerwise.callbacks.Callback (EarlyStopping, ModelCheckpoint...), "
                f"got {type(cb).__name__}"
            )
    return result


def _check_monitor(owner: str, monitor: Any) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise ConfigError(f"{owner}: monitor must be the name of a logged metric such as 'val_loss', got {monitor!r}")
    return monitor


def _check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def _monitor_mode(monitor: str, mode: str) -> str:
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the model ends with the weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        monitor = _check_monitor("EarlyStopping", monitor)
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ConfigError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if (
            isinstance(min_delta, bool)
            or not isinstance(min_delta, (int, float, np.integer, np.floating))
            or not math.isfinite(min_delta)
        ):
            raise ConfigError(f"EarlyStopping: min_delta must be a finite number, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.mode = _monitor_mode(monitor, mode)
        self.restore_best_weights = _check_bool("EarlyStopping", "restore_best_weights", restore_best_weights)
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_weights: np.ndarray | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigError(f"EarlyStopping: monitor {self.monitor!r} is not among the logged metrics {sorted(logs)}")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.net.flat_params.copy()
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras: stop after `patience` epochs without improvement
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.net.flat_params[...] = self.best_weights


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr`` at the start of every epoch from ``schedule(epoch)`` or ``schedule(epoch, lr)``.

    ``schedule(epoch)``: the schedules of ``layerwise.schedules`` and any function of
    the epoch (counted from 0).  ``schedule(epoch, lr)``: Keras' form, given the
    current learning rate, e.g. ``lambda epoch, lr: lr if epoch < 10 else lr * 0.9``.
    Which one is told from the signature: a callable that can take two positional
    arguments gets two.
    """

    def __init__(self, schedule: Schedule | Callable[[int, float], float]) -> None:
        if not callable(schedule):
            raise ConfigError(f"schedule: expected a callable epoch -> lr, got {schedule!r}")
        self.schedule = schedule
        self.takes_lr = _schedule_arity(schedule) == 2

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = self.schedule(epoch, self.model.optimizer.lr) if self.takes_lr else self.schedule(epoch)
        try:
            lr = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"schedule({epoch}) returned {value!r}; expected a positive learning rate") from None
        if not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"schedule({epoch}) returned {lr!r}; expected a positive learning rate")
        self.model.optimizer.lr = lr

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # History has already taken this epoch's logs, so record the rate in it directly.
        self.model.history.history.setdefault("lr", []).append(self.model.optimizer.lr)


def _schedule_arity(schedule: Callable[..., Any]) -> int:
    """2 for Keras' ``schedule(epoch, lr)``, 1 for ``schedule(epoch)``; ConfigError for anything else."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):  # some builtins have no signature: assume schedule(epoch)
        return 1
    for arity, args in ((2, (0, 0.1)), (1, (0,))):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return arity
    raise ConfigError(
        f"schedule: expected a function schedule(epoch) or schedule(epoch, lr) returning the learning rate, "
        f"got {getattr(schedule, '__name__', type(schedule).__name__)}{signature}"
    )


class ModelCheckpoint(Callback):
    """Save the model after each epoch to ``filepath`` (may contain ``{epoch}`` and metric names).

    ``filepath`` is a ``str.format`` template over ``epoch`` (1-based) and the logged
    metrics (``LOG_KEYS``), e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``; it is
    checked here, not after the first epoch.  With ``save_best_only=True`` only when
    ``monitor`` improves.  Writes are atomic.
    """

    def __init__(
        self,
        filepath: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        if not isinstance(filepath, (str, os.PathLike)):
            raise ConfigError(f"ModelCheckpoint: filepath must be a path, got {type(filepath).__name__}")
        self.filepath = _check_template(os.fspath(filepath))
        self.monitor = _check_monitor("ModelCheckpoint", monitor)
        self.save_best_only = _check_bool("ModelCheckpoint", "save_best_only", save_best_only)
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise ConfigError(
                    f"ModelCheckpoint: monitor {self.monitor!r} is not among the logged metrics {sorted(logs)}"
                )
            value = logs[self.monitor]
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise ConfigError(
                f"ModelCheckpoint: filepath {self.filepath!r} uses {e.args[0]!r}, which this fit does not log "
                f"(it logs {', '.join(sorted(logs))}; val_ metrics need validation_data)"
            ) from None
        self.model.save(path)


def _check_template(filepath: str) -> str:
    """``filepath`` if it formats with ``epoch`` and the metrics of LOG_KEYS, else ConfigError naming the key."""
    known = ("epoch", *LOG_KEYS)
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(filepath) if field is not None]
    except ValueError as e:
        raise ConfigError(
            f"ModelCheckpoint: filepath {filepath!r} is not a valid template ({e}); write {{{{ and }}}} for braces"
        ) from None
    for field in fields:
        key = field.split(".")[0].split("[")[0]
        if key not in known:
            raise ConfigError(
                f"ModelCheckpoint: filepath {filepath!r} uses {{{field}}}; known keys: {', '.join(known)}"
            )
    try:
        filepath.format(epoch=1, **dict.fromkeys(LOG_KEYS, 0.5))
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ConfigError(f"ModelCheckpoint: filepath {filepath!r} cannot be formatted ({e})") from None
    return filepath
