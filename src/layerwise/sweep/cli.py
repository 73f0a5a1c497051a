"""``layerwise sweep SPEC.toml --out DIR``: the command line of a sweep."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from .results import SORTABLE

DESCRIPTION = """\
Run every trial of SPEC (a TOML file) as one training run, in parallel, and collect the results:

  [train]                 # any 'layerwise train' option, the same for every trial
  dataset = "mnist"
  epochs = 3
  [grid]                  # every combination of these values
  arch = ["[(32,ReLU),(10,Linear)]", "[(140,ReLU),(10,Linear)]"]
  lr = [1e-3, 3e-3]
  # or [random]: trials = N, seed = S and distributions, e.g.
  #   lr = { loguniform = [1e-4, 1e-2] }   momentum = { uniform = [0.0, 0.9] }
  #   epochs = { int = [2, 6] }            batch_size = { choice = [32, 64] }

Writes into DIR: sweep.toml (the spec), trials/<id>/ (one run folder per trial; the id is a
hash of the trial's configuration), results.csv and results.json (one row per trial: the
swept values, status, validation/test accuracy and loss, epochs, seconds, the error of a
failed trial) and sweep.png (the --sort metric against each swept option).

By default the trials run on a local Dask cluster: one single-threaded worker process per
core (BLAS pinned to one thread each).  --scheduler (or $DASK_SCHEDULER_ADDRESS) runs them
on an existing Dask cluster whose workers share DIR's file system and have layerwise
installed.  A trial that fails (e.g. diverges) is recorded as failed and the sweep goes on;
a trial whose worker dies is run again on another worker from its last checkpoint.
Ctrl-C stops the sweep (running trials checkpoint first) with exit code 130; the same
command again skips the finished trials and resumes the others.  A changed spec may run
into the same DIR: the trials it shares with the old one are reused, not run again."""


def add_parser(sub: Any, common: argparse.ArgumentParser, formatter: type[argparse.HelpFormatter]) -> None:
    """Add the ``sweep`` command to the subparsers ``sub`` of the main parser."""
    p = sub.add_parser(
        "sweep",
        parents=[common],
        formatter_class=formatter,
        help="run a grid or random search of training runs in parallel (Dask) and tabulate the results",
        description=DESCRIPTION,
        epilog=(
            "examples:\n"
            "  layerwise sweep sweep.toml --out sweeps/mlp                 # a local cluster, one worker per core\n"
            "  layerwise sweep sweep.toml --out sweeps/mlp --scheduler tcp://head:8786\n"
            "  layerwise sweep sweep.toml --out sweeps/mlp --serial        # no Dask: one trial after another"
        ),
    )
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep's spec")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (rerun into it to resume)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, metavar="N", help="local worker processes (default: cores)")
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask scheduler, e.g. tcp://HOST:8786 ($DASK_SCHEDULER_ADDRESS)",
    )
    where.add_argument("--serial", action="store_true", help="run the trials in this process, without Dask")
    p.add_argument(
        "--sort",
        choices=SORTABLE,
        default="val_accuracy",
        metavar="METRIC",
        help=f"sort the table and plot by METRIC: {', '.join(SORTABLE)} (default val_accuracy)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (on every worker)")
    p.add_argument(
        "--checkpoint-every", type=_positive_int, default=1, metavar="N", help="trials checkpoint every N epochs (1)"
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None, help="show the progress bar even off a terminal")
    bar.add_argument("--quiet", action="store_true", help="no progress bar and no line per trial")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .driver import SweepInterrupted, run
    from .results import format_table
    from .spec import load_spec

    params = load_spec(args.spec).params
    try:
        rows = run(
            args.spec,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            serial=args.serial,
            sort=args.sort,
            data_dir=args.data_dir,
            checkpoint_every=args.checkpoint_every,
            progress=False if args.quiet else args.progress,
            log=_silent if args.quiet else None,
        )
    except SweepInterrupted as e:
        finished = sum(r["status"] == "finished" for r in e.rows)
        print(
            f"layerwise: sweep interrupted: {finished} of {len(e.rows)} trials finished (results so far in "
            f"{e.out_dir / 'results.csv'}); to resume, run the same command again: layerwise sweep "
            f"{shlex.quote(args.spec)} --out {shlex.quote(args.out)}",
            file=sys.stderr,
        )
        return 130
    print(format_table(rows, params, args.sort))
    return 1 if rows and all(r["status"] == "failed" for r in rows) else 0


def _silent(message: str) -> None:
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
