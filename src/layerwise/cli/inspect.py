"""``layerwise evaluate`` and ``layerwise summary``: look at a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..metrics import class_names, confusion, per_class
from .common import (
    DATASETS,
    add_data_dir,
    check_inputs,
    flatten_note,
    load_dataset,
    load_model,
    model_path,
    per_class_table,
    takes_images,
)


def add_parsers(sub: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=formatter,
        help="loss, accuracy and per-class precision/recall of a saved model",
        description="Evaluate MODEL (a .npz or .onnx file, or a run folder holding model.npz) on a data set:\n"
        "prints loss, accuracy and a per-class precision/recall table.",
    )
    p.add_argument("model", metavar="MODEL", help="model file or run folder")
    p.add_argument(
        "--dataset", choices=DATASETS, help="data set (default: the one the model was trained on, else mnist)"
    )
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split (default test)")
    add_data_dir(p)
    p.set_defaults(func=evaluate)

    p = sub.add_parser(
        "summary",
        parents=[common],
        formatter_class=formatter,
        help="print a saved model's architecture table, or list the models of a run folder",
        description="Print MODEL's layers, output shapes and parameter counts, its loss, and the optimizer and\n"
        "schedule it was configured with.  For a folder without model.npz (e.g. runs/hw2), list its models.",
    )
    p.add_argument("model", metavar="MODEL", help="model file or run folder")
    p.set_defaults(func=summary)


def evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    dataset = args.dataset or model.train_config.get("dataset") or "mnist"
    if dataset not in DATASETS:
        dataset = "mnist"
    x, y, xt, yt = load_dataset(dataset, args.data_dir, images=takes_images(model))
    if args.split == "train":
        xt, yt = x, y
    check_inputs(model, xt, dataset)
    loss, acc = model.evaluate(xt, yt)
    n_classes = model.net.n_outputs
    matrix = confusion(yt, model.predict_logits(xt).argmax(axis=1), n_classes)
    print(f"{model_path(args.model)} on {dataset} {args.split} ({len(xt):,} samples)")
    print(f"loss      {loss:.4f}")
    print(f"accuracy  {100 * acc:.2f}%\n")
    print(per_class_table(per_class(matrix, class_names(dataset, n_classes))))
    return 0


def summary(args: argparse.Namespace) -> int:
    folder = Path(args.model)
    if folder.is_dir() and not (folder / "model.npz").is_file():
        return _list_models(folder)
    model = load_model(args.model)
    print(model.net.summary())
    note = flatten_note(model.train_config.get("arch"), model.net)
    if note:
        print(note)
    print(f"Loss: {type(model.loss).__name__}")
    run = model.train_config.get("run")
    if isinstance(run, dict):  # the configuration, not the optimizer's last scheduled learning rate
        print(
            f"Optimizer: {run.get('optimizer')} lr {run.get('lr'):g}, schedule {run.get('schedule')}"
            + (f", momentum {run['momentum']:g}" if run.get("momentum") else "")
            + (f", weight decay {run['weight_decay']:g}" if run.get("weight_decay") else "")
        )
        shown = ("dataset", "arch", "epochs", "batch_size", "seed", "limit", "validation")
        print("Trained with: " + ", ".join(f"{k}={run[k]}" for k in shown if run.get(k) is not None))
    else:
        print(f"Optimizer: {model.optimizer!r}")
        config = {k: v for k, v in model.train_config.items() if v is not None}
        if config:
            print("Trained with: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    return 0


def _list_models(folder: Path) -> int:
    from ..io import load_model as load_npz

    paths = sorted(folder.glob("*.npz")) + sorted(folder.glob("*/model.npz"))
    if not paths:
        from .common import UserError

        raise UserError(f"{folder}: no model files (*.npz or */model.npz) in this folder")
    print(f"{'model':<32}  {'parameters':>10}  architecture")
    for path in paths:
        model = load_npz(path)
        arch = model.train_config.get("arch") or (model.train_config.get("run") or {}).get("arch", "?")
        print(f"{str(path.relative_to(folder)):<32}  {model.net.n_params:>10,}  {arch}")
    return 0
