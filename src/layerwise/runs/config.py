"""``RunConfig``: everything that determines one training run, validated once.

A run is fully determined by its config (and the data set's files): the same
config gives bit-identical weights (with the same number of BLAS threads, since
the order of floating-point additions in a matrix product depends on it).  The
config is stored in the run folder (``config.json``) and in every checkpoint, and
``--resume`` refuses a checkpoint whose config differs, naming the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError

DATASETS = ("mnist", "fashion-mnist", "digits")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
LOSSES = ("crossEntropyLogit", "mse")
INITS = ("auto", "he", "glorot")


@dataclass(frozen=True)
class RunConfig:
    """The options of ``layerwise train``.

    validation: how many of the last training images are held out to monitor each
    epoch (Keras' ``validation_split`` takes the last fraction the same way); 0 means
    none; None (the default) means 5,000 or a tenth of the training images, whichever
    is fewer.  The test set is evaluated once, after training.
    schedule: ``constant``; ``cosine`` (half a cosine from lr to lr/100 over the
    epochs); ``step`` (lr × 0.1 every third of the epochs).
    loss: ``crossEntropyLogit`` (softmax cross-entropy on the logits) or ``mse`` (the
    squared error between the outputs and the one-hot labels, as in early courses).
    init: ``auto`` (He before a ReLU, Glorot otherwise), ``he`` or ``glorot`` (Keras' default).
    """

    dataset: str = "mnist"
    arch: str = "[(140,ReLU),(10,Linear)]"
    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    limit: int | None = None
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    loss: str = "crossEntropyLogit"
    validation: int | None = None
    init: str = "auto"

    def __post_init__(self) -> None:
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("init", self.init, INITS)
        if not isinstance(self.arch, str) or not self.arch.strip() or len(self.arch) > 10_000:
            raise ConfigError(f"arch: expected an architecture string, got {_short(self.arch)}")
        _check_number("lr", self.lr, minimum=0.0, inclusive=False)
        _check_number("momentum", self.momentum, minimum=0.0, inclusive=True)
        _check_number("weight_decay", self.weight_decay, minimum=0.0, inclusive=True)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, 0)
        if self.validation is not None:
            _check_int("validation", self.validation, 0)
        if self.limit is not None:
            _check_int("limit", self.limit, 1)
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError(f"momentum: only the sgd optimizer takes momentum, got optimizer {self.optimizer!r}")

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> RunConfig:
        """Strict: unknown keys and wrong types are refused, naming the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected an object of run options, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    @classmethod
    def from_json(cls, text: str, where: str = "config.json") -> RunConfig:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, ValueError, RecursionError) as e:  # ValueError: a 5000-digit integer
            raise ConfigError(f"{where}: not valid JSON ({type(e).__name__}: {_short(str(e))})") from None
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "layerwise_version"}
        return cls.from_dict(data, where)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A short stable hash of the config (the id of a sweep trial)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def differences(self, other: RunConfig) -> list[str]:
        """Fields that differ, as ``"lr: 0.001 here, 0.003 there"``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} here, {theirs[k]!r} there" for k in mine if mine[k] != theirs[k]]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {_short(value)}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 2**53:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {_short(value)}")


def _check_number(name: str, value: Any, minimum: float, inclusive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, int):
        ok = abs(value) <= 2**53
    if not ok or not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{name}: expected a finite number {bound}, got {_short(value)}")
