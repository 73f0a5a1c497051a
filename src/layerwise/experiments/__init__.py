"""Experiments that reproduce published results; run them with ``layerwise reproduce NAME``.

- ``hw2``: the seed's Problem 4, three MLPs on MNIST (``hw2.py``).
- ``lenet5``: LeNet-5 on MNIST beside LeCun et al. 1998 (``lenet5.py``).
- ``convnet``: the Keras "Simple MNIST convnet" example (``convnet.py``).
- ``fashion-cnn``: a small CNN on Fashion-MNIST (``fashion_cnn.py``).

Each module has ``run(out_dir, epochs=, limit=, data_dir=, verbose=, log=, cancel=, workers=) -> summary``,
``format_table(summary) -> str`` and ``OUTPUTS`` (what ``run`` writes); the one-network experiments
also ``SPEC`` and ``seeds=`` (``single.py``: one run, or one per seed and their mean).
``common.py`` holds what they share: every network is trained by ``layerwise.runs.train_run``,
the function behind ``layerwise train`` and ``layerwise sweep``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

EXPERIMENTS = ("hw2", "lenet5", "convnet", "fashion-cnn")

__all__ = ["EXPERIMENTS", "get_experiment"]


def get_experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (one of ``EXPERIMENTS``)."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment: expected one of {', '.join(EXPERIMENTS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
