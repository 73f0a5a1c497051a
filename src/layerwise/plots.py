"""Plots: learning curves, confusion matrix, weight templates, conv filters.

Each function returns a matplotlib ``Figure`` (shown by Jupyter as it is) and, given
a ``path``, also writes it (atomically; PNG unless the suffix says otherwise).  The
figures are made with ``matplotlib.figure.Figure``, not pyplot: importing this
module never changes the user's backend, and no display is needed to save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["combined_learning_curves", "confusion_matrix", "conv_filters", "learning_curves", "weight_templates"]


_DPI = 110


def _epochs(values: Sequence[float]) -> np.ndarray:
    return np.arange(1, len(values) + 1)


def _history(history: Any) -> Mapping[str, Sequence[float]]:
    """A ``History`` (its ``.history``) or the dict itself."""
    return getattr(history, "history", history)


def _integer_epochs(*axes: Any) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: str | Path | None) -> Figure:
    """Write the figure atomically when a path is given (a full disk leaves the old plot, never a truncated one)."""
    if path is None:
        return fig
    from .atomic import atomic_write

    path = Path(path)
    # A file object has no name to guess the format from: take it from the suffix (PNG by default).
    fmt = path.suffix[1:].lower() if path.suffix[1:].lower() in fig.canvas.get_supported_filetypes() else "png"
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt, dpi=_DPI)
    return fig


def learning_curves(history: Any, path: str | Path | None = None, title: str | None = None) -> Figure:
    """Loss (left) and accuracy (right) per epoch, training and validation; ``history`` a History or its dict."""
    history = _history(history)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, label, style in (("loss", "train", "-o"), ("val_loss", "validation", "--s")):
        if history.get(key):
            ax_loss.plot(_epochs(history[key]), history[key], style, label=label, markersize=3)
    for key, label, style in (("accuracy", "train", "-o"), ("val_accuracy", "validation", "--s")):
        if history.get(key):
            ax_acc.plot(_epochs(history[key]), 100 * np.asarray(history[key]), style, label=label, markersize=3)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    _integer_epochs(ax_loss, ax_acc)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def combined_learning_curves(
    runs: Mapping[str, Any], path: str | Path | None = None, title: str | None = None
) -> Figure:
    """Several runs in one figure: loss and accuracy per epoch, train solid and validation/test dashed."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, history) in enumerate(runs.items()):
        history = _history(history)
        color = colors[i % len(colors)]
        for ax, key, scale in ((ax_loss, "loss", 1), (ax_acc, "accuracy", 100)):
            if history.get(key):
                ax.plot(
                    _epochs(history[key]), scale * np.asarray(history[key]), "-", color=color, label=f"{label} train"
                )
            if history.get(f"val_{key}"):
                ax.plot(
                    _epochs(history[f"val_{key}"]),
                    scale * np.asarray(history[f"val_{key}"]),
                    "--",
                    color=color,
                    label=f"{label} test",
                )
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    _integer_epochs(ax_loss, ax_acc)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(
    matrix: np.ndarray,
    path: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """``matrix[true, predicted]`` with the errors made visible.

    Off-diagonal cells are coloured by the share of their row (the true class) that
    went there, on a scale up to the largest such share, so that a 2% confusion is
    not lost beside 98% correct cells; the diagonal is drawn in grey; every cell
    shows its count.
    """
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    errors = np.where(np.eye(n, dtype=bool), np.nan, share)
    top = float(np.nanmax(errors)) if n > 1 and np.isfinite(errors).any() else 1.0
    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(np.where(np.eye(n, dtype=bool), 1.0, np.nan), cmap="Greys", vmin=0, vmax=4)  # the diagonal, muted
    image = ax.imshow(100 * errors, cmap="Reds", vmin=0, vmax=100 * (top or 1.0))
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the true class (off the diagonal)")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    wide = max(map(len, names)) > 2
    ax.set_xticklabels(names, rotation=45 if wide else 0, ha="right" if wide else "center")
    ax.set_yticklabels(names)
    for i in range(n):
        for j in range(n):
            dark = i != j and top and errors[i, j] > top / 2
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    return _save(fig, path)


def weight_templates(
    W: np.ndarray, path: str | Path | None = None, class_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """The columns of a linear layer's W (n_in, n_classes) as side×side images, one per class.

    Red pixels push the class's score up, blue ones down; all templates share one
    symmetric colour scale, shown by the colour bar.
    """
    W = np.asarray(W, dtype=np.float64)
    side = int(round(W.shape[0] ** 0.5))
    if side * side != W.shape[0]:
        raise ValueError(f"weight_templates: {W.shape[0]} inputs are not a square image")
    n = W.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    cols = min(n, 5)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.1 * cols + 1.0, 2.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    limit = float(np.abs(W).max()) or 1.0
    image = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        image = ax.imshow(W[:, k].reshape(side, side), cmap="seismic", vmin=-limit, vmax=limit)
        ax.set_title(names[k], fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label="weight")
    fig.suptitle(title or "learned weight templates")
    return _save(fig, path)


def conv_filters(
    W: np.ndarray,
    path: str | Path | None = None,
    title: str | None = None,
    max_filters: int = 64,
    max_channels: int = 8,
) -> Figure:
    """A convolution's kernels W (filters, in_channels, kh, kw) as a grid of small images, with a colour bar.

    One input channel (a first layer on grayscale images): one tile per filter,
    in a near-square grid.  Several channels: one row per filter, one column per
    input channel.  All tiles share one symmetric colour scale (red positive, blue
    negative), so that the colour bar reads the same for every kernel; at most
    ``max_filters`` filters and ``max_channels`` channels are drawn.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 4:
        raise ValueError(f"conv_filters: expected W of shape (filters, channels, kh, kw), got {W.shape}")
    n_filters, n_channels = min(W.shape[0], max_filters), min(W.shape[1], max_channels)
    if n_channels == 1:
        cols = int(np.ceil(np.sqrt(n_filters if n_filters <= 16 else 2 * n_filters)))  # wider than tall

        rows = -(-n_filters // cols)
        tiles = [(W[f, 0], f"{f}") for f in range(n_filters)]
    else:
        rows, cols = n_filters, n_channels
        tiles = [(W[f, c], f"{f}·{c}") for f in range(n_filters) for c in range(n_channels)]
    limit = float(np.abs(W[:n_filters, :n_channels]).max()) or 1.0
    size = 1.1 if cols <= 8 else 0.8
    fig = Figure(figsize=(size * cols + 1.4, size * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= len(tiles):
            ax.axis("off")
            continue
        kernel, label = tiles[k]
        image = ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(label, fontsize=7, pad=2)
    fig.colorbar(image, ax=axes, shrink=0.9, label="weight")
    kh, kw = W.shape[2:]
    shown = f"{n_filters} of {W.shape[0]}" if n_filters < W.shape[0] else f"{W.shape[0]}"
    fig.suptitle(title or "convolution filters", fontsize=10)
    fig.supxlabel(f"{shown} filters of {kh}×{kw}" + (" (filter·channel)" if n_channels > 1 else ""), fontsize=8)
    return _save(fig, path)
