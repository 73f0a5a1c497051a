"""Training callbacks and the ``History`` that ``Model.fit`` returns, as in Keras.

A callback overrides any of the ``on_*`` hooks; ``self.model`` is the Model
being trained.  Setting ``model.stop_training = True`` ends training after the
current epoch.
"""

from __future__ import annotations

import math
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


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
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
        if patience < 0:
            raise ConfigError(f"patience: expected an integer >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.mode = _monitor_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
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
    """Set ``optimizer.lr = schedule(epoch)`` at the start of every epoch (see ``layerwise.schedules``)."""

    def __init__(self, schedule: Schedule) -> None:
        if not callable(schedule):
            raise ConfigError(f"schedule: expected a callable epoch -> lr, got {schedule!r}")
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        lr = float(self.schedule(epoch))
        if not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"schedule({epoch}) returned {lr!r}; expected a positive learning rate")
        self.model.optimizer.lr = lr

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # History has already taken this epoch's logs, so record the rate in it directly.
        self.model.history.history.setdefault("lr", []).append(self.model.optimizer.lr)


class ModelCheckpoint(Callback):
    """Save the model after each epoch to ``filepath`` (may contain ``{epoch}`` and metric names).

    With ``save_best_only=True`` only when ``monitor`` improves.  Writes are atomic.
    """

    def __init__(
        self,
        filepath: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        self.filepath = str(filepath)
        self.monitor, self.save_best_only = monitor, save_best_only
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
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs))
