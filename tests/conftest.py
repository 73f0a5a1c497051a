"""Shared fixtures for the core tests (the data tests have their own in tests/data/)."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Training's parallel regions (layers/_fast/team.py) compile kernels for each layer shape,
# 2-3 times longer than the plain ones: only the tests about them turn them on (``regions``).
# Everywhere else, the command-line runs in subprocesses included, CNN training runs on the
# Python threads, which test_team_regions and test_conv_kernels check give the same numbers.
os.environ.setdefault("LAYERWISE_TEAM", "0")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so every failure reproduces."""
    return np.random.default_rng(12345)


@pytest.fixture
def regions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training's passes run as parallel regions in this test, as they do outside the tests."""
    from layerwise.layers._fast import team

    monkeypatch.setenv("LAYERWISE_TEAM", "1")
    monkeypatch.setattr(team, "_state", {})  # probe again, regions allowed
    assert team.available(), "parallel regions need SciPy and Numba's OpenMP or TBB layer (pip install -e .[test])"
