"""The ``layerwise`` command line (also ``python -m layerwise``).

Subcommands: ``train``, ``evaluate``, ``predict``, ``summary`` and ``reproduce hw2``;
``layerwise COMMAND --help`` documents each.  Built on the standard library's
argparse, so the command line needs nothing beyond layerwise's own dependencies.

Exit codes: 0 success; 2 a user error (bad option or number, unknown data set,
malformed architecture, missing or damaged file, wrong image size), reported as
one line ``layerwise: error: ...``; 1 a runtime failure (training diverged, an
unexpected I/O error); 130 / 143 training stopped by SIGINT / SIGTERM after writing
a checkpoint.  ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from . import __version__
from .callbacks import Callback
from .errors import ArchitectureParseError, DivergenceError, LayerwiseError

PROG = "layerwise"

#: Defaults of ``layerwise train``; the parser's defaults are None so that an
#: option given on a ``--resume`` command line can be told from one left out.
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist",
    "arch": "[(140,ReLU),(10,Linear)]",
    "optimizer": "adam",
    "lr": 1e-3,
    "epochs": 10,
    "batch_size": 32,
    "seed": 0,
    "limit": None,
}
DATASETS = ("mnist", "fashion-mnist", "digits")
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
CHECKPOINT = "checkpoint.npz"
CONFIG = "config.json"


class UserError(Exception):
    """A mistake on the command line: reported in one line, exit code 2."""


# ----------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """argparse, but errors raise UserError: one line on stderr, code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see '{self.prog} --help')")


def _number(convert: Any, minimum: float, inclusive: bool, expected: str) -> Any:
    """An argparse ``type=`` that parses with ``convert`` and checks a finite value above ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, 1, True, "a positive integer")
_non_negative_int = _number(int, 0, True, "an integer >= 0")
_positive_float = _number(float, 0.0, False, "a positive finite number")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the whole command line."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite a --debug given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback when something fails"
    )

    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description="layerwise: train, evaluate and use NumPy neural networks on MNIST-style data.",
        epilog=(
            "examples:\n"
            '  layerwise train --dataset mnist --arch "[(140,ReLU),(10,Linear)]" --epochs 10 --out runs/mlp\n'
            "  layerwise evaluate runs/mlp/model.npz --dataset mnist\n"
            "  layerwise predict runs/mlp/model.npz digit.png\n"
            "  layerwise summary runs/mlp/model.npz\n"
            "  layerwise reproduce hw2\n"
            "  layerwise bench --json bench.json\n\n"
            "Data sets are looked for in --data-dir, then $LAYERWISE_DATA/<name>/, then the cache.\n"
            "Exit codes: 0 ok, 2 user error (one line 'layerwise: error: ...'), 1 runtime failure,\n"
            "130/143 training interrupted by SIGINT/SIGTERM (a checkpoint was written)."
        ),
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # -- train ---------------------------------------------------------------------
    p = sub.add_parser(
        "train",
        parents=[common],
        formatter_class=_Formatter,
        help="train a network on a data set and write the model, metrics and plots",
        description=(
            "Train a network with the cross-entropy loss on softmax logits and write into --out:\n"
            "  model.npz              the trained model (layerwise.load / evaluate / predict)\n"
            "  metrics.json           train/test loss and accuracy, seconds, per-epoch history,\n"
            "                         per-class precision/recall, confusion matrix, configuration\n"
            "  config.json            the configuration (read by --resume)\n"
            "  learning_curves.png    loss and accuracy per epoch, train and test\n"
            "  confusion_matrix.png   test-set confusion matrix\n"
            "  weights.png            for a one-layer linear model: each class's weights as an image\n\n"
            "Ctrl-C (SIGINT) or SIGTERM writes --out/checkpoint.npz after the current step and exits;\n"
            "'layerwise train --resume DIR' finishes the run, bit-identical to an uninterrupted one."
        ),
        epilog=(
            'architecture notation: the seed\'s "[(140,ReLU),(10,Linear)]" or the short "140:relu,10"\n'
            "(a layer without activation is linear); activations: linear, relu, sigmoid, tanh, softmax.\n"
            "The last layer must have one unit per class (10) and should be Linear (logits)."
        ),
    )
    d = TRAIN_DEFAULTS
    p.add_argument("--dataset", choices=DATASETS, help=f"data set (default {d['dataset']})")
    p.add_argument("--arch", metavar="ARCH", help=f'architecture (default "{d["arch"]}")')
    p.add_argument("--optimizer", metavar="NAME", help=f"sgd, adam, adamw or rmsprop (default {d['optimizer']})")
    p.add_argument("--lr", type=_positive_float, metavar="LR", help=f"learning rate (default {d['lr']:g})")
    p.add_argument("--epochs", type=_positive_int, metavar="N", help=f"epochs (default {d['epochs']})")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help=f"mini-batch size (default {d['batch_size']})")
    p.add_argument(
        "--seed", type=_non_negative_int, metavar="N", help=f"seeds the weights and the shuffling (default {d['seed']})"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<dataset>)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's four IDX files")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run in DIR from DIR/checkpoint.npz, with DIR's configuration",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        metavar="N",
        default=1,
        help="also write DIR/checkpoint.npz every N epochs, atomically (default 1; 0: only when interrupted)",
    )
    p.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="advanced: train on the first N training samples only (quick runs and tests); the test set stays whole",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    # -- evaluate ------------------------------------------------------------------
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=_Formatter,
        help="loss, accuracy and per-class precision/recall of a saved model",
        description="Evaluate MODEL (a .npz file, or a run folder holding model.npz) on a data set:\n"
        "prints loss, accuracy and a per-class precision/recall table.",
    )
    p.add_argument("model", metavar="MODEL", help="model .npz file or run folder")
    p.add_argument(
        "--dataset", choices=DATASETS, help="data set (default: the one the model was trained on, else mnist)"
    )
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split (default test)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's four IDX files")
    p.set_defaults(func=cmd_evaluate)

    # -- predict -------------------------------------------------------------------
    p = sub.add_parser(
        "predict",
        parents=[common],
        formatter_class=_Formatter,
        help="classify PNG/JPEG images or the images of an IDX file",
        description=(
            "Print the predicted label and the top-3 probabilities of each INPUT.\n\n"
            "INPUT is an image (PNG, JPEG or anything Pillow reads) or an IDX file (raw or .gz)\n"
            "holding images (n, H, W) or rows (n, H*W) whose size matches the model's input.\n\n"
            "An image is prepared like an MNIST sample: transparency goes on white, it is converted\n"
            "to grayscale, resized to the model's input side (28x28 for 784 inputs; Lanczos, the\n"
            "aspect ratio is not kept) and inverted when its background is light (mean pixel > 127),\n"
            "because MNIST digits are white on black.  --invert always/never overrides that test.\n"
            "MNIST also centres each digit in a 20x20 box: crop your digit roughly to the middle."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="model .npz file or run folder")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="PNG/JPEG image or IDX file")
    p.add_argument("--top", type=_positive_int, default=3, metavar="K", help="probabilities shown (default 3)")
    p.add_argument(
        "--invert",
        choices=("auto", "always", "never"),
        default="auto",
        help="invert images: auto (when the mean pixel > 127, default), always, never",
    )
    p.set_defaults(func=cmd_predict)

    # -- summary -------------------------------------------------------------------
    p = sub.add_parser(
        "summary",
        parents=[common],
        formatter_class=_Formatter,
        help="print a saved model's architecture table",
        description="Print MODEL's layers, output shapes and parameter counts, its loss and optimizer.",
    )
    p.add_argument("model", metavar="MODEL", help="model .npz file or run folder")
    p.set_defaults(func=cmd_summary)

    # -- reproduce -----------------------------------------------------------------
    p = sub.add_parser(
        "reproduce",
        parents=[common],
        formatter_class=_Formatter,
        help="reproduce an experiment of the seed (hw2: Problem 4's MNIST table)",
        description=(
            "hw2: train the three networks of the seed's Problem 4 on MNIST -- a) [(10,Linear)],\n"
            "b) a two-layer ReLU net, c) [(140,ReLU),(10,Linear)] -- with the settings in\n"
            "layerwise/experiments/hw2.py, and print the seed's train/test accuracies beside ours.\n"
            "Writes results.json, learning_curves.png (all three nets) and a.npz, b.npz, c.npz into --out."
        ),
    )
    p.add_argument("experiment", choices=("hw2",), help="the experiment (hw2)")
    p.add_argument(
        "--epochs",
        type=_positive_int,
        metavar="N",
        help="train every net for N epochs instead of its configured number (quick checks)",
    )
    p.add_argument("--out", metavar="DIR", default="runs/hw2", help="output folder (default runs/hw2)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding MNIST's four IDX files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)

    # -- bench ---------------------------------------------------------------------
    from . import bench

    p = sub.add_parser(
        "bench",
        parents=[common],
        formatter_class=_Formatter,
        help="time an MNIST training epoch against PyTorch and scikit-learn",
        description=bench.__doc__,
    )
    bench.build_parser(p)
    p.set_defaults(func=bench.run_with)
    return parser


# ----------------------------------------------------------------------------- helpers
def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _parse_arch(text: str) -> list[tuple[int, str]]:
    from .arch import parse_architecture

    try:
        return parse_architecture(text)
    except ArchitectureParseError as e:
        first = str(e).splitlines()[0].rstrip(":")
        raise UserError(f"--arch {text!r}: {first}") from None


def _model_path(text: str) -> Path:
    path = Path(text)
    return path / "model.npz" if path.is_dir() else path


def _load_model(text: str) -> Any:
    from .io import load_model

    return load_model(_model_path(text))


def _load_dataset(name: str, data_dir: str | None, limit: int | None = None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test), images flattened to rows of uint8 pixels."""
    from .data import flatten, load

    (x, y), (xt, yt) = load(name, data_dir)
    x, xt = flatten(x), flatten(xt)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y, xt, yt


def _class_names(dataset: str | None, n: int) -> list[str]:
    names = CLASS_NAMES.get(dataset or "")
    return list(names) if names and len(names) == n else [str(k) for k in range(n)]


def _check_inputs(model: Any, n_features: int, dataset: str) -> None:
    if model.net.n_inputs != n_features:
        raise UserError(f"the model takes {model.net.n_inputs} inputs but {dataset} images have {n_features} pixels")


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


def _per_class_table(rows: list[dict[str, Any]]) -> str:
    width = max(5, *(len(r["name"]) for r in rows))
    lines = [f"{'class':<{width}}  precision  recall  support", "-" * (width + 28)]
    lines += [
        f"{r['name']:<{width}}  {100 * r['precision']:8.2f}%  {100 * r['recall']:5.2f}%  {r['support']:7d}"
        for r in rows
    ]
    return "\n".join(lines)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _write_json(path: Path, data: Any) -> None:
    from .atomic import atomic_write

    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    with atomic_write(path) as f:
        f.write(text.encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _plain(history: dict[str, list[Any]]) -> dict[str, list[float]]:
    return {k: [float(v) for v in values] for k, values in history.items()}


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- training
class _EpochReport(Callback):
    """After each epoch: the test loss/accuracy, on stderr below the epoch's progress bar."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if "val_loss" in logs:
            acc = f"  test accuracy {100 * logs['val_accuracy']:.2f}%" if "val_accuracy" in logs else ""
            _err(f"  test loss {logs['val_loss']:.4f}{acc}")


class _EpochCheckpoint(Callback):
    """Write ``path`` (atomically) every ``every`` epochs, except after the last one."""

    def __init__(self, path: Path, every: int, epochs: int) -> None:
        self.path, self.every, self.epochs = path, every, epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.every and (epoch + 1) % self.every == 0 and epoch + 1 < self.epochs:
            _write_checkpoint(self.model, self.path)


def _write_checkpoint(model: Any, path: Path) -> None:
    from .io import save_model

    history = _plain(model.history.history) if model.history is not None else {}
    save_model(model, path, train_state={**model.train_state, "history": history})


class _SignalCatcher:
    """While active, SIGINT/SIGTERM ask ``model`` to stop after the current step; a second one aborts."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: stop now, without a new checkpoint
            raise KeyboardInterrupt
        self.signum = signum
        self.model.interrupt_requested = True  # no printing here: the handler may interrupt a write

    def __enter__(self) -> _SignalCatcher:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _train_config(args: argparse.Namespace) -> dict[str, Any]:
    given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k) is not None}
    if not args.resume:
        return {**TRAIN_DEFAULTS, **given}
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UserError(f"--resume {args.resume}: no such run folder")
    saved = _read_json(run_dir / CONFIG)
    missing = [k for k in TRAIN_DEFAULTS if k not in saved]
    if missing:
        raise UserError(f"{run_dir / CONFIG}: lacks {', '.join(missing)}; not a layerwise train folder?")
    for key, value in given.items():
        same = saved[key] == value
        if key == "arch":
            same = _parse_arch(value) == [tuple(x) for x in _parse_arch(saved[key])]
        if not same:
            option = "--" + key.replace("_", "-")
            raise UserError(
                f"{option} {value} differs from the interrupted run's {saved[key]}; "
                f"--resume continues with the run's own configuration (leave {option} out)"
            )
    return {k: saved[k] for k in TRAIN_DEFAULTS}


def cmd_train(args: argparse.Namespace) -> int:
    from .arch import format_architecture
    from .io import load_model
    from .model import Model
    from .network import NeuralNetwork
    from .optim import get_optimizer

    started = time.perf_counter()
    cfg = _train_config(args)
    arch = _parse_arch(cfg["arch"])
    resume_state = None
    if args.resume:
        out = Path(args.resume)
        if args.out is not None and Path(args.out).resolve() != out.resolve():
            raise UserError("--out: a resumed run writes into its own folder; leave --out out")
        checkpoint = out / CHECKPOINT
        if not checkpoint.is_file():
            done = " (the run has finished: model.npz is there)" if (out / "model.npz").is_file() else ""
            raise UserError(f"--resume {args.resume}: no {CHECKPOINT} to continue from{done}")
    else:
        out = Path(args.out) if args.out is not None else Path("runs") / cfg["dataset"]
        checkpoint = out / CHECKPOINT
        if checkpoint.exists():
            raise UserError(
                f"{out} holds an unfinished run ({CHECKPOINT}): continue it with "
                f"'layerwise train --resume {out}', or delete the checkpoint or pick another --out"
            )
    n_classes = 10
    if arch[-1][0] != n_classes:
        raise UserError(
            f"--arch: the last layer has {arch[-1][0]} units but {cfg['dataset']} has {n_classes} classes; "
            f"end with (10,Linear)"
        )
    optimizer = get_optimizer(cfg["optimizer"], lr=cfg["lr"])  # unknown names fail before loading data

    x, y, xt, yt = _load_dataset(cfg["dataset"], args.data_dir, cfg["limit"])
    if args.resume:
        model = load_model(checkpoint)
        resume_state = model.train_state
        if not isinstance(resume_state, dict) or "epoch" not in resume_state:
            raise UserError(f"{checkpoint}: holds no training state to resume from")
        _check_inputs(model, x.shape[1], cfg["dataset"])
    else:
        net = NeuralNetwork(x.shape[1], arch, seed=cfg["seed"], input_scale=1 / 255)
        model = Model(net, loss="crossEntropyLogit", optimizer=optimizer, seed=cfg["seed"])
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / CONFIG, {**cfg, "arch": format_architecture(arch), "layerwise_version": __version__})

    epochs = cfg["epochs"]
    where = f", resuming at epoch {resume_state['epoch'] + 1} step {resume_state['step']}" if resume_state else ""
    print(
        f"Training {format_architecture(arch)} on {cfg['dataset']}: {len(x):,} train / {len(xt):,} test samples, "
        f"{epochs} epochs, batch {cfg['batch_size']}, {model.optimizer!r}, seed {cfg['seed']}{where}",
        flush=True,
    )
    callbacks: list[Callback] = [_EpochCheckpoint(checkpoint, args.checkpoint_every, epochs)]
    if not args.quiet:
        callbacks.append(_EpochReport())
    with _SignalCatcher(model) as catcher:
        history = model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=cfg["batch_size"],
            validation_data=(xt, yt),
            callbacks=callbacks,
            verbose=0 if args.quiet else 1,
            resume=resume_state,
        )
    if catcher.signum is not None and model.train_state["epoch"] < epochs:
        _write_checkpoint(model, checkpoint)
        state = model.train_state
        name = signal.Signals(catcher.signum).name
        _err(
            f"layerwise: {name}: stopped at epoch {state['epoch'] + 1}/{epochs}, step {state['step']}; "
            f"checkpoint written to {checkpoint}"
        )
        _err(f"layerwise: continue with: layerwise train --resume {out}")
        return 128 + catcher.signum

    # -- the finished run: metrics, model, plots ---------------------------------------
    hist = _plain(history.history)
    train_loss, train_acc = model.evaluate(x, y)
    test_loss, test_acc = model.evaluate(xt, yt)
    names = _class_names(cfg["dataset"], n_classes)
    matrix = confusion(yt, model.predict(xt), n_classes)
    model.train_config.update(
        dataset=cfg["dataset"],
        arch=format_architecture(arch),
        seed=cfg["seed"],
        lr=cfg["lr"],
        optimizer=cfg["optimizer"],
        limit=cfg["limit"],
    )
    model.save(out / "model.npz")
    seconds = float(sum(hist.get("seconds", [])))
    n_epochs = len(hist.get("loss", []))
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
    per_epoch = [
        {"epoch": i + 1, **{k: hist[k][i] for k in keys if k in hist and i < len(hist[k])}} for i in range(n_epochs)
    ]
    metrics = {
        "train_accuracy": train_acc,
        "train_loss": train_loss,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "seconds": seconds,
        "samples_per_second": len(x) * n_epochs / seconds if seconds else None,
        "epochs": n_epochs,
        "resumed": bool(args.resume),
        "history": per_epoch,
        "per_class": per_class(matrix, names),
        "confusion_matrix": matrix.tolist(),
        "config": {
            **cfg,
            "arch": format_architecture(arch),
            "n_inputs": int(x.shape[1]),
            "n_train": len(x),
            "n_test": len(xt),
            "parameters": model.net.n_params,
            "data_dir": args.data_dir,
            "checkpoint_every": args.checkpoint_every,
            "layerwise_version": __version__,
        },
    }
    _write_json(out / "metrics.json", metrics)

    from . import plots

    written = ["model.npz", "metrics.json", CONFIG]
    title = f"{format_architecture(arch)} on {cfg['dataset']}"
    plots.learning_curves(hist, out / "learning_curves.png", title=title)
    plots.confusion_matrix(
        matrix, out / "confusion_matrix.png", names, title=f"{title}: test accuracy {100 * test_acc:.2f}%"
    )
    written += ["learning_curves.png", "confusion_matrix.png"]
    side = math.isqrt(x.shape[1])
    if len(arch) == 1 and arch[0][1] == "linear" and side * side == x.shape[1]:
        dense = next(layer for layer in model.net.layers if "W" in layer.params)
        plots.weight_templates(
            dense.params["W"], out / "weights.png", names, title=f"learned weight templates ({cfg['dataset']})"
        )
        written.append("weights.png")
    checkpoint.unlink(missing_ok=True)  # the run is complete: model.npz supersedes it

    print(
        f"\nFinished {n_epochs} epochs: {seconds:.1f} s of training"
        + (f" ({metrics['samples_per_second']:,.0f} samples/s)" if seconds else "")
        + f", {time.perf_counter() - started:.1f} s in all"
    )
    print(f"{'':6}{'loss':>9}{'accuracy':>11}")
    print(f"{'train':6}{train_loss:9.4f}{100 * train_acc:10.2f}%")
    print(f"{'test':6}{test_loss:9.4f}{100 * test_acc:10.2f}%")
    print(f"Wrote {', '.join(written)} to {out}")
    return 0


# ----------------------------------------------------------------------------- the others
def cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    dataset = args.dataset or model.train_config.get("dataset") or "mnist"
    if dataset not in DATASETS:
        dataset = "mnist"
    x, y, xt, yt = _load_dataset(dataset, args.data_dir)
    if args.split == "train":
        xt, yt = x, y
    _check_inputs(model, xt.shape[1], dataset)
    loss, acc = model.evaluate(xt, yt)
    n_classes = model.net.n_outputs
    names = _class_names(dataset, n_classes)
    matrix = confusion(yt, model.predict(xt), n_classes)
    print(f"{_model_path(args.model)} on {dataset} {args.split} ({len(xt):,} samples)")
    print(f"loss      {loss:.4f}")
    print(f"accuracy  {100 * acc:.2f}%\n")
    print(_per_class_table(per_class(matrix, names)))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .images import load_inputs

    model = _load_model(args.model)
    n_inputs = model.net.n_inputs
    batches = [load_inputs(path, n_inputs, args.invert) for path in args.inputs]  # all checked first
    n_classes = max(2, model.net.n_outputs)
    names = _class_names(model.train_config.get("dataset"), n_classes)
    top = min(args.top, n_classes)
    for labels, rows in batches:
        proba = model.predict_proba(rows)
        if proba.ndim == 1:  # a logistic model gives P(y=1) only
            proba = np.stack([1 - proba, proba], axis=1)
        for label, p in zip(labels, proba, strict=True):
            best = np.argsort(-p, kind="stable")[:top]
            shown = ", ".join(f"{names[k]} {100 * p[k]:.1f}%" for k in best)
            print(f"{label}: {names[best[0]]}    (top {top}: {shown})")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    print(model.summary())
    config = {k: v for k, v in model.train_config.items() if v is not None}
    if config:
        print("Trained with: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import hw2

    results = hw2.run(out_dir=args.out, epochs=args.epochs, data_dir=args.data_dir, verbose=0 if args.quiet else 1)
    print()
    print(hw2.format_table(results))
    print(f"\nWrote results.json, learning_curves.png and a.npz, b.npz, c.npz to {args.out}")
    return 0


# ----------------------------------------------------------------------------- main
def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    _err(f"{PROG}: error: {_one_line(message)}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to sys.exit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return int(args.func(args) or 0)
    except UserError as e:
        return _fail(str(e), 2, debug)
    except DivergenceError as e:
        return _fail(str(e), 1, debug)
    except LayerwiseError as e:  # bad input: data set, architecture, model file, image size...
        return _fail(str(e), 2, debug)
    except BrokenPipeError:  # e.g. `layerwise predict ... | head`
        sys.stderr.close()
        return 1
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        return _fail(_os_message(e), 2, debug)
    except OSError as e:
        return _fail(_os_message(e), 1, debug)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        _err(f"{PROG}: interrupted")
        return 130


def _os_message(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)


if __name__ == "__main__":
    raise SystemExit(main())
