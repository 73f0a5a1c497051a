"""The inference half of ``Model``: ``evaluate``, ``predict``, ``predict_proba``, ``predict_logits``.

All run the network in inference mode, batch by batch, and never return a NaN or
inf result: a non-finite output raises NonFiniteError naming the first sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import NonFiniteError
from .guards import ends_in
from .layers import Softmax
from .losses import CrossEntropyLogit, Logistic, softmax
from .validation import check_features, check_positive_int, combined_weights


def result(loss: float, accuracy: float, as_dict: bool) -> tuple[float, float] | dict[str, float]:
    """(loss, accuracy), or Keras' ``{"loss", "accuracy"}`` (no accuracy where it is NaN: regression)."""
    if not as_dict:
        return float(loss), float(accuracy)
    return {"loss": float(loss)} | ({} if math.isnan(accuracy) else {"accuracy": float(accuracy)})


class Inference:
    """Mixed into ``Model``: needs ``self.net``, ``self.loss``, ``self._check_xy`` and ``self._as_input``."""

    net: Any
    loss: Any

    def evaluate(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int | None = None,
        sample_weight: np.ndarray | None = None,
        return_dict: bool = False,
        _checked: bool = False,
        _name: str = "x",
    ) -> tuple[float, float] | dict[str, float]:
        """(mean loss, accuracy) over x, y; accuracy is NaN where it means nothing (regression).

        sample_weight: (n,) weights >= 0: the loss is then Σ wᵢℓᵢ / Σ wᵢ (accuracy stays
        unweighted).  return_dict=True: ``{"loss": ..., "accuracy": ...}`` (no accuracy
        key for regression), as Keras.  Raises NonFiniteError (naming the first sample)
        when the network's outputs are NaN or inf.
        """
        name = _name
        if not _checked:
            x, y = self._check_xy(x, y)
            sample_weight = combined_weights(sample_weight, None, y, self.net.n_outputs, self.loss)
        batch_size = self._inference_batch(batch_size)
        total_loss, total_weight, correct = 0.0, 0.0, 0.0
        for lo in range(0, len(x), batch_size):
            z = self._forward(x[lo : lo + batch_size], lo, name)
            yb = y[lo : lo + batch_size]
            if sample_weight is None:
                total_loss += self.loss.forward(z, yb) * len(yb)
                total_weight += len(yb)
            else:  # each batch's weighted mean, weighted by its total weight: Σ wℓ / Σ w over all of x
                wb = sample_weight[lo : lo + batch_size]
                if wb.any():
                    total_loss += self.loss.forward(z, yb, sample_weight=wb) * float(wb.sum())
                    total_weight += float(wb.sum())
            correct += self.loss.correct(z, yb)
        return result(total_loss / total_weight, correct / len(x), return_dict)

    def _inference_batch(self, batch_size: int | None) -> int:
        """None: 4096 samples for flat inputs, 256 images for image networks, whose patch matrices grow with the
        batch (conv2 of the Keras convnet alone takes 571 MB at 4096 images)."""
        if batch_size is None:
            return 256 if self.net.input_shape is not None and len(self.net.input_shape) > 1 else 4096
        return check_positive_int("batch_size", batch_size)

    def predict_logits(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw network outputs: (n, *output_shape), in inference mode.

        Raises NonFiniteError (naming the first sample) when an output is NaN or inf,
        e.g. for float64 input of 1e300 that overflows a float32 network.
        """
        x = check_features(x, self.net.input_shape)
        batch_size = self._inference_batch(batch_size)
        return np.concatenate([self._forward(x[lo : lo + batch_size], lo) for lo in range(0, len(x), batch_size)])

    def predict_proba(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities: softmax of the logits (n, classes); for the logistic loss P(y=1): (n,)."""
        z = self.predict_logits(x, batch_size)
        if isinstance(self.loss, CrossEntropyLogit):
            # A network that ends in Softmax (e.g. imported for inference) already gives probabilities.
            return z if isinstance(ends_in(self.net.layers), Softmax) else softmax(z, axis=1)
        if isinstance(self.loss, Logistic):
            return 0.5 * (1 + np.tanh(0.5 * z[:, 0]))
        return z

    def predict(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Predicted labels (n,) for classification losses, raw outputs for regression."""
        z = self.predict_logits(x, batch_size)
        if isinstance(self.loss, CrossEntropyLogit):
            return z.argmax(axis=1)
        if isinstance(self.loss, Logistic):
            return (z[:, 0] > 0).astype(np.intp)
        return z

    def _forward(self, xb: np.ndarray, offset: int = 0, name: str = "x") -> np.ndarray:
        """Inference on one batch (samples offset.. of ``name``); never a NaN or inf result."""
        with np.errstate(over="ignore", invalid="ignore"):  # overflow gets the clear error below
            z = self.net.forward(self._as_input(xb))
        if np.isfinite(z).all():
            return z
        row = int(np.flatnonzero(~np.isfinite(z.reshape(len(z), -1)).all(axis=1))[0])
        largest = float(np.abs(xb[row]).max())
        limit = float(np.finfo(self.net.dtype).max)
        why = (
            f"its values (up to {largest:.3g}) do not fit the network's {self.net.dtype.name} (max {limit:.3g})"
            if largest > limit
            else f"the network overflows on it (its largest |value| is {largest:.3g}; are the inputs scaled "
            "as in training, and are the weights finite?)"
        )
        raise NonFiniteError(f"{name}: the network's output for sample {offset + row} is NaN or inf: {why}")
