"""Matrices typed on a command line, and small CSV data files, read without ``eval``.

Two notations are accepted for a matrix:

- nested brackets, as in Python or NumPy: ``"[[1, 0], [0, 1]]"`` (commas or spaces
  between entries), or one bracket level for a vector: ``"[0.5, 1, 2]"``;
- MATLAB style: rows separated by ``;`` (or new lines), entries by commas or spaces:
  ``"1 0; 0 1"``.

Every entry must be a finite decimal number (``-1.5``, ``.25``, ``2e-3``).  Errors are
``InputError``/``ShapeError`` whose message starts with the name of the option.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InputError, ShapeError

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_ENTRIES = 100_000  # far beyond any sheet a person reads; keeps a typo from eating memory


def parse_matrix(text: str, name: str = "matrix") -> np.ndarray:
    """Read ``text`` as a float64 array: 2-D for a matrix, 1-D for a one-level bracket list.

    ``name`` (e.g. ``"--x"``) starts every error message.
    """
    if not isinstance(text, str):
        raise InputError(f"{name}: expected a matrix as text such as '[[1,0],[0,1]]' or '1 0; 0 1', got {text!r}")
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{name}: expected a matrix such as '[[1,0],[0,1]]' or '1 0; 0 1', got an empty string")
    values = _Brackets(stripped, name).parse() if stripped.startswith("[") else _rows(stripped, name)
    array = np.array(values, dtype=np.float64)
    if array.size > _MAX_ENTRIES:
        raise ShapeError(f"{name}: {array.size} entries is too many for a worksheet (at most {_MAX_ENTRIES})")
    return array


def _number(token: str, name: str, where: str) -> float:
    if not _NUMBER.fullmatch(token):
        raise InputError(f"{name}: expected a number {where}, got {token!r}")
    value = float(token)
    if not math.isfinite(value):
        raise InputError(f"{name}: expected a finite number {where}, got {token!r}")
    return value


def _rows(text: str, name: str) -> list[list[float]]:
    """``"1 0; 0 1"`` -> [[1, 0], [0, 1]]; every row must have the same length."""
    rows: list[list[float]] = []
    lines = re.split(r"[;\n]", text)
    if len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # a trailing ';'
    for r, line in enumerate(lines):
        tokens = [t for t in re.split(r"[\s,]+", line.strip()) if t]
        if not tokens:
            raise InputError(f"{name}: row {r + 1} is empty in {text!r}")
        rows.append([_number(t, name, f"in row {r + 1}") for t in tokens])
        if len(rows[-1]) != len(rows[0]):
            raise ShapeError(
                f"{name}: expected every row to have {len(rows[0])} entries like row 1, "
                f"row {r + 1} has {len(rows[-1])} (a ragged matrix)"
            )
    return rows


class _Brackets:
    """A recursive-descent reader of ``[[1, 2], [3, 4]]`` (depth 1 or 2 only)."""

    def __init__(self, text: str, name: str) -> None:
        self.text, self.name, self.pos = text, name, 0

    def fail(self, message: str) -> InputError:
        return InputError(f"{self.name}: {message} at position {self.pos} of {self.text!r}")

    def peek(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> list:
        value = self.list(depth=0)
        if self.peek():
            raise self.fail(f"unexpected {self.peek()!r} after the closing bracket")
        if value and isinstance(value[0], list):
            lengths = [len(row) for row in value]
            if any(isinstance(v, float) for v in value):
                raise ShapeError(f"{self.name}: mixes numbers and rows in {self.text!r}")
            bad = next((i for i, n in enumerate(lengths) if n != lengths[0]), None)
            if bad is not None:
                raise ShapeError(
                    f"{self.name}: expected every row to have {lengths[0]} entries like row 1, "
                    f"row {bad + 1} has {lengths[bad]} (a ragged matrix)"
                )
        elif any(isinstance(v, list) for v in value):
            raise ShapeError(f"{self.name}: mixes numbers and rows in {self.text!r}")
        return value

    def list(self, depth: int) -> list:
        if self.peek() != "[":
            raise self.fail("expected '['")
        self.pos += 1
        items: list = []
        while True:
            char = self.peek()
            if char == "]":
                self.pos += 1
                break
            if not char:
                raise self.fail("missing ']'")
            if char == ",":
                if not items:
                    raise self.fail("expected a number or '[' before ','")
                self.pos += 1
                char = self.peek()
            if char == "[":
                if depth >= 1:
                    raise ShapeError(f"{self.name}: expected a matrix (2 bracket levels at most), got {self.text!r}")
                items.append(self.list(depth + 1))
            else:
                match = _NUMBER.match(self.text, self.pos)
                if not match:
                    end = self.pos
                    while end < len(self.text) and self.text[end] not in ",] \t":
                        end += 1
                    raise self.fail(f"expected a number, got {self.text[self.pos : end] or self.text[self.pos]!r}")
                items.append(_number(match.group(), self.name, f"at position {self.pos}"))
                self.pos = match.end()
        if not items:
            raise ShapeError(f"{self.name}: an empty list in {self.text!r}")
        return items


def read_csv(path: str | Path, name: str = "--data") -> np.ndarray:
    """A CSV file of numbers as a float64 (rows, columns) array; a first line that is not numbers is a header."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except UnicodeDecodeError:
        raise DataFormatError(f"{name} {path}: not a text (UTF-8) CSV file") from None
    rows: list[list[float]] = []
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line]
        if not any(cells):
            continue
        if i == 0 and not all(_NUMBER.fullmatch(c) for c in cells):
            continue  # a header line
        try:
            rows.append([_number(c, f"{name} {path}", f"on line {i + 1}") for c in cells])
        except InputError as e:
            raise DataFormatError(str(e)) from None
        if len(rows[-1]) != len(rows[0]):
            raise DataFormatError(
                f"{name} {path}: line {i + 1} has {len(rows[-1])} columns, the first data line {len(rows[0])}"
            )
        if len(rows) * len(rows[0]) > _MAX_ENTRIES:
            raise DataFormatError(f"{name} {path}: too large for a worksheet (at most {_MAX_ENTRIES} numbers)")
    if not rows:
        raise DataFormatError(f"{name} {path}: no data lines")
    return np.array(rows, dtype=np.float64)
