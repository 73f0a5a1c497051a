"""``sweep.png``: the chosen metric against each swept option, one panel per option.

Numeric options are an x axis (logarithmic when the values span two decades or
more, as learning rates do); other options (``arch``, ``optimizer``) are categories
in the order the spec lists them.  Finished trials are dots, the best a star, failed ones red crosses at the bottom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from .results import higher_is_better, sort_rows


def sweep_plot(rows: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str, path: Path) -> Path | None:
    """Write the plot to ``path``; None (nothing written) when no trial has ``metric``."""
    from matplotlib.figure import Figure  # not pyplot: the user's backend stays as it is, no display needed

    ranked = sort_rows(rows, metric)
    done = [r for r in ranked if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    if not done or not params:
        return None
    scale = 100.0 if metric.endswith("accuracy") else 1.0
    cols = min(3, len(params))
    rows_n = math.ceil(len(params) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows_n), layout="constrained")
    axes = fig.subplots(rows_n, cols, squeeze=False)
    for ax, param in zip(axes.flat, params, strict=False):
        values = [r.get(param) for r in done]
        ys = [scale * float(r[metric]) for r in done]
        numeric = all(isinstance(r.get(param), (int, float)) and not isinstance(r.get(param), bool) for r in rows)
        if numeric:
            xs = [float(v) for v in values]
            _numeric_axis(ax, sorted({float(r[param]) for r in rows}))
        else:
            categories = list(dict.fromkeys(str(r.get(param)) for r in rows))  # the spec's order
            xs = [float(categories.index(str(v))) for v in values]
            ax.set_xticks(range(len(categories)), [_short(c) for c in categories], rotation=20, ha="right")
            ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.scatter(xs, ys, s=28, alpha=0.75, color="tab:blue")
        ax.scatter(xs[:1], ys[:1], s=160, marker="*", color="tab:orange", zorder=3, label="best")
        failed = [r.get(param) for r in rows if r.get("status") == "failed"]
        if failed:  # failed trials: red crosses along the bottom edge, at their option's value
            fx = [float(v) if numeric else float(categories.index(str(v))) for v in failed]
            ax.scatter(fx, [0.03] * len(fx), marker="x", color="tab:red", transform=ax.get_xaxis_transform(),
                       clip_on=False, label="failed")  # fmt: skip
        ax.set(xlabel=param, ylabel=metric + (" (%)" if scale != 1.0 else ""))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    best = "highest" if higher_is_better(metric) else "lowest"
    fig.suptitle(f"{metric} of {len(done)} finished trials (star: {best})")
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    return path


def _numeric_axis(ax: Any, values: list[float]) -> None:
    """Logarithmic when the values are positive and span a wide range (learning rates); a few grid values
    are the ticks themselves, so that 0.001 and 0.003 are not drowned in tick labels."""
    from matplotlib.ticker import MaxNLocator, NullLocator

    if values[0] > 0 and values[-1] / values[0] >= (3 if len(values) <= 8 else 100):
        ax.set_xscale("log")
    if len(values) <= 8:
        ax.set_xticks(values, [f"{v:.3g}" for v in values])
        ax.xaxis.set_minor_locator(NullLocator())
        pad = (values[-1] / values[0]) ** 0.08 if ax.get_xscale() == "log" else None
        if pad:
            ax.set_xlim(values[0] / pad, values[-1] * pad)
    elif ax.get_xscale() == "linear":
        ax.xaxis.set_major_locator(MaxNLocator(5))


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
