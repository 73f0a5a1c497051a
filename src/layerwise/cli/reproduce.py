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
            "convnet: the Keras mnist_convnet example on MNIST from seeds 0, 1, 2; target >= 99.1% mean\n"
            "test accuracy in 5 epochs (one seed varies by about as much as the mean lies above it).\n"
            "fashion-cnn: a small CNN with batch normalisation and dropout on Fashion-MNIST;\n"
            "target >= 91.5% test accuracy in 15 epochs.  --seeds N trains one of these from N seeds\n"
            "(in --out/seed-0, seed-1, ...) and judges the target on the mean test accuracy.\n"
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
        "--seeds",
        type=positive_int,
        metavar="N",
        help="lenet5, convnet, fashion-cnn: train the network from N seeds (0, 1, ...; default 3 for convnet, "
        "1 for the others), each a run in "
        "--out/seed-K, and report each seed's accuracies and their mean and standard deviation; the target is "
        "judged on the mean",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="train the networks (hw2's three, or --seeds' N) at once on a local Dask cluster of N "
        "single-threaded worker processes (needs layerwise[sweep]; the results equal a serial run with --threads 1)",
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
    from ..experiments.single import outputs, seed_list

    experiment = get_experiment(args.experiment)
    spec = getattr(experiment, "SPEC", None)  # one network (from one seed or several); hw2 has NETWORKS
    if args.seeds is not None and spec is None:
        raise UserError(f"--seeds: {args.experiment} trains its networks from the homework's own seeds; leave it out")
    if args.workers is not None and spec is not None and len(seed_list(spec, args.seeds)) == 1:
        raise UserError(
            f"--workers: {args.experiment} from one seed trains one network; give --seeds N to train N at once"
        )
    set_threads(args)
    out = Path(args.out if args.out is not None else Path("runs") / args.experiment)
    options: dict[str, Any] = {"epochs": args.epochs, "limit": args.limit, "data_dir": args.data_dir}
    if args.workers is not None:
        options["workers"] = args.workers
    if args.seeds is not None:
        options["seeds"] = args.seeds
    if args.overwrite:
        _clear(out, experiment, args.seeds)
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
    written = experiment.OUTPUTS if spec is None else outputs(spec, args.seeds)
    print(f"\nWrote {', '.join(written)} to {out}")
    return 0


def _clear(out: Path, experiment: Any, seeds: int | None) -> None:
    """--overwrite: forget the experiment's finished and unfinished runs in ``out`` (their folders' run files)."""
    from ..experiments.single import run_folders
    from ..runs import RunFolder

    if hasattr(experiment, "SPEC"):
        folders = run_folders(experiment.SPEC, out, seeds)
    else:
        folders = [out / spec["name"] for spec in experiment.NETWORKS]
    for folder in folders:
        RunFolder(folder).clear()
