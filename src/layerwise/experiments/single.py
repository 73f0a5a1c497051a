"""One published network, trained from one seed or several: ``reproduce lenet5 | convnet | fashion-cnn``.

From one seed (the default) ``out_dir`` is the network's run folder.  From N seeds
(``seeds=N``: the spec's seed, +1, …) each run has its own folder ``out_dir/seed-K`` and
the summary gives every seed's accuracies and their mean and sample standard deviation;
the target is judged on the mean.  Several seeds are what a result needs whose target
lies within the seed-to-seed spread: one seed cannot say whether the recipe meets it.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs import CancelToken
from .common import Log, result_of, train_networks, training_line, write_json

#: What ``run_single`` writes into its folder from one seed.
SINGLE_OUTPUTS = ("results.json", "model.npz", "metrics.json", "learning_curves.png", "confusion_matrix.png",
                  "filters.png")  # fmt: skip


def seed_list(spec: dict[str, Any], seeds: int | None = None) -> list[int]:
    """The seeds a run of ``spec`` trains from: ``spec["seed"]`` and the next ``seeds - 1``."""
    n = spec.get("seeds", 1) if seeds is None else seeds
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"seeds: expected a whole number >= 1, got {n!r}")
    return [spec["seed"] + k for k in range(n)]


def run_folders(spec: dict[str, Any], out_dir: str | Path, seeds: int | None = None) -> list[Path]:
    """The run folders of ``spec`` in ``out_dir``: ``out_dir`` itself from one seed, ``out_dir/seed-K`` from several."""
    out, seed_values = Path(out_dir), seed_list(spec, seeds)
    return [out] if len(seed_values) == 1 else [out / f"seed-{seed}" for seed in seed_values]


def outputs(spec: dict[str, Any], seeds: int | None = None) -> tuple[str, ...]:
    """What ``run_single`` writes into ``out_dir`` (a folder name ends in /)."""
    folders = run_folders(spec, "", seeds)
    if len(folders) == 1:
        return SINGLE_OUTPUTS
    return ("results.json", "learning_curves.png", *(f"{folder.name}/" for folder in folders))


def target_met(spec: dict[str, Any], result: dict[str, Any]) -> bool:
    """Does ``result`` reach ``spec["target"]`` = {"test_error": max %} or {"test_accuracy": min %}?"""
    target = spec["target"]
    if "test_error" in target:
        return result["test_error"] <= target["test_error"]
    return result["test_accuracy"] >= target["test_accuracy"]


def run_single(
    spec: dict[str, Any],
    out_dir: str | Path,
    epochs: int | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    verbose: int = 1,
    log: Log = print,
    cancel: CancelToken | None = None,
    seeds: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Train ``spec``'s network from each seed as a run (model.npz, metrics.json, plots); write results.json.

    seeds: how many seeds (default ``spec["seeds"]``, else 1).  workers: train the seeds'
    runs at once on a local Dask cluster of that many single-threaded processes (several
    seeds only).  Returns the summary that results.json holds.
    """
    from .. import plots

    out = Path(out_dir)
    seed_values = seed_list(spec, seeds)
    if workers is not None and len(seed_values) == 1:
        raise ConfigError(f"workers: {spec['name']} from one seed trains one network; give seeds > 1 to spread")
    start = time.perf_counter()
    specs = [{**spec, "seed": seed, "seeds": [seed]} for seed in seed_values]  # each run names its own seed
    if len(specs) > 1:
        specs = [{**s, "title": f"{s['title']}, seed {s['seed']}"} for s in specs]
    folders = run_folders(spec, out, seeds)
    runs = train_networks(specs, folders, epochs=epochs, limit=limit, data_dir=data_dir, workers=workers,
                          verbose=verbose, cancel=cancel, log=log)  # fmt: skip
    results = [result_of(s, metrics) for s, metrics in zip(specs, runs, strict=True)]
    summary: dict[str, Any] = {"experiment": spec["name"], "epochs_override": epochs, "limit": limit}
    if len(results) == 1:
        summary.update(results[0])
    else:
        summary.update(_over_seeds(spec, results))
        plots.combined_learning_curves(
            {f"seed {r['seed']}": r["history"] for r in results},
            out / "learning_curves.png",
            title=f"{spec['title']} on {spec['dataset']}, {len(results)} seeds: learning curves",
        )
    summary["target_met"] = target_met(spec, summary)
    summary["total_seconds"] = time.perf_counter() - start
    write_json(out / "results.json", summary)
    return summary


def _over_seeds(spec: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean (and sample standard deviation) of the runs' accuracies; each run with its own."""
    first = results[0]
    test = [r["test_accuracy"] for r in results]
    return {
        **spec,
        "seeds": [r["seed"] for r in results],
        "epochs": first["epochs"],
        "n_train": first["n_train"],
        "parameters": first["parameters"],
        "train_accuracy": statistics.fmean(r["train_accuracy"] for r in results),
        "test_accuracy": statistics.fmean(test),
        "test_accuracy_sd": statistics.stdev(test),
        "test_error": 100 - statistics.fmean(test),
        "seconds": sum(r["seconds"] for r in results),
        "seeds_meeting_target": [r["seed"] for r in results if target_met(spec, r)],
        "runs": results,
    }


def format_single(summary: dict[str, Any]) -> str:
    """The published number beside ours (each seed's and their mean), and whether the target is met."""
    ref = summary["reference"]
    target = summary["target"]
    metric = "test_error" if "test_error" in target else "test_accuracy"
    sign = "<=" if metric == "test_error" else ">="
    head = f"{'':<28}{'train acc':>10}  {'test acc':>9}  {'test error':>10}"
    lines = [f"{summary['title']} on {summary['dataset']}: {summary['arch']}", head, "-" * len(head)]
    if "test_accuracy_range" in ref:  # a published range, e.g. [91, 93]
        low, high = ref["test_accuracy_range"]
        ref_acc, ref_err = f"{low:g}-{high:g}%", f"{100 - high:g}-{100 - low:g}%"
    else:
        accuracy = ref.get("test_accuracy", 100 - ref["test_error"] if "test_error" in ref else None)
        error = ref.get("test_error", None if accuracy is None else 100 - accuracy)
        ref_acc, ref_err = _pct(accuracy), _pct(error)
    lines.append(f"{ref['source']:<28}{'-':>10}  {ref_acc:>9}  {ref_err:>10}")

    runs = summary.get("runs")
    if runs:
        rows = [(f"layerwise, seed {r['seed']}", r) for r in runs] + [(f"layerwise, mean of {len(runs)}", summary)]
    else:
        rows = [("layerwise (this run)", summary)]
    for label, row in rows:
        lines.append(
            f"{label:<28}{_pct(row['train_accuracy']):>10}  {_pct(row['test_accuracy']):>9}  "
            f"{_pct(row['test_error']):>10}"
        )
    if runs:
        lines.append(f"{'':<28}{'':>10}  {'sd ' + format(summary['test_accuracy_sd'], '.2f'):>9}")
    lines.append("-" * len(head))
    met = "met" if summary["target_met"] else "NOT met"
    what = metric.replace("_", " ") if not runs else f"mean {metric.replace('_', ' ')} of {len(runs)} seeds"
    lines.append(
        f"target: {what} {sign} {target[metric]:.2f}% in {summary['epochs']} epochs: {met}"
        + (f" ({len(summary['seeds_meeting_target'])} of {len(runs)} seeds meet it alone)" if runs else "")
        + f"; {training_line(summary)}; {summary['seconds']:.0f} s of training"
    )
    if summary.get("epochs_override") or summary.get("limit"):
        lines.append(
            f"(a quick run: epochs {summary['epochs']}"
            + (f", first {summary['limit']:,} training images" if summary.get("limit") else "")
            + "; the target is for the full settings)"
        )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"
