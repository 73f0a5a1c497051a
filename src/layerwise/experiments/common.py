"""What every ``layerwise reproduce`` experiment shares: its networks trained by ``train_run``, results, plots.

An experiment network is a dict of settings (a "spec")::

    {"name": "lenet5", "dataset": "mnist", "arch": "[conv(6,5,pad=2),...]", "optimizer": "adam",
     "lr": 1e-3, "schedule": "cosine", "epochs": 10, "batch_size": 64, "seed": 0}

``run_config(spec)`` turns it into the ``RunConfig`` of an ordinary ``layerwise train``
run on all training images (no validation hold-out, as the homework and the papers
train), and ``train_networks`` trains such runs with ``train_run`` -- the code
``layerwise train`` and ``layerwise sweep`` use -- each into its own run folder
(config.json, model.npz, metrics.json, plots), one after another in this process or
on a local Dask cluster (``workers``), with identical results either way (given the
same number of BLAS threads).  A folder that already holds the finished run of the
same config is reused, an interrupted one is resumed; any other is replaced.  The
test set is evaluated once, after the last epoch: nothing is selected on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunFolderError
from ..runs import CancelToken, RunConfig, RunFolder, train_run

Log = Callable[..., None]


class ExperimentInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the experiment; its unfinished runs hold checkpoints, and the same command resumes."""


def run_config(spec: dict[str, Any], epochs: int | None = None, limit: int | None = None) -> RunConfig:
    """The ``layerwise train`` configuration of ``spec``: all training images (after ``limit``), no hold-out."""
    return RunConfig(
        dataset=spec.get("dataset", "mnist"),
        arch=spec["arch"],
        optimizer=spec["optimizer"],
        lr=spec["lr"],
        epochs=epochs or spec["epochs"],
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        limit=limit,
        schedule=spec.get("schedule", "constant"),
        init=spec.get("init", "auto"),
        validation=0,
    )


def train_networks(
    specs: Sequence[dict[str, Any]],
    folders: Sequence[Path],
    *,
    epochs: int | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    workers: int | None = None,
    verbose: int = 1,
    cancel: CancelToken | None = None,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Train each spec's run into its folder; return each run's metrics.json (as a dict), in order.

    workers: None trains in this process, one run after another, printing its progress;
    N > 0 runs them as tasks on a local Dask cluster of N single-threaded worker processes
    (``layerwise.sweep``'s machinery).  Raises ExperimentInterrupted when ``cancel`` (or
    Ctrl-C) stopped a run.
    """
    configs = [run_config(spec, epochs, limit) for spec in specs]
    executor = None if workers is None else _dask(workers)  # before any folder is touched
    todo = []
    for spec, config, folder in zip(specs, configs, map(RunFolder, folders), strict=True):
        state = _reusable_state(folder, config)
        if state == "finished":
            log(f"{spec['title']}: {folder.path} already holds this finished run; reusing it", flush=True)
        else:
            if state is None:
                folder.clear()
            elif state == "unfinished":
                log(f"{spec['title']}: resuming the interrupted run in {folder.path}", flush=True)
            todo.append((spec, config, folder))
    if workers is None:
        for spec, config, folder in todo:
            log(f"{spec['title']}: {training_line(config)}, into {folder.path}", flush=True)
            result = train_run(config, folder.path, resume=folder.state == "unfinished", data_dir=data_dir,
                               verbose=verbose, cancel=cancel, log=log)  # fmt: skip
            if result.status != "finished":
                raise ExperimentInterrupted(f"{folder.path}: interrupted")
    elif todo:
        _on_dask([(config, folder) for _, config, folder in todo], executor, data_dir, log)
    return [json.loads(RunFolder(f).metrics.read_text(encoding="utf-8")) for f in folders]


def _reusable_state(folder: RunFolder, config: RunConfig) -> str | None:
    """``finished`` or ``unfinished`` when ``folder`` holds a run of exactly ``config``; None otherwise."""
    state = folder.state
    if state not in ("finished", "unfinished") or not folder.config.is_file():
        return None
    try:
        saved = RunConfig.from_json(folder.config.read_text(encoding="utf-8", errors="replace"), str(folder.config))
    except Exception:  # noqa: BLE001 - an unreadable config: not this run, start afresh
        return None
    return state if saved == config else None


def _dask(workers: int) -> Any:
    """A local Dask cluster of ``workers`` single-threaded processes (not started yet)."""
    from ..sweep.execute import Dask

    try:
        return Dask(workers=workers)
    except ConfigError:  # Dask's own hint names the sweep's --serial, which reproduce does not have
        raise ConfigError(
            "--workers: dask is not installed; pip install 'layerwise[sweep]', or leave out --workers"
        ) from None


def _on_dask(runs: list[tuple[RunConfig, RunFolder]], executor: Any, data_dir: Any, log: Log) -> None:
    """The runs as sweep trials on the local Dask cluster; a failed run raises RunFolderError with its message."""
    import uuid

    from ..sweep.execute import TrialTask

    cancel_file = runs[0][1].path.parent / f".cancel-{uuid.uuid4().hex[:12]}"
    tasks = [
        TrialTask(
            trial_id=folder.path.name,
            config=config.to_dict(),
            trial_dir=str(folder.path.resolve()),
            data_dir=None if data_dir is None else str(Path(data_dir).resolve()),
            cancel_file=str(cancel_file.resolve()),
        )
        for config, folder in runs
    ]
    log(f"training {len(tasks)} networks on {executor.name}", flush=True)
    try:
        with executor:
            try:
                for row in executor.rows(tasks):
                    if row["status"] == "failed":
                        raise RunFolderError(f"{row['trial']}: {row.get('error')}")
                    log(f"   {row['trial']}: {row['status']} ({row.get('seconds') or 0:.1f} s)", flush=True)
            except KeyboardInterrupt:
                for _ in executor.stop(cancel_file, grace_s=30.0):
                    pass
                raise ExperimentInterrupted("interrupted") from None
    finally:
        cancel_file.unlink(missing_ok=True)
        executor.join()


def result_of(spec: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The experiment's summary of one run: its spec, accuracies in %, seconds and the per-epoch history."""
    config = metrics["config"]
    history: dict[str, list[float]] = {}
    for row in metrics["history"]:
        for key, value in row.items():
            if key != "epoch":
                history.setdefault(key, []).append(value)
    return {
        **spec,
        "epochs": metrics["epochs"],
        "n_train": config["n_train"],
        "train_accuracy": 100 * metrics["train_accuracy"],
        "test_accuracy": 100 * metrics["test_accuracy"],
        "test_error": 100 * (1 - metrics["test_accuracy"]),
        "train_loss": metrics["train_loss"],
        "test_loss": metrics["test_loss"],
        "seconds": metrics["seconds"],
        "parameters": config["parameters"],
        "resumed": metrics["resumed"],
        "history": history,
    }


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    from ..atomic import atomic_write

    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2) + "\n").encode())


def training_line(config: RunConfig | dict[str, Any]) -> str:
    """``adam lr 0.001 (cosine decay), 10 epochs, batch 64``."""
    c = config.to_dict() if isinstance(config, RunConfig) else config
    schedule = c.get("schedule")
    decay = f" ({schedule} decay)" if schedule and schedule != "constant" else ""
    return f"{c['optimizer']} lr {c['lr']:g}{decay}, {c['epochs']} epochs, batch {c['batch_size']}"
