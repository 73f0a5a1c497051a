"""What every ``layerwise`` subcommand shares: the parser class, number types, model and data loading.

Errors a user can cause raise ``UserError`` (or a ``layerwise.errors`` exception):
``main`` prints them as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from ..errors import ArchitectureParseError

PROG = "layerwise"
DATASETS = ("mnist", "fashion-mnist", "digits")


class UserError(Exception):
    """A mistake on the command line: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors raise UserError: one line on stderr, code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see '{self.prog} --help')")


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def number(convert: Any, minimum: float, inclusive: bool, expected: str) -> Any:
    """An argparse ``type=`` that parses with ``convert`` and checks a finite value above ``minimum``.

    Only ASCII digits: ``int()`` would also take '١' or '²'-like characters, which --arch refuses.
    """

    def parse(text: str) -> Any:
        if not text.isascii():
            raise argparse.ArgumentTypeError(f"expected {expected} in ASCII digits, got {text!r}")
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = number(int, 1, True, "a positive integer")
non_negative_int = number(int, 0, True, "an integer >= 0")
positive_float = number(float, 0.0, False, "a positive finite number")
non_negative_float = number(float, 0.0, True, "a finite number >= 0")


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def arch_error(text: str, e: ArchitectureParseError) -> UserError:
    first = str(e).splitlines()[0].rstrip(":")
    return UserError(f"--arch {text!r}: {first}")


def model_path(text: str) -> Path:
    path = Path(text)
    return path / "model.npz" if path.is_dir() else path


def load_model(text: str) -> Any:
    """The Model in a .npz file or run folder, or in an .onnx file (layerwise.interop reads those)."""
    path = model_path(text)
    if Path(text).is_dir() and not path.is_file():
        found = sorted(p.name for p in Path(text).glob("*.npz"))
        hint = f"; it holds {', '.join(found)}: name one" if found else ""
        raise UserError(f"{text}: a folder without model.npz{hint}")
    if path.suffix.lower() == ".onnx":
        from ..interop import load_onnx_model

        return load_onnx_model(path)
    from ..io import load_model as load_npz

    return load_npz(path)


def load_dataset(name: str, data_dir: str | None, images: bool) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): uint8 images (n, 1, H, W) with ``images``, else rows (n, H·W)."""
    from ..data import load

    (x, y), (xt, yt) = load(name, data_dir)
    if images:  # one channel: NCHW
        return x.reshape(len(x), 1, *x.shape[1:]), y, xt.reshape(len(xt), 1, *xt.shape[1:]), yt
    return x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt


def takes_images(model: Any) -> bool:
    return model.net.input_shape is not None and len(model.net.input_shape) == 3


def check_inputs(model: Any, x: np.ndarray, dataset: str) -> None:
    """The model must take x's samples: images (1, H, W) or rows (H·W,), as ``load_dataset`` gives them."""
    n_features = int(np.prod(x.shape[1:]))
    if model.net.n_inputs != n_features:
        raise UserError(f"the model takes {model.net.n_inputs} inputs but {dataset} images have {n_features} pixels")
    if tuple(model.net.input_shape) != tuple(x.shape[1:]):
        shown = "x".join(map(str, model.net.input_shape))
        raise UserError(f"the model takes samples of shape {shown}, but {dataset} images are one channel")


def flatten_note(arch: str | None, net: Any) -> str | None:
    """Which Flatten layer the architecture string did not name (put in before the first Dense layer)."""
    from ..arch import parse_layers

    try:
        named = any(spec.kind == "flatten" for spec in parse_layers(arch)) if arch else True
    except ArchitectureParseError:
        return None
    found = [i for i, layer in enumerate(net.layers) if type(layer).__name__ == "Flatten"]
    if named or not found:
        return None
    return f"Layer {found[0]} (Flatten) was put in automatically before the first Dense layer after image layers."


def per_class_table(rows: list[dict[str, Any]]) -> str:
    width = max(5, *(len(r["name"]) for r in rows))
    lines = [f"{'class':<{width}}  precision  recall  support", "-" * (width + 28)]
    lines += [
        f"{r['name']:<{width}}  {100 * r['precision']:8.2f}%  {100 * r['recall']:5.2f}%  {r['support']:7d}"
        for r in rows
    ]
    return "\n".join(lines)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    """--data-dir, as every command that reads a data set takes it."""
    p.add_argument(
        "--data-dir", metavar="DIR", help="folder holding the data sets (as $LAYERWISE_DATA) or their IDX files"
    )


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, unless --progress asks for them (logs stay free of \\r updates)."""
    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def set_threads(args: argparse.Namespace) -> None:
    """--threads N: the thread count of BLAS and of the compiled CNN kernels for this process
    (resume is bit-identical only with the same count)."""
    threads = getattr(args, "threads", None)
    if threads:
        from ..kernels import set_threads as set_process_threads

        if not set_process_threads(threads):
            raise UserError("--threads needs threadpoolctl (pip install threadpoolctl)")


class StopSignals:
    """While active, SIGINT/SIGTERM request a stop through the run's cancel token; a second one aborts."""

    def __init__(self) -> None:
        from ..runs import CancelToken

        self.token = CancelToken()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signum = signum
        self.token.request(signal.Signals(signum).name)  # no printing here: the handler may interrupt a write

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
