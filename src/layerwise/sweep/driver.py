"""``run(spec, out_dir)``: a whole sweep, resumable, from the spec to the results.

Files in ``out_dir``::

    sweep.toml         the spec of the last run (a copy of the file, or the dict written as TOML)
    trials/<id>/       one run folder per trial (config.json, model.npz, metrics.json, plots...)
    results.csv        one row per trial, in the spec's order (rewritten as trials finish)
    results.json       the same rows as JSON
    sweep.png          the sort metric against each swept option

Trial ids are hashes of the trials' configs, so a rerun of the same command skips the
finished trials and resumes the unfinished ones from their checkpoints.  A rerun with
a *changed* spec is allowed too: the trials the two specs share are reused, the new
ones run, and ``sweep.toml`` and the results then describe the new spec (the folders
of trials it no longer lists stay in ``trials/``).  A trial folder whose config.json
differs from its trial's config (edited by hand) is refused, never reused.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import ConfigError
from ..runs import RunFolder
from .execute import Dask, Serial, TrialTask, check_trial_folder
from .plot import sweep_plot
from .results import check_metric, finished_row, make_row, write_results
from .spec import SweepSpec, Trial, load_spec

Log = Callable[[str], None]
WRITE_EVERY_S = 1.0


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; ``rows`` are the results so far (also in results.csv)."""

    def __init__(self, rows: list[dict[str, Any]], out_dir: Path) -> None:
        super().__init__("sweep interrupted")
        self.rows, self.out_dir = rows, out_dir


def run(
    spec: str | os.PathLike[str] | Mapping[str, Any] | SweepSpec,
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    serial: bool = False,
    sort: str = "val_accuracy",
    data_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 1,
    progress: bool | None = None,
    plot: bool = True,
    grace_s: float = 30.0,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Run every trial of ``spec`` (a TOML file or a dict) into ``out_dir``; return one row per trial.

    Execution: ``serial`` runs the trials in this process; ``scheduler`` (else
    ``$DASK_SCHEDULER_ADDRESS`` when ``workers`` is not given) uses that Dask cluster;
    otherwise a ``LocalCluster`` of ``workers`` (default: one per core) single-threaded
    worker processes.  ``out_dir`` must be on a file system the workers share.  A script
    that calls this with a local cluster needs the ``if __name__ == "__main__":`` guard
    (worker processes are spawned and import the main module).

    ``progress``: a bar over the trials (default: when stderr is a terminal).  Ctrl-C
    stops running trials after their current step (they checkpoint, for up to
    ``grace_s`` seconds), writes the results so far and raises ``SweepInterrupted``.
    """
    say = log or _stderr
    sweep = load_spec(spec)
    check_metric(sort)
    executor = _executor(workers, scheduler, serial)  # before any file is written: a bad option changes nothing
    trials = sweep.trials()
    out = Path(out_dir)
    rows: dict[str, dict[str, Any]] = {}
    tasks: list[TrialTask] = []
    cancel_file = out / f".cancel-{uuid.uuid4().hex[:12]}"
    for trial in trials:  # check every folder first: a changed one stops the sweep before it starts
        folder = RunFolder(out / "trials" / trial.id)
        if check_trial_folder(folder, trial.config, trial.id) == "finished":
            rows[trial.id] = make_row(trial.id, trial.values, finished_row(folder))
        else:
            rows[trial.id] = make_row(trial.id, trial.values, {"status": "pending"})
            tasks.append(_task(trial, folder, data_dir, checkpoint_every, cancel_file))
    _write_spec(out, sweep, say)
    for stale in out.glob(".cancel-*"):
        stale.unlink(missing_ok=True)
    results = _Rows(out, sweep.params, {t.id: t for t in trials}, rows)
    results.write()

    done = len(trials) - len(tasks)
    on = f" on {executor.name}" if tasks and not isinstance(executor, Serial) else ""
    say(f"sweep: {len(trials)} trials, {done} finished already, {len(tasks)} to run{on}; results in {out}")
    results.bar = bar = _bar(len(trials), done, progress)
    results.say = say = _through_bar(say, bar)
    started = time.perf_counter()
    if plot and tasks:  # matplotlib loads while the trials run, not after them
        threading.Thread(target=_import_plotting, name="layerwise-import-plots", daemon=True).start()
    try:
        if tasks:
            with executor:
                try:
                    for result in executor.rows(tasks):
                        results.record(result)
                except KeyboardInterrupt:
                    say("sweep: interrupted; running trials write a checkpoint (Ctrl-C again to stop at once)")
                    try:
                        for result in executor.stop(cancel_file, grace_s):
                            results.record(result)
                    except KeyboardInterrupt:
                        pass
                    raise SweepInterrupted(list(rows.values()), out) from None
    except BaseException:
        executor.join()  # leaving with an error: the workers go down before we return
        raise
    finally:
        if bar is not None:
            bar.close()
        results.write()
        cancel_file.unlink(missing_ok=True)
    try:
        if plot and sweep_plot(list(rows.values()), sweep.params, sort, out / "sweep.png") is not None:
            say(f"sweep: wrote {out / 'sweep.png'}")
    finally:
        executor.join()  # the cluster closed while the plot was drawn
    failed = sum(r["status"] == "failed" for r in rows.values())
    say(f"sweep: {len(trials) - failed} of {len(trials)} trials finished, {failed} failed "
        f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    return list(rows.values())


def _import_plotting() -> None:
    with contextlib.suppress(Exception):  # only a head start: sweep_plot imports (and reports) for itself
        import matplotlib.figure  # noqa: F401


def _executor(workers: int | None, scheduler: str | None, serial: bool) -> Serial | Dask:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers: expected a positive number of worker processes, got {workers!r}")
    if serial:
        if workers is not None or scheduler:
            given = "--workers" if workers is not None else "--scheduler"
            raise ConfigError(f"{given}: not with --serial, which runs the trials in this process")
        return Serial()
    if scheduler and workers is not None:
        raise ConfigError("--workers: the cluster at --scheduler has its own workers; give one or the other")
    if not scheduler and workers is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    return Dask(workers=workers, scheduler=scheduler)


def _task(trial: Trial, folder: RunFolder, data_dir: Any, every: int, cancel_file: Path) -> TrialTask:
    return TrialTask(
        trial_id=trial.id,
        config=trial.config.to_dict(),
        trial_dir=str(folder.path.resolve()),
        data_dir=None if data_dir is None else str(Path(data_dir).resolve()),
        checkpoint_every=every,
        cancel_file=str(cancel_file.resolve()),
    )


def _write_spec(out: Path, sweep: SweepSpec, say: Log) -> None:
    path = out / "sweep.toml"
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace") != sweep.text:
        say(f"sweep: {path} held another spec; it is replaced (trials the two specs share are reused)")
    with atomic_write(path) as f:
        f.write(sweep.text.encode())


class _Rows:
    """The rows of the sweep; results.csv/json rewritten as trials end (at most every ``WRITE_EVERY_S``)."""

    def __init__(self, out: Path, params: list[str], by_id: dict[str, Trial], rows: dict[str, dict[str, Any]]):
        self.out, self.params, self.by_id, self.rows = out, params, by_id, rows
        self.bar: Any = None
        self.say: Log = _stderr
        self._written = 0.0

    def write(self) -> None:
        write_results(self.out, self.params, list(self.rows.values()))
        self._written = time.monotonic()

    def record(self, result: dict[str, Any]) -> None:
        trial = self.by_id[result["trial"]]
        self.rows[trial.id] = row = make_row(trial.id, trial.values, result)
        if time.monotonic() - self._written >= WRITE_EVERY_S:  # a thousand trials need not mean a thousand writes
            self.write()
        if row["status"] in ("finished", "failed") and self.bar is not None:
            self.bar.update(1)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.values.items())
        if row["status"] == "finished":
            acc = row.get("val_accuracy")
            acc = row.get("test_accuracy") if acc is None else acc
            what = f"accuracy {100 * acc:.2f}%" if acc is not None else "done"
            self.say(f"  {trial.id} finished ({shown}): {what}, {row.get('epochs_run')} epochs, {row.get('seconds')} s")
        elif row["status"] == "failed":
            self.say(f"  {trial.id} failed ({shown}): {row.get('error')}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bar(total: int, initial: int, progress: bool | None) -> Any:
    enabled = sys.stderr.isatty() if progress is None else progress
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="trial", desc="sweep", file=sys.stderr, dynamic_ncols=True)


def _through_bar(say: Log, bar: Any) -> Log:
    """Messages printed above the bar (tqdm.write) while it is shown."""
    if bar is None:
        return say

    def write(message: str) -> None:
        bar.write(message, file=sys.stderr)

    return write
