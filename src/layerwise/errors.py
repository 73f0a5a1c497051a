"""The exceptions layerwise raises.

Every error a user can cause is a ``LayerwiseError``; each also subclasses the
built-in exception it refines (``ValueError``, ``TypeError``, ...), so code that
already catches those keeps working.  Messages name the argument, what was
expected and what was given.
"""

from __future__ import annotations

import re

#: Longest message an error carries; longer ones (a list of 200,000 zip members) are cut.
MAX_MESSAGE = 2000

# Control characters other than the newline (ANSI escapes, carriage returns, bidi overrides...):
# text from a file or an argument must not be able to repaint the user's terminal.
_UNPRINTABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with control characters escaped (``\\x1b``), cut to ``limit`` characters if given."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 40] + f"... [{len(text) - limit + 40:,} more characters]"
    return text


class LayerwiseError(Exception):
    """Base class of every error raised on purpose by layerwise.

    A single-string message is made printable (control characters escaped) and cut
    to ``MAX_MESSAGE`` characters: messages quote names and values from files.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (printable(args[0], MAX_MESSAGE),)
        super().__init__(*args)


class InputError(LayerwiseError, ValueError):
    """An argument has the right type but a wrong value (empty, NaN, out of range...)."""


class ShapeError(InputError):
    """An array has the wrong rank or size for where it was passed."""


class LabelError(InputError):
    """Labels outside ``[0, n_classes)`` or one-hot rows that are not one-hot."""


class DTypeError(LayerwiseError, TypeError):
    """An array or argument has a type layerwise cannot use (object, string, ...)."""


class ConfigError(LayerwiseError, ValueError):
    """An unknown name (activation, loss, optimizer, ...) or an invalid hyper-parameter."""


class ArchitectureParseError(ConfigError):
    """An architecture string such as ``"[(140,ReLU),(10,Linear)]"`` does not parse.

    ``position`` is the 0-based character offset of the problem in ``text``.
    """

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        # A long text is shown as a window around the position, so that the pointer line survives.
        start = max(0, position - 40)
        shown = text[start : position + 40]
        lead = "..." if start else ""
        tail = "..." if position + 40 < len(text) else ""
        pointer = " " * (len(lead) + position - start) + "^"
        super().__init__(f"{message} at position {position}:\n  {lead}{shown}{tail}\n  {pointer}")


class DataFormatError(LayerwiseError, ValueError):
    """A data file (IDX, image) is malformed: bad magic, truncated, sizes disagree."""


class ChecksumError(DataFormatError):
    """A downloaded or cached file does not have the expected SHA-256."""


class DatasetNotFoundError(LayerwiseError, FileNotFoundError):
    """A data set's files are nowhere on disk and could not be downloaded."""


class ModelFileError(LayerwiseError, ValueError):
    """A model or checkpoint file is not one layerwise wrote, or was damaged."""


class NonFiniteError(LayerwiseError, FloatingPointError):
    """A network's outputs (or loss) are NaN or infinite, so there is no result to give."""


class DivergenceError(NonFiniteError):
    """Training produced a NaN or infinite loss; the model keeps weights with finite outputs."""


class FileWriteError(LayerwiseError, OSError):
    """A file could not be written (disk full, permission denied...); the previous file is unchanged.

    ``FileWriteError(errno, what happened, path)``: ``path`` is the file asked for, never a
    temporary file; ``errno`` is the operating system's (``errno.ENOSPC`` for a full disk).
    """

    def __str__(self) -> str:
        return printable(f"{self.filename}: {self.strerror}", MAX_MESSAGE)


class RunFolderError(LayerwiseError, ValueError):
    """A run folder cannot be used as asked: locked by another run, finished, or holding a different run."""
