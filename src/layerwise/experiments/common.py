"""What every ``layerwise reproduce`` experiment shares: data, one training run, results and plots.

An experiment is a dict of settings (a "spec")::

    {"name": "lenet5", "dataset": "mnist", "arch": "[conv(6,5,pad=2),...]", "optimizer": "adam",
     "lr": 1e-3, "schedule": "cosine", "epochs": 10, "batch_size": 64, "seed": 0}

``train_network(spec, data)`` builds the network of ``spec["arch"]`` (``arch.build_network``,
raw uint8 pixels scaled by 1/255 inside the network), trains it with the
cross-entropy loss on softmax logits while reporting the test set after every epoch
(as the seed's homework and the papers do), and evaluates the train and test sets
once after the last epoch.  ``run_single`` does that for one network and writes the
model, results.json and the plots; hw2 runs three networks with the same pieces.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

#: What ``run_single`` writes into its folder.
SINGLE_OUTPUTS = ("results.json", "learning_curves.png", "confusion_matrix.png", "filters.png", "model.npz")


def load_data(dataset: str, images: bool, data_dir: str | Path | None = None, limit: int | None = None) -> Data:
    """(x_train, y_train, x_test, y_test) as uint8: images (n, 1, H, W) or rows (n, H·W); ``limit`` cuts train only."""
    from ..data import load

    (x, y), (xt, yt) = load(dataset, data_dir)
    if images:
        x, xt = x.reshape(len(x), 1, *x.shape[1:]), xt.reshape(len(xt), 1, *xt.shape[1:])
    else:
        x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y, xt, yt


def schedule_for(spec: dict[str, Any], epochs: int) -> Callable[[int], float] | None:
    """The per-epoch learning rate of ``spec["schedule"]``: None/"constant", "cosine" (half a cosine
    from lr to lr/100 over the epochs) or "step" (× ``gamma`` every ``step`` epochs)."""
    from ..schedules import CosineDecay, StepDecay

    kind = spec.get("schedule") or "constant"
    if kind == "cosine":
        return CosineDecay(spec["lr"], epochs, spec["lr"] / 100)
    if kind == "step":
        return StepDecay(spec["lr"], spec.get("step", max(1, epochs // 3)), spec.get("gamma", 0.1))
    return None


def train_network(
    spec: dict[str, Any], data: Data, epochs: int | None = None, verbose: int = 1
) -> tuple[Any, dict[str, Any]]:
    """Train the network of ``spec`` on ``data``; returns the model and a JSON-able result (accuracies in %)."""
    from ..arch import build_network
    from ..callbacks import LearningRateScheduler
    from ..model import Model
    from ..optim import get_optimizer

    x, y, xt, yt = data
    epochs = epochs or spec["epochs"]
    net = build_network(spec["arch"], x.shape[1:], seed=spec["seed"])
    optimizer = get_optimizer(spec["optimizer"], lr=spec["lr"], **spec.get("optimizer_options", {}))
    model = Model(net, loss="crossEntropyLogit", optimizer=optimizer, seed=spec["seed"])
    schedule = schedule_for(spec, epochs)
    callbacks = [LearningRateScheduler(schedule)] if schedule is not None else []
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=spec["batch_size"],
        validation_data=(xt, yt),
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    train_loss, train_acc = model.evaluate(x, y)
    test_loss, test_acc = model.evaluate(xt, yt)
    result = {
        **spec,
        "epochs": epochs,
        "n_train": len(x),
        "train_accuracy": 100 * train_acc,
        "test_accuracy": 100 * test_acc,
        "test_error": 100 * (1 - test_acc),
        "train_loss": train_loss,
        "test_loss": test_loss,
        "seconds": seconds,
        "parameters": net.n_params,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    return model, result


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    from ..atomic import atomic_write

    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2) + "\n").encode())


def training_line(spec: dict[str, Any], epochs: int | None = None) -> str:
    """``adam lr 0.001 (cosine decay), 10 epochs, batch 64``."""
    schedule = spec.get("schedule")
    decay = f" ({schedule} decay)" if schedule and schedule != "constant" else ""
    epochs = epochs or spec["epochs"]
    return f"{spec['optimizer']} lr {spec['lr']:g}{decay}, {epochs} epochs, batch {spec['batch_size']}"


# ----------------------------------------------------------------------------- one network
def target_met(spec: dict[str, Any], result: dict[str, Any]) -> bool:
    """Does ``result`` reach ``spec["target"]`` = {"test_error": max %} or {"test_accuracy": min %}?"""
    target = spec["target"]
    if "test_error" in target:
        return result["test_error"] <= target["test_error"]
    return result["test_accuracy"] >= target["test_accuracy"]


def run_single(
    spec: dict[str, Any],
    out_dir: str | Path,
    epochs: int | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    verbose: int = 1,
    log: Callable[..., None] = print,
) -> dict[str, Any]:
    """Train ``spec``'s network; write results.json, the plots and model.npz to ``out_dir``; return the summary."""
    from .. import plots
    from ..arch import parse_layers, takes_images
    from ..metrics import class_names, confusion

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = load_data(spec["dataset"], takes_images(parse_layers(spec["arch"])), data_dir, limit)
    log(f"{spec['title']} on {spec['dataset']}: {spec['arch']}", flush=True)
    log(f"   {training_line(spec, epochs)}, seed {spec['seed']}, {len(data[0]):,} training images", flush=True)
    model, result = train_network(spec, data, epochs, verbose)
    model.train_config.update(dataset=spec["dataset"], arch=spec["arch"], seed=spec["seed"], experiment=spec["name"])
    model.save(out / "model.npz")
    result["target_met"] = target_met(spec, result)
    summary = {
        "experiment": spec["name"],
        "epochs_override": epochs,
        "limit": limit,
        "total_seconds": time.perf_counter() - start,
        **result,
    }
    write_json(out / "results.json", summary)

    x_test, y_test = data[2], data[3]
    names = class_names(spec["dataset"], 10)
    matrix = confusion(y_test, model.predict(x_test), 10)
    title = f"{spec['title']} on {spec['dataset']}"
    plots.learning_curves(result["history"], out / "learning_curves.png", title=f"{title}: learning curves")
    plots.confusion_matrix(
        matrix, out / "confusion_matrix.png", names, title=f"{title}: test accuracy {result['test_accuracy']:.2f}%"
    )
    first = next(layer for layer in model.net.layers if layer.params)
    plots.conv_filters(first.params["W"], out / "filters.png", title=f"{spec['title']}: first-layer filters")
    return summary


def format_single(summary: dict[str, Any]) -> str:
    """The published number beside ours, and whether the target is met."""
    ref = summary["reference"]
    target = summary["target"]
    metric = "test_error" if "test_error" in target else "test_accuracy"
    sign = "<=" if metric == "test_error" else ">="
    head = f"{'':<28}{'train acc':>10}  {'test acc':>9}  {'test error':>10}"
    lines = [f"{summary['title']} on {summary['dataset']}: {summary['arch']}", head, "-" * len(head)]
    if "test_accuracy_range" in ref:  # a published range, e.g. [91, 93]
        low, high = ref["test_accuracy_range"]
        ref_acc, ref_err = f"{low:g}-{high:g}%", f"{100 - high:g}-{100 - low:g}%"
    else:
        accuracy = ref.get("test_accuracy", 100 - ref["test_error"] if "test_error" in ref else None)
        error = ref.get("test_error", None if accuracy is None else 100 - accuracy)
        ref_acc, ref_err = _pct(accuracy), _pct(error)
    lines.append(f"{ref['source']:<28}{'-':>10}  {ref_acc:>9}  {ref_err:>10}")

    lines.append(
        f"{'layerwise (this run)':<28}{_pct(summary['train_accuracy']):>10}  {_pct(summary['test_accuracy']):>9}  "
        f"{_pct(summary['test_error']):>10}"
    )
    lines.append("-" * len(head))
    met = "met" if summary["target_met"] else "NOT met"
    lines.append(
        f"target: {metric.replace('_', ' ')} {sign} {target[metric]:.2f}% in {summary['epochs']} epochs: {met}; "
        f"{training_line(summary, summary['epochs'])}; {summary['seconds']:.0f} s of training"
    )
    if summary.get("epochs_override") or summary.get("limit"):
        lines.append(
            f"(a quick run: epochs {summary['epochs']}"
            + (f", first {summary['limit']:,} training images" if summary.get("limit") else "")
            + "; the target is for the full settings)"
        )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"
