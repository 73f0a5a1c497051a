"""The seed's Problem 4: three networks on MNIST, our accuracies beside the seed's.

``layerwise reproduce hw2`` runs ``run()`` and prints ``format_table()``.  Every
net is an ordinary ``layerwise train`` run (``common.train_networks``): the
cross-entropy loss on softmax logits, raw uint8 pixels scaled by 1/255 inside the
network, all 60,000 training images (no validation hold-out, as the homework); the
train and test accuracies are ``Model.evaluate`` on the full training and test sets
after the last epoch.  The settings below were chosen by measuring per-epoch train and
test accuracy for several candidates (seed 0) and picking ones whose results sit
well inside the ±1-point window around the seed's numbers, at every epoch near the
chosen count, not only at the last one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..runs import CancelToken
from .common import result_of, train_networks, write_json

#: What ``run`` writes into its folder (a/, b/, c/: each network's run folder, with its model.npz).
OUTPUTS = ("results.json", "learning_curves.png", "a/", "b/", "c/")


#: One dict per network: the seed's reported accuracies (percent) and our settings.
NETWORKS: list[dict[str, Any]] = [
    {
        "name": "a",
        "arch": "[(10,Linear)]",
        "seed_train": 93.0,
        "seed_test": 92.0,
        # Softmax regression.  Adam 1e-3 at batch 64, 10 epochs: 93.09/92.66 (seed 0),
        # 93.16/92.77 (seed 1); it creeps up by ~0.05 points per epoch from there.
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 10,
        "batch_size": 64,
        "seed": 0,
    },
    {
        "name": "b",
        "arch": "[(24,ReLU),(10,Linear)]",
        "seed_train": 99.0,
        "seed_test": 96.0,
        # The seed does not give b's layers.  99% train with only 96% test is a net
        # that fits the training set but generalises clearly worse than c): a narrow
        # hidden layer.  Measured (train / test %, seeds 0, 1, 2), 24 ReLU units,
        # Adam 3e-3 at batch 64 with the lr decayed along a cosine to 1% over 40
        # epochs: 99.38/96.38, 99.40/96.59, 99.48/95.78.  Without the decay the
        # same net creeps to only ~98.7% train in 40 epochs; 32 units reach 99% but
        # test ~96.9-97.05%, at the window's edge; 28 units land in between.
        "optimizer": "adam",
        "lr": 3e-3,
        "schedule": "cosine",  # lr(epoch): half a cosine from lr towards lr/100 over the epochs
        "epochs": 40,
        "batch_size": 64,
        "seed": 0,
    },
    {
        "name": "c",
        "arch": "[(140,ReLU),(10,Linear)]",
        "seed_train": 100.0,
        "seed_test": 97.0,
        # The seed's 784-140-10 ReLU net.  Adam 1e-3 at batch 128, 10 epochs:
        # 99.47/97.74 (seed 0), 99.39/97.67 (seed 1); it passes 99% train at epoch 7.
        # Batch 32 (the train command's default) reaches ~97.9-98.0% test, too
        # close to the window's upper edge (98%).
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 10,
        "batch_size": 128,
        "seed": 0,
    },
]

#: Allowed distance (percentage points) from the seed's train and test accuracies.
TOLERANCE = 1.0


def run(
    out_dir: str | Path = "runs/hw2",
    epochs: int | None = None,
    data_dir: str | Path | None = None,
    verbose: int = 1,
    log: Any = print,
    limit: int | None = None,
    workers: int | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Train a), b), c) on MNIST, each a run in out_dir/a, /b, /c; write results.json and learning_curves.png.

    limit: train on the first ``limit`` training images only (quick checks).  workers: train
    the three on a local Dask cluster of that many worker processes (None: one after another
    here); the results are the same (with one BLAS thread here: Dask workers use one).
    """
    from .. import plots

    out = Path(out_dir)
    start = time.perf_counter()
    specs = [{**spec, "dataset": "mnist", "title": f"{spec['name']})"} for spec in NETWORKS]
    runs = train_networks(specs, [out / spec["name"] for spec in specs], epochs=epochs, limit=limit,
                          data_dir=data_dir, workers=workers, verbose=verbose, cancel=cancel, log=log)  # fmt: skip
    results = []
    for spec, metrics in zip(specs, runs, strict=True):
        result = result_of(spec, metrics)
        result["within_tolerance"] = (
            abs(result["train_accuracy"] - spec["seed_train"]) <= TOLERANCE
            and abs(result["test_accuracy"] - spec["seed_test"]) <= TOLERANCE
        )
        results.append(result)
    summary = {
        "experiment": "hw2",
        "dataset": "mnist",
        "tolerance_points": TOLERANCE,
        "epochs_override": epochs,
        "limit": limit,
        "workers": workers,
        "total_seconds": time.perf_counter() - start,
        "all_within_tolerance": all(r["within_tolerance"] for r in results),
        "networks": results,
    }
    write_json(out / "results.json", summary)
    plots.combined_learning_curves(
        {f"{r['name']}) {r['arch']}": r["history"] for r in results},
        out / "learning_curves.png",
        title="Problem 4 on MNIST: learning curves",
    )
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The seed's accuracies beside ours, one row per network."""
    rows = summary["networks"]
    width = max(len("architecture"), *(len(r["arch"]) for r in rows))
    head = (
        f"{'net':<4}{'architecture':<{width}}  {'training':<22}  {'homework train':>14}  {'ours':>6}  "
        f"{'homework test':>13}  {'ours':>6}  {'ok':>3}  {'time':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        schedule = " cos" if r.get("schedule") else ""
        training = f"{r['optimizer']} {r['lr']:g}{schedule}, {r['epochs']}x{r['batch_size']}"
        lines.append(
            f"{r['name'] + ')':<4}{r['arch']:<{width}}  {training:<22}  {r['seed_train']:>13.0f}%  "
            f"{r['train_accuracy']:>5.2f}%  {r['seed_test']:>12.0f}%  {r['test_accuracy']:>5.2f}%  "
            f"{'yes' if r['within_tolerance'] else 'NO':>3}  {r['seconds']:>5.1f}s"
        )
    lines.append("-" * len(head))
    lines.append(
        f"total {summary['total_seconds']:.1f} s; ok = within ±{summary['tolerance_points']:g} point of the homework "
        f"on both train and test"
        + (f"; epochs overridden to {summary['epochs_override']}" if summary["epochs_override"] else "")
        + (f"; first {summary['limit']:,} training images only" if summary.get("limit") else "")
    )
    return "\n".join(lines)
