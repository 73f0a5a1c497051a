"""``layerwise explain``: the command line of the worksheets (registered by ``layerwise.cli``).

``add_parser(sub, common, formatter)`` adds the subcommand; ``run(args)`` runs it.
Errors are ``LayerwiseError``s whose message starts with the option at fault
(``--x: ...``), which the main command line prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

from ..errors import ArchitectureParseError, ConfigError, LayerwiseError
from .parse import parse_matrix, read_csv

PROBLEMS = ("gradient-descent", "jacobian", "cross-entropy")
GD_DEFAULTS: dict[str, Any] = {
    "arch": "[(2,Linear)]",
    "init": "zeros",
    "loss": "crossEntropyLogit",
    "optimizer": "sgd",
    "lr": 1.0,
    "steps": 2,
    "layout": "seed",
    "seed": 0,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
}
GD_ONLY = ["arch", "x", "data", "init", "W", "b", "loss", "optimizer", "lr", "momentum", "beta1", "beta2", "eps"]
GD_ONLY += ["steps", "batch_size", "layout", "seed"]
# API argument names (the start of an error message) -> the option a user typed.
OPTION_NAMES = {
    "x": "--x",
    "y": "--y",
    "z": "--z",
    "W": "--W",
    "b": "--b",
    "loss": "--loss",
    "optimizer": "--optimizer",
    "init": "--init",
    "lr": "--lr",
    "momentum": "--momentum",
    "betas[0]": "--beta1",
    "betas[1]": "--beta2",
    "eps": "--eps",
    "steps": "--steps",
    "batch_size": "--batch-size",
    "digits": "--digits",
    "architecture": "--arch",
    "layers": "--arch",
    "n_inputs": "--x",
}

DESCRIPTION = """\
Write the worked solution of a small problem, step by step, in the homework's notation:

  layerwise explain                       the homework's Problem 3: two iterations of gradient descent
                                          for [(2,Linear)], zero weights, X = Y = I2, learning rate 1
  layerwise explain --arch ... --x ...    any small network: forward pass, loss, backward pass and
                                          update of every iteration, as matrices
  layerwise explain jacobian --z "1 2 3"  Problem 1: the softmax Jacobian p_j(delta_ij - p_i)
  layerwise explain cross-entropy --z "1000 1001 1002" --y "0 0 1"
                                          Problem 2: J and dJ/dz = p - y, with the log-sum-exp shift

Every number comes from a recorded run of the library's own Model.fit (layers, loss,
optimizer), in float64; the sheet ends with a check against an independent run."""

EPILOG = """\
matrices: "[[1,0],[0,1]]" or "1 0; 0 1" (rows separated by ';'); a matrix starting with '-'
needs '=': --x="-1 0; 0 1".  In the homework's layout (default) columns are samples: X is
(inputs x samples), Y (outputs x samples), W (outputs x inputs); --layout rows uses
layerwise's own (samples x features), W (inputs x outputs).  For crossEntropyLogit, Y is
one-hot or one row of labels.  --data FILE.csv: one sample per line, the inputs and then
the targets (the last n_out columns; one-hot for crossEntropyLogit); a header line is skipped.

examples:
  layerwise explain --digits 2
  layerwise explain --arch "[(2,ReLU),(2,Linear)]" --x "1 0 1; 0 1 1" --y "1 0 0; 0 1 1" --init he
  layerwise explain --loss mse --optimizer adam --lr 0.1 --batch-size 2 --steps 3 --data points.csv
  layerwise explain --format latex --out problem3.tex"""


def _float(minimum: float | None = None, inclusive: bool = True, below: float | None = None) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value) and (minimum is None or value > minimum or (inclusive and value == minimum))
        if not ok or (below is not None and value >= below):
            lo = "" if minimum is None else (">= " if inclusive else "> ") + f"{minimum:g}"
            hi = "" if below is None else f"< {below:g}"
            raise argparse.ArgumentTypeError(
                f"expected a finite number {' and '.join(filter(None, [lo, hi]))}, got {text!r}"
            )
        return value

    return parse


def _int(minimum: int, maximum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected an integer from {minimum} to {maximum}, got {text!r}")
        return value

    return parse


def add_parser(sub: Any, common: argparse.ArgumentParser, formatter: type) -> argparse.ArgumentParser:
    """Add ``explain`` to the subcommands ``sub`` of the main parser."""
    p = sub.add_parser(
        "explain",
        parents=[common],
        formatter_class=formatter,
        help="write the worked solution of a small gradient-descent problem, step by step",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "problem",
        nargs="?",
        choices=PROBLEMS,
        default="gradient-descent",
        metavar="PROBLEM",
        help="gradient-descent (default), jacobian or cross-entropy",
    )
    d = GD_DEFAULTS
    g = p.add_argument_group("gradient descent (the default problem)")
    g.add_argument("--arch", metavar="ARCH", help=f'the homework\'s notation (default "{d["arch"]}")')
    g.add_argument("--x", metavar="MATRIX", help="inputs X (default: Problem 3's I2)")
    g.add_argument("--y", metavar="MATRIX", help="targets Y (default: Problem 3's I2); with cross-entropy: y")
    g.add_argument("--data", metavar="FILE.csv", help="read X and Y from a CSV file instead of --x and --y")
    g.add_argument("--init", choices=("zeros", "he", "xavier", "uniform"), help="initial weights (default zeros)")
    g.add_argument("--W", action="append", metavar="MATRIX", help="initial W of a layer; once per layer, in order")
    g.add_argument("--b", action="append", metavar="VECTOR", help="initial b of a layer; once per layer, in order")
    g.add_argument("--loss", metavar="NAME", help="crossEntropyLogit (default), logistic or mse")
    g.add_argument("--optimizer", metavar="NAME", help="sgd (default), momentum or adam")
    g.add_argument("--lr", type=_float(0.0, inclusive=False), metavar="LR", help="learning rate (default 1)")
    g.add_argument("--momentum", type=_float(0.0, below=1.0), metavar="MU", help="momentum (default 0.9 for momentum)")
    g.add_argument("--beta1", type=_float(0.0, below=1.0), metavar="B1", help="Adam's beta1 (default 0.9)")
    g.add_argument("--beta2", type=_float(0.0, below=1.0), metavar="B2", help="Adam's beta2 (default 0.999)")
    g.add_argument("--eps", type=_float(0.0), metavar="EPS", help="Adam's epsilon (default 1e-8)")
    g.add_argument("--steps", type=_int(1, 1000), metavar="N", help="iterations (default 2)")
    g.add_argument("--batch-size", type=_int(1, 10**6), metavar="N", help="samples per step (default: all)")
    g.add_argument(
        "--layout",
        choices=("homework", "rows", "seed"),
        help="homework: columns are samples (default; 'seed' is the same); rows: layerwise's",
    )
    g.add_argument("--seed", type=_int(0, 2**32 - 1), metavar="N", help="seeds he/xavier/uniform weights (default 0)")
    j = p.add_argument_group("jacobian and cross-entropy (Problems 1 and 2)")
    j.add_argument("--z", metavar="VECTOR", help='the logits, e.g. "1 2 3" (cross-entropy takes --y too)')
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=("markdown", "latex", "text"), default="markdown", help="default markdown")
    o.add_argument("--digits", type=_int(0, 15), default=4, metavar="N", help="decimals printed (default 4)")
    o.add_argument("--out", metavar="FILE", help="write the sheet to FILE (atomically) instead of printing it")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the sheet, print or write it; 0 when its check passed, 1 when it did not."""
    try:
        sheet = _sheet(args)
    except LayerwiseError as e:
        raise _renamed(e) from None
    text = sheet.render(args.format)
    if args.out:
        from ..atomic import atomic_write

        with atomic_write(args.out) as f:
            f.write(text.encode("utf-8"))
        print(f"layerwise explain: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if sheet.verified is False:
        print("layerwise: error: the sheet's check failed (see its last section)", file=sys.stderr)
        return 1
    return 0


def _sheet(args: argparse.Namespace) -> Any:
    from . import cross_entropy, gradient_descent, jacobian

    if args.problem != "gradient-descent":
        given = [name for name in GD_ONLY if getattr(args, name) is not None]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{option}: only for gradient descent, not for '{args.problem}'")
        if args.z is None:
            raise ConfigError(f"--z: '{args.problem}' needs the logits, e.g. --z \"1 2 3\"")
        z = parse_matrix(args.z, "--z")
        if args.problem == "jacobian":
            if args.y is not None:
                raise ConfigError("--y: only for cross-entropy and gradient descent, not for 'jacobian'")
            return jacobian(z, digits=args.digits)
        if args.y is None:
            raise ConfigError('--y: cross-entropy needs the target, e.g. --y "0 0 1" (or a class label)')
        return cross_entropy(z, parse_matrix(args.y, "--y"), digits=args.digits)
    if args.z is not None:
        raise ConfigError("--z: only for 'jacobian' and 'cross-entropy' (layerwise explain jacobian --z ...)")
    options = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in GD_DEFAULTS.items()}
    if options["layout"] == "homework":  # the library's name for the homework's layout is "seed"
        options["layout"] = "seed"
    if str(options["optimizer"]).lower() != "adam":
        for name in ("beta1", "beta2", "eps"):
            if getattr(args, name) is not None:
                raise ConfigError(f"--{name}: only for --optimizer adam")
    arch = _arch(options["arch"])  # checked here, so that its errors name --arch
    x = y = None
    if args.data is not None:
        if args.x is not None or args.y is not None:
            raise ConfigError("--data: give either --data or --x and --y, not both")
        x, y = _split_data(args.data, arch, options["layout"])
    elif args.x is not None or args.y is not None:
        if args.x is None or args.y is None:
            raise ConfigError(f"{'--x' if args.x is None else '--y'}: give both --x and --y (or neither)")
        x, y = parse_matrix(args.x, "--x"), parse_matrix(args.y, "--y")
    W = None if args.W is None else [parse_matrix(t, f"--W[{k + 1}]") for k, t in enumerate(args.W)]
    b = None if args.b is None else [parse_matrix(t, f"--b[{k + 1}]") for k, t in enumerate(args.b)]
    return gradient_descent(
        options["arch"],
        x,
        y,
        init=options["init"],
        W=W,
        b=b,
        loss=options["loss"],
        optimizer=options["optimizer"],
        lr=options["lr"],
        momentum=args.momentum,
        betas=(options["beta1"], options["beta2"]),
        eps=options["eps"],
        steps=options["steps"],
        batch_size=args.batch_size,
        layout=options["layout"],
        digits=args.digits,
        seed=options["seed"],
    )


def _arch(text: str) -> list[tuple[int, str]]:
    from ..arch import parse_architecture

    try:
        return parse_architecture(text)
    except ArchitectureParseError as e:
        raise ConfigError(f"--arch {text!r}: {str(e).splitlines()[0].rstrip(':')}") from None


def _split_data(path: str, arch: list[tuple[int, str]], layout: str) -> tuple[Any, Any]:
    """A CSV of samples (rows): inputs, then the last n_out columns as targets; in the sheet's layout."""
    data = read_csv(path, "--data")
    n_out = arch[-1][0]
    if data.shape[1] <= n_out:
        raise ConfigError(
            f"--data {path}: expected the inputs and then {n_out} target column(s) (the last layer's units), "
            f"got {data.shape[1]} column(s)"
        )
    x, y = data[:, :-n_out], data[:, -n_out:]
    return (x.T, y.T) if layout == "seed" else (x, y)


def _renamed(error: LayerwiseError) -> LayerwiseError:
    """The same error, its message starting with the command-line option instead of the API's argument name."""
    message = str(error)
    match = re.match(r"([A-Za-z_]\w*)(\[\d+\])?:", message)
    if not match:
        return error
    name, index = match.group(1), match.group(2) or ""
    option = OPTION_NAMES.get(name + index) or OPTION_NAMES.get(name)
    if option is None:
        return error
    suffix = index if option in ("--W", "--b") else ""
    try:
        return type(error)(option + suffix + message[match.end() - 1 :])
    except TypeError:  # an error class with other constructor arguments: keep it as it is
        return error
