"""Optional dependencies of ``layerwise.interop``: imported only when a function needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import LayerwiseError


class MissingDependencyError(LayerwiseError, ImportError):
    """An optional package that this function needs (onnx, torch) is not installed."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """``import module``, or MissingDependencyError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs the {module.split('.')[0]!r} package, which is not installed: "
            f"pip install 'layerwise[{extra}]'"
        ) from None
