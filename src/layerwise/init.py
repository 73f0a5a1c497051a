"""Weight initialisers: ``name(n_in, n_out, rng) -> W`` of shape (n_in, n_out), in float64.

Drawing in float64 and casting once keeps float32 and float64 networks built
with the same seed equal up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import ConfigError

Initializer = Callable[[int, int, np.random.Generator], np.ndarray]


def he(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """He/Kaiming normal, N(0, 2/n_in): keeps ReLU activations' variance constant."""
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))


def xavier(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier uniform, U(-a, a) with a = sqrt(6 / (n_in + n_out))."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def uniform(n_in: int, n_out: int, rng: np.random.Generator, scale: float = 0.1) -> np.ndarray:
    """U(0, M) as in the seed's course code; M is ``scale`` (``init_scale`` on the network)."""
    return rng.uniform(0.0, scale, size=(n_in, n_out))


def zeros(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """All zeros: the seed's Problem 3 starts from W = 0."""
    return np.zeros((n_in, n_out))


INITIALIZERS: dict[str, Initializer] = {
    "he": he,
    "kaiming": he,
    "xavier": xavier,
    "glorot": xavier,
    "uniform": uniform,
    "zeros": zeros,
}


def get_initializer(name: str | Initializer) -> Initializer:
    """Look up an initialiser by (case-insensitive) name; callables pass through."""
    if callable(name):
        return name
    if not isinstance(name, str) or name.lower() not in INITIALIZERS:
        raise ConfigError(
            f"init: expected one of {sorted(INITIALIZERS)} or a callable (n_in, n_out, rng) -> array, got {name!r}"
        )
    return INITIALIZERS[name.lower()]
