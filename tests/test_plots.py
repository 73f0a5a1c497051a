"""Plots return Figures, take a History, never change the user's matplotlib backend."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import layerwise as lw
from layerwise import plots


def test_importing_layerwise_and_its_plots_keeps_the_backend() -> None:
    code = (
        "import matplotlib; matplotlib.use('svg'); before = matplotlib.get_backend(); "
        "import layerwise, layerwise.plots, layerwise.cli, layerwise.sweep.plot; "
        "import numpy as np; layerwise.plots.confusion_matrix(np.eye(3, dtype=int)); "
        "assert matplotlib.get_backend() == before, (before, matplotlib.get_backend()); print(before)"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "svg"


@pytest.fixture
def history() -> lw.callbacks.History:
    rng = np.random.default_rng(0)
    net = lw.NeuralNetwork(4, [(8, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net, optimizer=lw.optim.Adam(1e-2))
    x, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    return model.fit(x, y, epochs=3, batch_size=20, validation_split=0.2, verbose=0)


def test_every_plot_returns_a_figure_and_writes_a_png(history, tmp_path) -> None:
    made = {
        "curves": plots.learning_curves(history, tmp_path / "curves.png"),  # a History, not only its dict
        "dict": plots.learning_curves(history.history),
        "combined": plots.combined_learning_curves({"a": history, "b": history.history}, tmp_path / "comb.png"),
        "confusion": plots.confusion_matrix(np.array([[50, 2, 0], [1, 40, 9], [0, 0, 30]]), tmp_path / "cm.png"),
        "templates": plots.weight_templates(np.random.default_rng(1).standard_normal((16, 3)), tmp_path / "w.png"),
        "filters": plots.conv_filters(np.random.default_rng(2).standard_normal((6, 1, 5, 5)), tmp_path / "f.png"),
    }
    for name, fig in made.items():
        assert isinstance(fig, Figure), name
    for png in ("curves", "comb", "cm", "w", "f"):
        with Image.open(tmp_path / f"{png}.png") as image:
            assert image.size[0] > 100 and image.size[1] > 100


def test_epoch_ticks_are_integers_and_the_weight_templates_have_a_colour_bar(history) -> None:
    fig = plots.learning_curves(history)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    templates = plots.weight_templates(np.ones((16, 2)))
    assert len(templates.axes) == 3  # two templates and the colour bar


def test_confusion_matrix_colours_the_errors_by_row_share() -> None:
    matrix = np.array([[980, 20], [1, 99]])
    fig = plots.confusion_matrix(matrix)
    errors = fig.axes[0].get_images()[1].get_array()
    assert np.ma.is_masked(errors[0, 0]) and np.ma.is_masked(errors[1, 1])  # the diagonal is not coloured
    np.testing.assert_allclose([errors[0, 1], errors[1, 0]], [2.0, 1.0])  # percent of the true class
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"980", "20", "1", "99"} <= texts
