"""The sweep's results: one row per trial, ``results.csv`` / ``results.json``, and the printed table.

A row is ``{"trial": id, <swept option>: value, ..., "status": ..., <metrics>, "epochs_run", "seconds",
"resumed", "worker", "blas_threads", "error"}``; ``status`` is ``finished``, ``failed``
(``error`` says why), ``interrupted`` or ``pending``.  ``seconds`` is the training time of a
finished trial (from its metrics.json, all attempts together), else the time of the last
attempt.  The files list the trials in the spec's order; the table is sorted by the chosen
metric.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import ConfigError, RunFolderError
from ..runs import RunFolder

METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "train_accuracy", "train_loss")
SORTABLE = (*METRICS, "seconds", "epochs_run")
COLUMNS = ("status", *METRICS, "epochs_run", "seconds", "resumed", "worker", "blas_threads", "error")


def finished_row(folder: RunFolder, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The row of a finished trial, from its metrics (read from ``metrics.json`` when not given)."""
    if metrics is None:
        try:
            metrics = json.loads(folder.metrics.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise RunFolderError(f"{folder.metrics}: cannot read the finished trial's metrics ({e})") from None
        if not isinstance(metrics, dict):
            raise RunFolderError(f"{folder.metrics}: expected a JSON object of metrics")
    row: dict[str, Any] = {"status": "finished"}
    for key in METRICS:
        value = metrics.get(key)
        row[key] = float(value) if isinstance(value, (int, float)) else None
    row["epochs_run"] = metrics.get("epochs")
    seconds = metrics.get("seconds")
    row["seconds"] = round(float(seconds), 3) if isinstance(seconds, (int, float)) else None
    row["resumed"] = bool(metrics.get("resumed", False))
    return row


def make_row(trial_id: str, values: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """A full row: the trial id, its swept values, then every column of COLUMNS (None when unknown)."""
    return {"trial": trial_id, **values, **{c: result.get(c) for c in COLUMNS}}


def check_metric(metric: str) -> str:
    if metric not in SORTABLE:
        raise ConfigError(f"--sort: expected one of {', '.join(SORTABLE)}, got {metric!r}")
    return metric


def higher_is_better(metric: str) -> bool:
    return metric.endswith("accuracy") or metric == "epochs_run"


def sort_rows(rows: Sequence[Mapping[str, Any]], metric: str) -> list[Mapping[str, Any]]:
    """Best first by ``metric``; rows without it (failed, interrupted, pending) last, in their order."""
    check_metric(metric)
    sign = -1.0 if higher_is_better(metric) else 1.0
    have = [r for r in rows if _number(r.get(metric))]
    rest = [r for r in rows if not _number(r.get(metric))]
    return sorted(have, key=lambda r: sign * float(r[metric])) + rest


def write_results(out_dir: Path, params: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """``results.csv`` and ``results.json`` in ``out_dir``, atomically."""
    header = ["trial", *params, *COLUMNS]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in header})
    with atomic_write(out_dir / "results.csv") as f:
        f.write(text.getvalue().encode())
    with atomic_write(out_dir / "results.json") as f:
        f.write((json.dumps([{k: row.get(k) for k in header} for row in rows], indent=2) + "\n").encode())


def format_table(rows: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str) -> str:
    """The rows as a text table sorted by ``metric``, then one line per failed trial with its error."""
    ordered = sort_rows(rows, metric)
    headers = ["#", "trial", *params, "status", "train acc %", "val acc %", "val loss", "test acc %", "test loss",
               "epochs", "train s"]  # fmt: skip
    body = []
    for i, row in enumerate(ordered, 1):
        body.append([
            str(i), str(row["trial"]), *(_value(row.get(p)) for p in params), str(row.get("status")),
            _percent(row.get("train_accuracy")), _percent(row.get("val_accuracy")), _fixed(row.get("val_loss"), 4),
            _percent(row.get("test_accuracy")), _fixed(row.get("test_loss"), 4),
            "" if row.get("epochs_run") is None else str(row["epochs_run"]), _fixed(row.get("seconds"), 1),
        ])  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    numeric = {0, *range(len(headers) - 7, len(headers))}  # right-aligned: the rank, the metrics, numeric options
    numeric |= {2 + i for i, p in enumerate(params) if all(_number(r.get(p)) for r in rows)}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in body)]
    failed = [r for r in ordered if r.get("status") == "failed"]
    if failed:
        lines += ["", "failed trials:", *(f"  {r['trial']}: {r.get('error')}" for r in failed)]
    return "\n".join(line.rstrip() for line in lines)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}" if _number(value) else ""


def _fixed(value: Any, digits: int) -> str:
    if not _number(value):
        return ""
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"  # a diverged loss stays narrow
