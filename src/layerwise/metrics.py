"""Classification metrics from predictions: the confusion matrix and per-class precision/recall."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``m[true, predicted]`` counts."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class(matrix: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall and support per class from a confusion matrix (NaN-free: 0 where undefined)."""
    rows = []
    for k, name in enumerate(names):
        tp = int(matrix[k, k])
        predicted, actual = int(matrix[:, k].sum()), int(matrix[k, :].sum())
        rows.append(
            {
                "class": k,
                "name": name,
                "precision": tp / predicted if predicted else 0.0,
                "recall": tp / actual if actual else 0.0,
                "support": actual,
            }
        )
    return rows


CLASS_NAMES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def class_names(dataset: str | None, n: int) -> list[str]:
    names = CLASS_NAMES.get(dataset or "")
    return list(names) if names and len(names) == n else [str(k) for k in range(n)]
