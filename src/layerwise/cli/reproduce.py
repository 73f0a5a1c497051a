"""``layerwise reproduce``: the homework's Problem 4 table and published CNN results, by one command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import positive_int, show_progress

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
            "Writes results.json, learning_curves.png (all three nets) and a.npz, b.npz, c.npz into --out.\n\n"
            "lenet5: LeNet-5 as modern frameworks write it (ReLU, max pooling) on MNIST, beside\n"
            "LeCun et al. 1998's 0.95% test error; target <= 1.0% test error in at most 10 epochs.\n"
            "convnet: the Keras mnist_convnet example on MNIST; target >= 99.1% test accuracy in 5 epochs.\n"
            "fashion-cnn: a small CNN with batch normalisation and dropout on Fashion-MNIST;\n"
            "target >= 91.5% test accuracy in 15 epochs.\n"
            "Each trains through the same run machinery as 'layerwise train' (a run folder per network\n"
            "under --out, with model.npz, metrics.json and the plots) on all training images, and\n"
            "evaluates the test set once at the end; the settings and why they were chosen are in\n"
            "layerwise/experiments/."
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
    p.add_argument(
        "--data-dir", metavar="DIR", help="folder holding the data sets (as $LAYERWISE_DATA) or their IDX files"
    )
    p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import get_experiment

    experiment = get_experiment(args.experiment)
    out = args.out if args.out is not None else str(Path("runs") / args.experiment)
    options: dict[str, Any] = {"epochs": args.epochs, "limit": args.limit, "data_dir": args.data_dir}
    verbose = 0 if args.quiet else (2 if show_progress(args) else 1)
    results = experiment.run(out_dir=out, verbose=verbose, **options)
    print()
    print(experiment.format_table(results))
    print(f"\nWrote {', '.join(experiment.OUTPUTS)} to {out}")
    return 0
