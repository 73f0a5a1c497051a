"""Experiments that reproduce results of the seed; run them with ``layerwise reproduce NAME``.

- ``hw2``: Problem 4, three networks on MNIST (see ``layerwise.experiments.hw2``).
"""

EXPERIMENTS = ("hw2",)

__all__ = ["EXPERIMENTS"]
