"""The exceptions layerwise raises.

Every error a user can cause is a ``LayerwiseError``; each also subclasses the
built-in exception it refines (``ValueError``, ``TypeError``, ...), so code that
already catches those keeps working.  Messages name the argument, what was
expected and what was given.
"""

from __future__ import annotations


class LayerwiseError(Exception):
    """Base class of every error raised on purpose by layerwise."""


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
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {pointer}")


class DataFormatError(LayerwiseError, ValueError):
    """A data file (IDX, image) is malformed: bad magic, truncated, sizes disagree."""


class ChecksumError(DataFormatError):
    """A downloaded or cached file does not have the expected SHA-256."""


class DatasetNotFoundError(LayerwiseError, FileNotFoundError):
    """A data set's files are nowhere on disk and could not be downloaded."""


class ModelFileError(LayerwiseError, ValueError):
    """A model or checkpoint file is not one layerwise wrote, or was damaged."""


class DivergenceError(LayerwiseError, FloatingPointError):
    """Training produced a NaN or infinite loss; the model keeps its last finite weights."""


class RunFolderError(LayerwiseError, ValueError):
    """A run folder cannot be used as asked: locked by another run, finished, or holding a different run."""
