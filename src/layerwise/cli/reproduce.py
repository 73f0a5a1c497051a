"""``layerwise reproduce``: the homework's Problem 4 table and published CNN results, by one command."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from .common import StopSignals, UserError, add_data_dir, err, positive_int, set_threads, show_progress

EXPERIMENTS = ("hw2", "lenet5", "convnet", "fashion-cnn")


def add_parser(sub: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    p = sub.add_parser(
        "reproduce",
        parents=[common],
        formatter_class=formatter,
        help="reproduce a published result (hw2, lenet5, convnet, fashion-cnn)",
        description=(
            "hw2: train the three networks of the homework's Problem 4 on MNIST -- a) [(10,Linear)],\n"
            "b) a two-layer ReLU net, c) [(140,ReLU),(10,Linear)] -- with the settings in\n"
            "layerwise/experiments/hw2.py, and print the homework's train/test accuracies beside ours.\n"
            "Writes results.json, learning_curves.png (all three nets) and a run folder per net (a/, b/, c/,\n"
            "each with model.npz, metrics.json and plots) into --out; --workers 2 trains the three at once.\n\n"
            "lenet5: LeNet-5 as modern frameworks write it (ReLU, max pooling) on MNIST, beside\n"
            "LeCun et al. 1998's 0.95% test error; target <= 1.0% test error in at most 10 epochs.\n"
            "convnet: the Keras mnist_convnet example on MNIST; target >= 99.1% test accuracy in 5 epochs.\n"
            "fashion-cnn: a small CNN with batch normalisation and dropout on Fashion-MNIST;\n"
            "target >= 91.5% test accuracy in 15 epochs.\n"
            "Each network is an ordinary 'layerwise train' run (model.npz, metrics.json, config.json and\n"
            "the plots in its folder) on all training images, with the test set evaluated once at the end;\n"
            "the settings and why they were chosen are in layerwise/experiments/.  A folder that holds\n"
            "the finished run of the same settings is reused (--overwrite trains again); Ctrl-C leaves a\n"
            "checkpoint, and the same command resumes from it."
        ),
    )
    p.add_argument("experiment", choices=EXPERIMENTS, help="the experiment: " + ", ".join(EXPERIMENTS))
    p.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help="train for N epochs instead of the configured number (quick checks)",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="advanced: train on the first N training images only (quick checks); the test set stays whole",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/EXPERIMENT)")
    add_data_dir(p)
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="hw2: train the networks at once on a local Dask cluster of N single-threaded worker processes "
        "(needs layerwise[sweep]; the results equal a serial run with --threads 1)",
    )
    p.add_argument(
        "--threads", type=positive_int, metavar="N", help="BLAS threads in this process (default: NumPy's own)"
    )
    p.add_argument("--overwrite", action="store_true", help="train again even where --out holds the finished runs")
    p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import get_experiment
    from ..experiments.common import ExperimentInterrupted

    experiment = get_experiment(args.experiment)
    if args.workers is not None and args.experiment != "hw2":
        raise UserError(f"--workers: {args.experiment} trains one network; only hw2 has several to spread")
    set_threads(args)
    out = Path(args.out if args.out is not None else Path("runs") / args.experiment)
    options: dict[str, Any] = {"epochs": args.epochs, "limit": args.limit, "data_dir": args.data_dir}
    if args.workers is not None:
        options["workers"] = args.workers
    if args.overwrite:
        _clear(out, experiment)
    verbose = 0 if args.quiet else (2 if show_progress(args) else 1)
    # Serially, Ctrl-C/SIGTERM ask the running network to checkpoint; with workers the cluster's client does.
    signals = StopSignals() if args.workers is None else contextlib.nullcontext()
    try:
        with signals:
            results = experiment.run(out_dir=out, verbose=verbose, cancel=getattr(signals, "token", None), **options)
    except ExperimentInterrupted:
        err(f"layerwise: interrupted; the unfinished networks hold checkpoints under {out}")
        err(f"layerwise: to resume, run the same command again (without --overwrite): layerwise reproduce "
            f"{args.experiment} --out {out}")  # fmt: skip
        return 130
    print()
    print(experiment.format_table(results))
    print(f"\nWrote {', '.join(experiment.OUTPUTS)} to {out}")
    return 0


def _clear(out: Path, experiment: Any) -> None:
    """--overwrite: forget the experiment's finished and unfinished runs in ``out`` (their folders' run files)."""
    from ..runs import RunFolder

    names = [spec["name"] for spec in getattr(experiment, "NETWORKS", [])]
    for folder in [out / name for name in names] if names else [out]:
        RunFolder(folder).clear()
