"""``layerwise predict``: classify images (PNG, JPEG, ...) or the samples of an IDX file."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..losses import MSE
from ..metrics import class_names
from .common import load_model, positive_int


def add_parser(sub: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    p = sub.add_parser(
        "predict",
        parents=[common],
        formatter_class=formatter,
        help="classify PNG/JPEG images or the images of an IDX file",
        description=(
            "Print the predicted label and the top-3 probabilities of each INPUT.\n\n"
            "INPUT is an image (PNG, JPEG or anything Pillow reads) or an IDX file (raw or .gz)\n"
            "holding images (n, H, W) or rows (n, H*W) whose size matches the model's input.\n\n"
            "An image (a photo of a digit, say) is prepared as MNIST prepared its digits: grey, the paper\n"
            "level subtracted, inverted when the ink is dark (MNIST digits are white on black), contrast\n"
            "stretched, cropped to the ink, fitted into 20x20 keeping its aspect ratio and centred by its\n"
            "centre of mass in 28x28.  --preprocess none only resizes (for digits already drawn\n"
            "MNIST-style); --invert always/never overrides the polarity test; --show PATH writes a\n"
            "picture of what the model sees beside the original."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="model file (.npz, .onnx) or run folder")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="PNG/JPEG image or IDX file")
    p.add_argument("--top", type=positive_int, default=3, metavar="K", help="probabilities shown (default 3)")
    p.add_argument(
        "--invert",
        choices=("auto", "always", "never"),
        default="auto",
        help="invert images: auto (when the mean pixel > 127, default), always, never",
    )
    p.add_argument(
        "--preprocess",
        choices=("mnist", "none"),
        default="mnist",
        help="mnist: crop, fit and centre the digit as MNIST did (default); none: resize only",
    )
    p.add_argument(
        "--show",
        metavar="PATH",
        help="write the image beside what the model sees to PATH (a folder of NAME.seen.png for several images)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..images import load_inputs

    model = load_model(args.model)
    batches = [load_inputs(path, model.net.n_inputs, args.invert, args.preprocess) for path in args.inputs]
    if args.show:
        _show(args, batches)
    classify = not isinstance(model.loss, MSE)  # a regression model's outputs are not probabilities
    n_classes = max(2, model.net.n_outputs)
    names = class_names(model.train_config.get("dataset"), n_classes)
    top = min(args.top, n_classes)
    for labels, rows in batches:
        if model.net.input_shape is not None:  # rows of pixels -> the model's samples, e.g. (n, 1, 28, 28)
            rows = rows.reshape(len(rows), *model.net.input_shape)
        if not classify:  # the outputs themselves; with one output per class (mse on one-hot labels) also the best
            for label, out in zip(labels, model.predict(rows), strict=True):
                best = f"{names[int(np.argmax(out))]}    (outputs: " if np.size(out) == n_classes > 2 else "("
                print(f"{label}: {best}{np.array2string(np.asarray(out), precision=4, max_line_width=10_000)})")
            continue
        proba = model.predict_proba(rows)
        if proba.ndim == 1:  # a logistic model gives P(y=1) only
            proba = np.stack([1 - proba, proba], axis=1)
        for label, p in zip(labels, proba, strict=True):
            best = np.argsort(-p, kind="stable")[:top]
            shown = ", ".join(f"{names[k]} {100 * p[k]:.1f}%" for k in best)
            print(f"{label}: {names[best[0]]}    (top {top}: {shown})")
    return 0


def _show(args: argparse.Namespace, batches: list[tuple[list[str], np.ndarray]]) -> None:
    """--show: each image beside the model's view of it (IDX inputs have no original to show)."""
    from pathlib import Path

    from ..images import is_idx_file
    from ..photo import save_preview

    images = [(path, rows) for path, (_, rows) in zip(args.inputs, batches, strict=True) if not is_idx_file(path)]
    several = len(images) > 1
    if several:
        Path(args.show).mkdir(parents=True, exist_ok=True)
    for path, rows in images:
        side = int(round(rows.shape[1] ** 0.5))
        target = Path(args.show) / f"{Path(path).stem}.seen.png" if several else Path(args.show)
        save_preview(target, path, rows[0].reshape(side, side))
