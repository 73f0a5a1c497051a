"""What a finished run leaves in its folder: the model, metrics.json and the plots."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..atomic import atomic_write
from ..metrics import class_names, confusion, per_class
from .config import RunConfig
from .folder import RunFolder

if TYPE_CHECKING:
    from ..callbacks import History
    from .train import RunData


def write_outputs(
    folder: RunFolder, model: Any, config: RunConfig, data: RunData, history: History, resumed: bool
) -> dict[str, Any]:
    """Evaluate once on train, validation and test; write model.npz, metrics.json and the plots."""
    from .train import plain_history

    hist = plain_history(history.history)
    metrics: dict[str, Any] = {}
    splits = {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val)}
    for split, (xs, ys) in {**splits, "test": (data.x_test, data.y_test)}.items():
        if xs is not None:
            metrics[f"{split}_loss"], metrics[f"{split}_accuracy"] = model.evaluate(xs, ys)
    names = class_names(config.dataset, data.n_classes)
    matrix = confusion(data.y_test, model.predict_logits(data.x_test).argmax(axis=1), data.n_classes)
    model.train_config.update(dataset=config.dataset, arch=config.arch, seed=config.seed, lr=config.lr,
                              optimizer=config.optimizer, limit=config.limit)  # fmt: skip
    # The final model keeps its training state, so that 'train --resume DIR --epochs N' can extend it.
    from .train import write_checkpoint

    write_checkpoint(model, folder.model)
    seconds = float(sum(hist.get("seconds", [])))
    n_epochs = len(hist.get("loss", []))
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
    per_epoch = [
        {"epoch": i + 1, **{k: hist[k][i] for k in keys if k in hist and i < len(hist[k])}} for i in range(n_epochs)
    ]
    metrics |= {
        "seconds": seconds,
        "samples_per_second": len(data.x_train) * n_epochs / seconds if seconds else None,
        "epochs": n_epochs,
        "resumed": resumed,
        "history": per_epoch,
        "per_class": per_class(matrix, names),
        "confusion_matrix": matrix.tolist(),
        "config": {
            **config.to_dict(),
            "input_shape": list(model.net.input_shape),
            "n_train": len(data.x_train),
            "n_validation": 0 if data.x_val is None else len(data.x_val),
            "n_test": len(data.x_test),
            "parameters": model.net.n_params,
            "layerwise_version": __version__,
        },
    }
    with atomic_write(folder.metrics) as f:
        f.write((json.dumps(metrics, indent=2, default=_json_default) + "\n").encode())
    _plots(folder, model, config, hist, matrix, names, metrics["test_accuracy"])
    return metrics


def _plots(folder: RunFolder, model: Any, config: RunConfig, hist: dict[str, list[float]], matrix: np.ndarray,
           names: list[str], test_accuracy: float) -> None:  # fmt: skip
    from .. import plots

    title = f"{config.arch} on {config.dataset}"
    plots.learning_curves(hist, folder.path / "learning_curves.png", title=title)
    plots.confusion_matrix(
        matrix, folder.path / "confusion_matrix.png", names, title=f"{title}: test accuracy {100 * test_accuracy:.2f}%"
    )
    first = next((layer for layer in model.net.layers if layer.params), None)
    if first is None:
        return
    W = first.params["W"]
    if W.ndim == 4 and hasattr(plots, "conv_filters"):  # a first Conv2D layer: its kernels
        plots.conv_filters(W, folder.path / "filters.png", title=f"first-layer filters ({config.dataset})")
    elif W.ndim == 2 and len(model.net.layers) <= 3 and W.shape[1] == len(names):  # one linear layer: templates
        side = int(round(W.shape[0] ** 0.5))
        if side * side == W.shape[0]:
            title = f"learned weight templates ({config.dataset})"
            plots.weight_templates(W, folder.path / "weights.png", names, title=title)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
