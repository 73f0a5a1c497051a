"""``layerwise train``: one training run (``layerwise.runs.train_run``) with signals handled throughout.

From the first line to the last file written, SIGINT and SIGTERM only ask the run
to stop: a run stopped in training leaves a checkpoint to ``--resume`` from; one
that had finished training completes its folder first.  Either way the message
says which, and the exit code is 130 (SIGINT) or 143 (SIGTERM).  A second signal
aborts at once (files are written atomically, so none is left half-written).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

from ..arch.notation import NOTATION_HELP
from ..errors import ArchitectureParseError
from ..runs.config import RunConfig
from .common import (
    DATASETS,
    StopSignals,
    add_data_dir,
    arch_error,
    err,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    set_threads,
    show_progress,
)

#: RunConfig fields, each set by the option of the same name (None: not given, so --resume can tell).
OPTIONS = tuple(field.name for field in dataclasses.fields(RunConfig))


def add_parser(sub: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    from ..runs.config import INITS, LOSSES, OPTIMIZERS, SCHEDULES

    d = RunConfig()
    p = sub.add_parser(
        "train",
        parents=[common],
        formatter_class=formatter,
        help="train a network on a data set and write the model, metrics and plots",
        description=(
            "Train a network (by default with the cross-entropy loss on softmax logits) and write into --out:\n"
            "  model.npz              the trained model (layerwise.load / evaluate / predict)\n"
            "  metrics.json           train/validation/test loss and accuracy, seconds, per-epoch\n"
            "                         history, per-class precision/recall, confusion matrix, configuration\n"
            "  config.json            the configuration (read by --resume)\n"
            "  learning_curves.png    loss and accuracy per epoch, training and validation\n"
            "  confusion_matrix.png   test-set confusion matrix\n"
            "  weights.png            for a one-layer linear model: each class's weights as an image\n"
            "  filters.png            for a network whose first layer is a convolution: its kernels\n\n"
            "The last --validation training images are held out: each epoch reports its loss and\n"
            "accuracy on them.  The test set is evaluated once, after training, and reported apart.\n\n"
            "Ctrl-C (SIGINT) or SIGTERM writes --out/checkpoint.npz after the current step and exits;\n"
            "'layerwise train --resume DIR' finishes the run, bit-identical to an uninterrupted one\n"
            "(with the same number of BLAS threads); 'layerwise train --resume DIR --epochs N' trains\n"
            "a finished run further."
        ),
        epilog=NOTATION_HELP,
    )
    p.add_argument("--dataset", choices=DATASETS, help=f"data set (default {d.dataset})")
    p.add_argument("--arch", metavar="ARCH", help=f'architecture (default "{d.arch}")')
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, metavar="NAME", help=f"{', '.join(OPTIMIZERS)} (default {d.optimizer})"
    )
    p.add_argument("--lr", type=positive_float, metavar="LR", help=f"learning rate (default {d.lr:g})")
    p.add_argument("--epochs", type=positive_int, metavar="N", help=f"epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help=f"mini-batch size (default {d.batch_size})")
    p.add_argument(
        "--seed", type=non_negative_int, metavar="N", help=f"seeds the weights and the shuffling (default {d.seed})"
    )
    p.add_argument("--momentum", type=non_negative_float, metavar="M", help="SGD momentum (default 0)")
    p.add_argument("--weight-decay", type=non_negative_float, metavar="L2", help="weight decay (default 0)")
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="learning-rate schedule: constant (default), cosine "
        "(to lr/100 over the epochs) or step (x0.1 every third of the epochs)",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        help="crossEntropyLogit (default: softmax cross-entropy on the last layer's logits) or mse "
        "(squared error against the one-hot labels, as in early courses)",
    )
    p.add_argument(
        "--init",
        choices=INITS,
        help="initial weights: auto (default: He before a ReLU, Glorot otherwise), he, or glorot (Keras' default)",
    )
    p.add_argument(
        "--validation",
        type=non_negative_int,
        metavar="N",
        help="hold out the last N training images to monitor each epoch (default 5000 or a tenth, if fewer; 0: none)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<dataset>)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    add_data_dir(p)
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR (from its checkpoint, or a finished one with a larger --epochs)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        metavar="N",
        default=1,
        help="also write DIR/checkpoint.npz every N epochs, atomically (default 1; 0: only when interrupted)",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="advanced: use the first N training images only (quick runs and tests); the test set stays whole",
    )
    p.add_argument("--threads", type=positive_int, metavar="N", help="BLAS threads (1 is often fastest on 2 cores)")
    p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with StopSignals() as signals:  # the first line: nothing before it writes a file
        return _train(args, signals)


def _train(args: argparse.Namespace, signals: StopSignals) -> int:
    from ..runs import train_run
    from ..runs.folder import RunFolder

    started = time.perf_counter()
    set_threads(args)
    given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    if args.resume:
        out = Path(args.resume)
        if args.out is not None and Path(args.out).resolve() != out.resolve():
            raise _user("--out: a resumed run writes into its own folder; leave --out out")
        folder = RunFolder(out)
        if not folder.config.is_file():
            raise _user(f"--resume {args.resume}: no run folder (no {folder.config.name})")
        saved = RunConfig.from_json(folder.config.read_text(encoding="utf-8", errors="replace"), str(folder.config))
        config = _config(saved.to_dict() | given, args.arch)
    else:
        config = _config(RunConfig().to_dict() | given, args.arch)
        out = Path(args.out) if args.out is not None else Path("runs") / config.dataset
    result = train_run(
        config,
        out,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        data_dir=args.data_dir,
        checkpoint_every=args.checkpoint_every,
        verbose=0 if args.quiet else (2 if show_progress(args) else 1),
        cancel=signals.token,
        log=print,
    )
    name = signal.Signals(signals.signum).name if signals.signum else None
    if result.status == "interrupted":
        err(
            f"layerwise: {name or 'stopped'}: training stopped after {result.epochs_run} complete epochs; "
            f"checkpoint written to {Path(result.out_dir) / 'checkpoint.npz'}"
        )
        err(f"layerwise: continue with: layerwise train --resume {result.out_dir}")
        return 128 + (signals.signum or signal.SIGINT)
    print("\n" + result.report(time.perf_counter() - started))
    if signals.signum:
        err(f"layerwise: {name} arrived after training had finished; {result.out_dir} is complete")
        return 128 + signals.signum
    return 0


def _config(values: dict[str, Any], arch: str | None) -> Any:
    """A checked RunConfig; an architecture that does not parse names its position."""
    from ..arch import format_layers, parse_layers

    try:
        values["arch"] = format_layers(parse_layers(values["arch"]))  # canonical: the homework's notation for MLPs
    except ArchitectureParseError as e:
        raise arch_error(values["arch"], e) from None
    config = RunConfig.from_dict(values, "options")
    last = parse_layers(config.arch)[-1]
    if last.kind == "dense" and last.args["units"] != 10:  # known before any data is read
        raise _user(
            f"--arch: the last layer has {last.args['units']} units but {config.dataset} has 10 classes; "
            "end with (10,Linear)"
        )
    return config


def _user(message: str) -> Exception:
    from .common import UserError

    return UserError(message)
