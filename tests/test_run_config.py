"""``RunConfig``'s loss and init options reach the model that ``train_run`` builds."""

from __future__ import annotations

import numpy as np
import pytest

from layerwise.errors import ConfigError
from layerwise.runs import RunConfig
from layerwise.runs.train import build_model


def first_weights(config: RunConfig) -> np.ndarray:
    model = build_model(config, (784,))
    return next(layer for layer in model.net.layers if layer.params).params["W"]


def test_init_glorot_and_he_give_their_bounds_and_auto_is_he_before_relu() -> None:
    glorot = first_weights(RunConfig(init="glorot"))
    he = first_weights(RunConfig(init="he"))
    auto = first_weights(RunConfig())
    bound = np.sqrt(6 / (784 + 140))  # Glorot-uniform (Keras' default)
    assert np.abs(glorot).max() <= bound and np.abs(glorot).max() > 0.95 * bound
    assert np.std(he) == pytest.approx(np.sqrt(2 / 784), rel=0.05)  # He: variance 2 / fan_in
    assert np.array_equal(auto, he)  # the first Dense feeds a ReLU


def test_mse_loss_is_accepted_and_unknown_losses_and_inits_are_refused() -> None:
    assert type(build_model(RunConfig(loss="mse"), (784,)).loss).__name__ == "MSE"
    with pytest.raises(ConfigError, match="loss: expected one of crossEntropyLogit, mse, got 'hinge'"):
        RunConfig(loss="hinge")
    with pytest.raises(ConfigError, match="init: expected one of auto, he, glorot, got 'zeros'"):
        RunConfig(init="zeros")
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in ("init",)}
    assert RunConfig.from_dict(old).init == "auto"  # a config.json written before init existed still loads
