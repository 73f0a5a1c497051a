"""Shared fixtures for the core tests (the data tests have their own in tests/data/)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so every failure reproduces."""
    return np.random.default_rng(12345)
