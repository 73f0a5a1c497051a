"""The seed's own interface, for code written against the homework.

In the seed, arrays are (classes, samples): one sample per *column*.  These
wrappers accept that layout and delegate to layerwise's row-major classes, so
the numbers are the same ones the rest of the library computes.
"""

from __future__ import annotations

import numpy as np

from .losses import CrossEntropyLogit


class crossEntropyLogit:  # noqa: N801 (the seed's name)
    """``doForward(z, y) -> J`` and ``doBackward(y) -> dJ/dz = (p − y)/m``; z, y: (classes, samples)."""

    def __init__(self) -> None:
        self.p = np.zeros((1, 1))
        self._loss = CrossEntropyLogit()

    def doForward(self, z: np.ndarray, y: np.ndarray) -> float:  # noqa: N802
        """Returns J = −(1/m) Σ y ln softmax(z), the softmax taken down each column."""
        J = self._loss.forward(np.asarray(z).T, np.asarray(y).T)
        self.p = self._loss.p.T
        return J

    def doBackward(self, y: np.ndarray) -> np.ndarray:  # noqa: N802
        """Returns dJ/dz = (p − y)/m, shape (classes, samples)."""
        return self._loss.backward().T
