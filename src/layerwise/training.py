"""What ``Model.fit`` does around its loop: the validation split, sample weights, batch callbacks, the progress bar.

``validation_split=f`` takes the *last* fraction f of x and y (and sample weights)
as validation data before any shuffling, exactly as Keras does: the first
``int(n · (1 − f))`` samples train, the rest are only evaluated.  Shuffle your
data first if its order means something (e.g. sorted by class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .callbacks import Callback
from .errors import ConfigError
from .validation import check_sample_weight, combined_weights

if TYPE_CHECKING:
    from .model import Model


@dataclass
class FitData:
    """Checked training arrays, per-sample weights (or None), and the validation set (or None)."""

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    validation: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None
    validation_name: str


def split_point(validation_split: Any, n: int) -> int | None:
    """Where Keras cuts n samples for ``validation_split`` (None when it is 0): int(n · (1 − split))."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.integer, np.floating)):
        raise ConfigError(f"validation_split: expected a fraction in [0, 1), got {validation_split!r}")
    if validation_split == 0:
        return None
    if not 0 < validation_split < 1:
        raise ConfigError(f"validation_split: expected a fraction in [0, 1), got {validation_split!r}")
    split_at = int(n * (1.0 - float(validation_split)))
    if split_at < 1 or split_at >= n:
        raise ConfigError(
            f"validation_split: {validation_split} of {n} samples leaves "
            f"{'no training' if split_at < 1 else 'no validation'} samples; use more data or another fraction"
        )
    return split_at


def prepare(
    model: Model,
    x: Any,
    y: Any,
    validation_data: Any,
    validation_split: Any,
    sample_weight: Any,
    class_weight: Any,
) -> FitData:
    """Check fit's data arguments once; split off the validation set; per-sample weights from both kinds."""
    x, y = model._check_xy(x, y)
    weights = combined_weights(sample_weight, class_weight, y, model.net.n_outputs, model.loss)
    split_at = split_point(validation_split, len(x))
    if split_at is not None:
        if validation_data is not None:
            raise ConfigError("validation_split: give either validation_data or validation_split, not both")
        val_w = None if weights is None else weights[split_at:]
        validation = (x[split_at:], y[split_at:], val_w)
        x, y = x[:split_at], y[:split_at]
        weights = None if weights is None else weights[:split_at]
        return FitData(x, y, weights, validation, f"x[{split_at}:] (validation_split)")
    if validation_data is None:
        return FitData(x, y, weights, None, "")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ConfigError("validation_data: expected a pair (x_val, y_val) or a triple (x_val, y_val, sample_weight)")
    xv, yv = model._check_xy(*validation_data[:2], names=("validation_data[0]", "validation_data[1]"))
    wv = None
    if len(validation_data) == 3:
        wv = check_sample_weight(validation_data[2], len(xv), "validation_data[2]")
    return FitData(x, y, weights, (xv, yv, wv), "validation_data[0]")


def batch_callbacks(callbacks: list[Callback]) -> list[Callback]:
    """The callbacks that override a per-batch hook: only they are called in the batch loop."""
    return [
        cb
        for cb in callbacks
        if type(cb).on_train_batch_begin is not Callback.on_train_batch_begin
        or type(cb).on_train_batch_end is not Callback.on_train_batch_end
    ]


def batch_logs(size: int, loss: float, correct: float) -> dict[str, float]:
    """The logs ``on_train_batch_end`` gets: this batch's size, loss and accuracy (before its update)."""
    logs: dict[str, float] = {"size": size, "loss": loss}
    if not math.isnan(correct):
        logs["accuracy"] = correct / size
    return logs


def progress_bar(total: int, epoch: int, epochs: int, initial: int) -> Any:
    """A tqdm bar counting samples (so it shows samples/s), or None without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but the core does not need it
        return None
    return tqdm(
        total=total,
        initial=initial,
        unit="samples",
        unit_scale=True,
        desc=f"Epoch {epoch + 1}/{epochs}",
        leave=True,
        dynamic_ncols=True,
    )


def show_epoch(bar: Any, logs: dict[str, float]) -> None:
    """Put the epoch's final metrics (validation included) on its bar's line, then close the bar."""
    shown = {"loss": "loss", "accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}
    bar.set_postfix({short: f"{logs[key]:.4f}" for key, short in shown.items() if key in logs}, refresh=False)
    bar.close()
