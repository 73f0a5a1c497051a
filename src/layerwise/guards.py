"""Guards against silent mistakes: checks that warn (or refuse) before training goes quietly wrong.

- ``check_input_scale(x, net)`` (once per ``fit`` / ``train_on_batch``): an
  ``InputScaleWarning`` when x looks already scaled to [0, 1] although the network's
  first layer is a ``Rescale`` that scales it again (the network sees 0..0.004), or
  when x looks like raw pixels (whole numbers up to 255 or more) and nothing scales it.
- ``check_linear_stacks(layers)`` (when a ``Sequential`` is built): an
  ``ArchitectureWarning`` when two Dense layers have no nonlinearity between them
  (only ``Linear``, ``Dropout`` or ``Flatten``): together they are one linear layer.
- ``check_output_for_loss(net, loss)`` (once per ``fit`` / ``train_on_batch``): a
  ``ConfigError`` for a ``Softmax`` last layer under the cross-entropy on logits
  (or a ``Sigmoid`` one under the logistic loss): the loss applies it already.

Warnings point at the user's line (the first frame outside layerwise), so Python's
default filter shows each once per place in the user's code.  Silence one kind with
``warnings.filterwarnings("ignore", category=layerwise.guards.InputScaleWarning)``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigError
from .layers import BatchNorm, Dense, Dropout, Flatten, Layer, Linear, Rescale, Sigmoid, Softmax
from .losses import CrossEntropyLogit, Logistic, Loss

__all__ = ["ArchitectureWarning", "InputScaleWarning", "LayerwiseWarning"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: How many samples the input checks look at: enough to tell pixels from scaled data, cheap on any data set.
_SAMPLE = 1024


class LayerwiseWarning(UserWarning):
    """Base class of layerwise's warnings about likely mistakes."""


class InputScaleWarning(LayerwiseWarning):
    """Input that looks scaled twice, or raw pixels that nothing scales."""


class ArchitectureWarning(LayerwiseWarning):
    """A network that is not what it seems, e.g. stacked linear layers (one linear layer in effect)."""


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first caller outside the layerwise package."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _first_real_layer(layers: Sequence[Layer]) -> Layer | None:
    """The first layer that changes values (Flatten only reshapes)."""
    return next((layer for layer in layers if not isinstance(layer, Flatten)), None)


def check_input_scale(x: np.ndarray, net: Any, name: str = "x") -> None:
    """Warn (InputScaleWarning) when x and the network's first layer disagree about scaling; x as the user gave it."""
    sample = x[:_SAMPLE]
    if sample.size == 0:
        return
    low, high = float(sample.min()), float(sample.max())
    first = _first_real_layer(net.layers)
    if isinstance(first, Rescale):
        if x.dtype.kind == "f" and abs(first.scale) < 1 and 0 < high <= 1.0 and low >= -1.0:
            warn(
                f"{name}: values already lie in [{low:.3g}, {high:.3g}], but the network's first layer {first!r} "
                f"scales them again, so it sees values up to {high * abs(first.scale):.2g}; pass the raw pixels "
                "(0..255) or build the network without input_scale/Rescale",
                InputScaleWarning,
            )
        return
    if first is None or isinstance(first, BatchNorm):  # a first layer that normalises copes with any scale
        return
    integral = x.dtype.kind in "iu" or np.array_equal(sample, np.rint(sample))
    if integral and low >= 0 and high >= 2:
        warn(
            f"{name}: values are whole numbers from {low:g} to {high:g}, like raw pixels, and the network does not "
            "scale them (training on unscaled pixels is slow and unstable); divide by 255 or give the network "
            "input_scale=1/255 (a Rescale layer first)",
            InputScaleWarning,
        )


def check_linear_stacks(layers: Sequence[Layer]) -> None:
    """Warn (ArchitectureWarning) for Dense layers with only Linear/Dropout/Flatten between them."""
    transparent = (Linear, Dropout, Flatten)
    previous: int | None = None
    for i, layer in enumerate(layers):
        if isinstance(layer, Dense):
            if previous is not None:
                between = ", ".join(type(b).__name__ for b in layers[previous + 1 : i]) or "nothing"
                warn(
                    f"layers {previous} and {i}: {layers[previous]!r} and {layer!r} have no nonlinearity between "
                    f"them ({between}), so together they are one linear layer; put an activation such as ReLU "
                    "between them, e.g. [(140, ReLU), (10, Linear)]",
                    ArchitectureWarning,
                )
            previous = i
        elif not isinstance(layer, transparent):
            previous = None


def check_output_for_loss(net: Any, loss: Loss) -> None:
    """ConfigError when the last layer applies what the loss applies itself (softmax or sigmoid twice)."""
    last = ends_in(net.layers)
    if isinstance(loss, CrossEntropyLogit) and isinstance(last, Softmax):
        raise ConfigError(
            "loss: crossEntropyLogit applies softmax itself, but the network's last layer is Softmax "
            "(softmax twice trains poorly); make the last layer Linear, e.g. (10, Linear)"
        )
    if isinstance(loss, Logistic) and isinstance(last, Sigmoid):
        raise ConfigError(
            "loss: logistic applies the sigmoid itself, but the network's last layer is Sigmoid; "
            "make the last layer Linear, e.g. (1, Linear)"
        )


def ends_in(layers: Sequence[Layer]) -> Layer | None:
    """The last layer that changes values (Linear, Flatten and Dropout are looked through)."""
    return next((layer for layer in reversed(layers) if not isinstance(layer, (Linear, Flatten, Dropout))), None)
