"""``Dropout``: inverted dropout, the identity in inference."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Layer, register_layer


@register_layer
class Dropout(Layer):
    """Training: y = x · m / (1 − rate), m ~ Bernoulli(1 − rate) per element; dx = dy · m / (1 − rate).

    Inference: y = x (the scaling in training keeps the expected value unchanged).
    The random numbers come from ``rng``, which a Model sets to its own generator so
    that an interrupted and resumed run draws exactly the same masks.
    """

    can_work_in_place = True
    uses_rng = True

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0:
            self.mask = None
            return x
        if self.rng is None:
            self.rng = np.random.default_rng()
        # Scaled mask in x's dtype: 0 or 1/(1 − rate).
        mask = self.rng.random(x.shape, dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64)
        np.multiply(mask >= self.rate, 1 / (1 - self.rate), out=mask)
        self.mask = mask
        return np.multiply(x, mask, out=x if self.inplace else None)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        if not need_dx:
            return None
        if self.mask is None:
            return dy
        return np.multiply(dy, self.mask, out=dy if self.inplace else None)

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}
