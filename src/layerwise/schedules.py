"""Learning-rate schedules: ``schedule(epoch) -> lr`` with epochs counted from 0.

Give one to ``callbacks.LearningRateScheduler``, which sets ``optimizer.lr``
before each epoch.  Any plain function of the epoch works as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import ConfigError

Schedule = Callable[[int], float]


class StepDecay:
    """lr · gamma^(epoch // step_size): multiply by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ConfigError(f"step_size: expected a positive integer, got {step_size!r}")
        self.lr, self.step_size, self.gamma = lr, step_size, gamma

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** (epoch // self.step_size)


class CosineDecay:
    """Half a cosine from ``lr`` at epoch 0 down to ``min_lr`` at epoch ``epochs`` (then flat)."""

    def __init__(self, lr: float, epochs: int, min_lr: float = 0.0) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs: expected a positive integer, got {epochs!r}")
        self.lr, self.epochs, self.min_lr = lr, epochs, min_lr

    def __call__(self, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


class LinearWarmup:
    """Rise linearly to ``lr`` over ``warmup_epochs``, then follow ``after`` (shifted), or stay at lr."""

    def __init__(self, lr: float, warmup_epochs: int, after: Schedule | None = None) -> None:
        if warmup_epochs < 1:
            raise ConfigError(f"warmup_epochs: expected a positive integer, got {warmup_epochs!r}")
        self.lr, self.warmup_epochs, self.after = lr, warmup_epochs, after

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / self.warmup_epochs
        return self.after(epoch - self.warmup_epochs) if self.after else self.lr
