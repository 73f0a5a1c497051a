"""The ``layerwise`` command line (also ``python -m layerwise``): one small module per command.

===============  ==========================================================
``train.py``     ``layerwise train``: one run through ``layerwise.runs.train_run``
``inspect.py``   ``evaluate`` and ``summary`` of a saved model
``predict.py``   ``predict`` on images and IDX files
``reproduce.py`` ``reproduce hw2 | lenet5 | convnet | fashion-cnn``
``bench.py``     ``bench``: the harness in the repository's ``benchmarks/``
``common.py``    the parser class, number types, model and data loading
===============  ==========================================================

``sweep``, ``explain``, ``export`` and ``import`` come from their packages
(``layerwise.sweep``, ``layerwise.explain``, ``layerwise.interop``).  No training
logic lives here: the commands parse options and call the library.

Exit codes: 0 success; 2 a user error (bad option or number, unknown data set,
malformed architecture, missing or damaged file, wrong image size), reported as
one line ``layerwise: error: ...``; 1 a runtime failure (training diverged, a full
disk, an unexpected I/O error); 130 / 143 stopped by SIGINT / SIGTERM (the message
says whether the run folder is complete or a checkpoint was written).  ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import DivergenceError, FileWriteError, LayerwiseError
from ..metrics import confusion, per_class
from . import bench, inspect, predict, reproduce, train
from .common import PROG, Formatter, Parser, UserError, err, one_line

__all__ = ["UserError", "build_parser", "confusion", "main", "per_class"]

EPILOG = """\
examples:
  layerwise train --dataset mnist --arch "[(140,ReLU),(10,Linear)]" --epochs 10 --out runs/mlp
  layerwise train --arch "[conv(32,3),relu,maxpool(2),(10,Linear)]" --epochs 2 --out runs/cnn
  layerwise evaluate runs/mlp --dataset mnist
  layerwise predict runs/mlp digit.png
  layerwise summary runs/mlp
  layerwise reproduce hw2      (also: lenet5, convnet, fashion-cnn)
  layerwise sweep sweep.toml --out sweeps/mlp      (grid/random search on Dask)
  layerwise explain            (the homework's Problem 3 worked step by step; also: jacobian, cross-entropy)
  layerwise export runs/mlp/model.npz mlp.onnx     (also: import, --format safetensors)
  layerwise bench --json bench.json                (layerwise bench cnn: the CNN benchmark)

Data sets are looked for in --data-dir, then $LAYERWISE_DATA, then the cache (both folders may hold
the data sets' folders, e.g. mnist/, or the four IDX files themselves).
Exit codes: 0 ok, 2 user error (one line 'layerwise: error: ...'), 1 runtime failure,
130/143 stopped by SIGINT/SIGTERM (the message says whether a checkpoint was written)."""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the whole command line."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite a --debug given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback when something fails"
    )
    parser = Parser(
        prog=PROG,
        formatter_class=Formatter,
        description="layerwise: train, evaluate, explain and use NumPy neural networks on MNIST-style data.",
        epilog=EPILOG,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train.add_parser(sub, common, Formatter)
    inspect.add_parsers(sub, common, Formatter)
    predict.add_parser(sub, common, Formatter)
    reproduce.add_parser(sub, common, Formatter)

    from ..explain import cli as explain_cli
    from ..interop.cli import add_parsers as add_interop_parsers
    from ..sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(sub, common, Formatter)
    bench.add_parser(sub, common, Formatter)
    explain_cli.add_parser(sub, common, Formatter)
    add_interop_parsers(sub, common, Formatter)
    return parser


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    err(f"{PROG}: error: {one_line(message)}")
    return code


def _one_line_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """The library's guards (input scaling, stacked linear layers) as one line, without a source line."""
    err(f"{PROG}: warning: {one_line(str(message))}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to sys.exit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        warnings.showwarning = _one_line_warning
    try:
        if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
            return bench.run_argv([a for a in argv[1:] if a != "--debug"])
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return int(args.func(args) or 0)
    except UserError as e:
        return _fail(str(e), 2, debug)
    except DivergenceError as e:
        return _fail(str(e), 1, debug)
    except FileWriteError as e:  # a full disk is not the user's typing mistake
        return _fail(str(e), 1, debug)
    except LayerwiseError as e:  # bad input: data set, architecture, model file, image size...
        return _fail(str(e), 2, debug)
    except MemoryError:
        return _fail("not enough memory for this network or data (a smaller --arch or --batch-size?)", 2, debug)
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
        err(f"{PROG}: interrupted")
        return 130


def console() -> None:
    """The ``layerwise`` script and ``python -m layerwise``: ``main()`` in a process of its own.

    SIGTERM ends a command by unwinding it (exit 143, files closed, no traceback) rather than
    killing the process wherever it is; ``train`` and ``reproduce`` install their own handlers
    while they run (``StopSignals``: checkpoint, then exit).  Once ``main()`` has returned the
    work is done and written, so a late SIGINT or SIGTERM is ignored: it must not turn a
    finished run into a traceback or a process killed during interpreter shutdown.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _os_message(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)
