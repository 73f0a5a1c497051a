"""``layerwise bench``: a thin entry to the benchmark harness in the repository's ``benchmarks/`` folder.

Benchmarks live outside the installed package (they need PyTorch and scikit-learn);
this command finds them beside the source tree of an editable install.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from .common import UserError

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
SCRIPTS = {"mnist": "bench_mnist.py", "cnn": "bench_cnn.py"}


def add_parser(sub: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        formatter_class=formatter,
        help="time training epochs against PyTorch (and scikit-learn): the MLP or the CNNs",
        description=(
            "Run benchmarks/bench_mnist.py (the MLP against PyTorch and scikit-learn) or, with\n"
            "'layerwise bench cnn', benchmarks/bench_cnn.py (LeNet-5 and the Keras convnet against\n"
            "PyTorch).  Options after the name go to the benchmark: 'layerwise bench mnist --help'.\n"
            "Needs a source checkout (pip install -e '.[bench]')."
        ),
        add_help=True,
    )
    p.add_argument("which", nargs="?", choices=tuple(SCRIPTS), default="mnist", help="mnist (default) or cnn")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options for the benchmark script")


def run_argv(argv: list[str]) -> int:
    """``layerwise bench [mnist|cnn] OPTIONS...``: everything after the name goes to the script."""
    which = "mnist"
    if argv and argv[0] in SCRIPTS:
        which, argv = argv[0], argv[1:]
    script = BENCHMARKS / SCRIPTS[which]
    if not script.is_file():
        raise UserError(f"{script}: not found; the benchmarks are in the source repository (pip install -e '.[bench]')")
    spec = importlib.util.spec_from_file_location(f"layerwise_bench_{which}", script)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
        return int(module.main(list(argv)) or 0)
    finally:
        sys.path.remove(str(BENCHMARKS))
