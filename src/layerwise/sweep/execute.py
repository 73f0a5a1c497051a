"""Running trials: ``run_trial`` (one trial, where it runs) and the executors that run many of them.

``run_trial`` is the task a Dask worker runs; it never raises for a failing trial
(the error becomes the row's ``error``), so Dask only ever re-runs a trial whose
worker died.  A trial folder moves through the states of ``RunFolder``: finished
→ its metrics are read back; unfinished (a checkpoint) → the run resumes from it,
bit-identically; anything else → a new run.  That makes every re-run of a trial
(a retry after a worker died, or a rerun of the whole sweep) continue where the
last one stopped.

Executors yield one row per trial as trials finish.  ``Serial`` runs them in this
process, one after another.  ``Dask`` starts a ``LocalCluster`` (one single-threaded
worker process per core, BLAS pinned to one thread in each, so that workers do not
fight over cores) or connects to a running scheduler.  A dead worker's trial is
re-run on another worker by the Dask scheduler itself (up to
``distributed.scheduler.allowed-failures`` times, 3 by default); after that the
trial is recorded as failed with Dask's ``KilledWorker`` message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import ConfigError, RunFolderError
from ..runs import CancelToken, RunConfig, RunFolder, train_run
from ..runs.folder import LOCK
from .results import finished_row

#: One thread for BLAS and for layerwise's compiled CNN kernels (Numba's thread count).
BLAS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
#: The environment of our own LocalCluster's workers: one thread each, no statistical
#: profiler (a thread that samples the running task's stack every 10 ms: 2-4% of a trial's
#: time), and the event loop's periodic checks (memory every 100 ms, loop ticks every 20 ms,
#: system metrics for a dashboard we do not start) once a second: each wakes the loop, which
#: then competes with the trial for the GIL.
WORKER_ENV = {
    **BLAS_ENV,
    "LAYERWISE_TRIAL_THREADS": "1",  # see _pin_threads
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "1s",
}
CANCEL_POLL_S = 0.2
LOCK_POLL_S = 0.5
Log = Callable[[str], None]


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial; ``cancel_file``: when it exists, stop and checkpoint."""

    trial_id: str
    config: dict[str, Any]
    trial_dir: str
    data_dir: str | None = None
    checkpoint_every: int = 1
    cancel_file: str | None = None


def check_trial_folder(folder: RunFolder, config: RunConfig, trial_id: str) -> str:
    """The folder's state; a RunFolderError if it holds another run than the spec's trial (never reused)."""
    state = folder.state
    if folder.config.is_file():
        saved = RunConfig.from_json(folder.config.read_text(encoding="utf-8", errors="replace"), str(folder.config))
        changed = config.differences(saved)
        if changed:
            raise RunFolderError(
                f"{folder.path}: holds a different run than the spec's trial {trial_id} ({changed[0]}); "
                "trial ids are hashes of their configs, so the folder was changed or written by another version: "
                "move it away, or pick another --out"
            )
    elif state in ("unfinished", "finished"):
        raise RunFolderError(f"{folder.path}: has no {folder.config.name}; not a trial of this sweep")
    return state


def run_trial(task: TrialTask, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Finish one trial in ``task.trial_dir`` and return its row (never raises for a failing trial)."""
    started = time.perf_counter()
    token = cancel or CancelToken()
    done = threading.Event()
    if task.cancel_file:
        if os.path.exists(task.cancel_file):  # the sweep was cancelled before this trial started
            return {"trial": task.trial_id, "status": "interrupted", "seconds": 0.0, **_where()}
        threading.Thread(target=_watch, args=(task.cancel_file, token, done), daemon=True).start()
    try:
        config = RunConfig.from_dict(task.config, "trial config")
        folder = RunFolder(task.trial_dir)
        if not _wait_while_locked(folder, token):
            return {"trial": task.trial_id, "status": "interrupted", "seconds": 0.0, **_where()}
        state = check_trial_folder(folder, config, task.trial_id)
        if state == "finished":
            return {"trial": task.trial_id, **finished_row(folder), **_where()}
        _pin_threads()
        result = train_run(
            config,
            folder.path,
            resume=state == "unfinished",
            data_dir=task.data_dir,
            checkpoint_every=task.checkpoint_every,
            verbose=0,
            cancel=token,
            log=_quiet,
        )
        if result.status == "finished":
            return {"trial": task.trial_id, **finished_row(folder, result.metrics), **_where()}
        return {"trial": task.trial_id, "status": "interrupted", "epochs_run": result.epochs_run,
                "seconds": round(time.perf_counter() - started, 3), **_where()}  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a failing trial is a result of the sweep, not the end of it
        return {"trial": task.trial_id, "status": "failed", "seconds": round(time.perf_counter() - started, 3),
                "error": _one_line(f"{type(e).__name__}: {e}"), **_where()}  # fmt: skip
    finally:
        done.set()


def _pin_threads() -> None:
    """In a Dask worker: hold layerwise's kernels and BLAS at one thread for the trial.

    A worker runs one trial per worker thread, and the cluster's parallelism is its workers
    (one single-threaded worker per core, as the README starts them): a trial that also ran
    two-thread parallel regions made two workers on 2 cores train a convnet 3x slower.  Our
    own workers' BLAS_ENV is not enough: it reaches a worker only after the spawned process
    has re-imported the parent's main module (the ``layerwise`` command imports NumPy and
    Numba), so their thread counts may have been read already.  ``LAYERWISE_TRIAL_THREADS``
    (set in our workers) gives another count.  Trials run in this process (``--serial``) keep
    the process's threads.
    """
    threads = os.environ.get("LAYERWISE_TRIAL_THREADS")
    if not threads:
        try:
            from distributed import get_worker

            get_worker()
        except (ImportError, ValueError):  # not in a Dask worker
            return
        threads = "1"
    from ..kernels import set_threads

    set_threads(int(threads))


def _wait_while_locked(folder: RunFolder, token: CancelToken) -> bool:
    """Wait while another process writes the trial (e.g. a cluster worker still training it for a sweep
    whose client was killed), then go on from what it leaves; False when cancelled while waiting."""
    try:
        fd = os.open(folder.path / LOCK, os.O_RDWR)
    except OSError:  # no lock file: nobody has written this folder yet
        return True
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if token.requested:
                    return False
                time.sleep(LOCK_POLL_S)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)  # free: train_run takes it for real
            return True
    finally:
        os.close(fd)


def _watch(cancel_file: str, token: CancelToken, done: threading.Event) -> None:
    while not done.wait(CANCEL_POLL_S):
        if os.path.exists(cancel_file):
            token.request("the sweep was cancelled")
            return


def _quiet(*args: Any, **kwargs: Any) -> None:
    """Trials log nothing: the sweep reports each one when it ends."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _where() -> dict[str, Any]:
    """Which process ran the trial, with how many BLAS threads (asked after NumPy has loaded its BLAS)."""
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "blas_threads": _blas_threads()}


def _blas_threads() -> int | None:
    """The BLAS thread count of this process (threadpoolctl), None when threadpoolctl is missing."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(info["num_threads"]) for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else None


# -- executors --------------------------------------------------------------------------
class Serial:
    """Trials one after another in this process; Ctrl-C stops the running trial after its current step."""

    name = "in this process, one trial after another"

    def __init__(self) -> None:
        self.token = CancelToken()
        self._previous: Any = None

    def __enter__(self) -> Serial:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.token.requested:  # asked twice: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.token.request("interrupted")

    def rows(self, tasks: Sequence[TrialTask]) -> Iterator[dict[str, Any]]:
        for task in tasks:
            if self.token.requested:
                break
            yield run_trial(task, cancel=self.token)
        if self.token.requested:
            raise KeyboardInterrupt

    def stop(self, cancel_file: Path, grace_s: float) -> Iterator[dict[str, Any]]:
        return iter(())  # the interrupted trial has already returned its row

    def join(self, timeout: float = 60.0) -> None:
        """Nothing to wait for: the trials ran in this process."""


class Dask:
    """Trials as Dask tasks: on a new LocalCluster (``workers`` processes), or on the cluster at ``scheduler``."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError(
                "sweep: dask is not installed; pip install 'layerwise[sweep]', or run the trials in this process "
                "with --serial"
            ) from None
        self._distributed = distributed
        self.workers, self.scheduler = workers, scheduler
        self.cluster: Any = None
        self.client: Any = None
        self._futures: dict[str, Any] = {}
        self.n_workers = workers or os.cpu_count() or 1
        self.name = (
            f"the Dask cluster at {scheduler}"
            if scheduler
            else f"a local Dask cluster of {self.n_workers} single-threaded worker processes"
        )

    def __enter__(self) -> Dask:
        distributed = self._distributed
        if self.scheduler:
            try:
                self.client = distributed.Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise ConfigError(f"--scheduler {self.scheduler}: cannot connect ({_one_line(str(e))})") from None
            return self
        import logging

        import dask

        # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, so that they give freed
        # memory back to the OS.  Setting it also switches off glibc's adaptive mmap threshold:
        # every array over 128 KiB that a training step allocates is then mapped, faulted in
        # page by page and unmapped again, and trials ran 2-4x slower (max pooling 2.0 ->
        # 4.3 ms a step).  A training run allocates the same sizes every step; keep glibc's default.
        # A cluster started earlier in this process has put the variable into os.environ, which
        # the workers would inherit: it is left out while ours start.
        inherited = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        try:
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self.cluster = distributed.LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    env=WORKER_ENV,  # set in each worker process as it starts (and see _pin_threads)
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
        finally:
            if inherited is not None:
                os.environ["MALLOC_TRIM_THRESHOLD_"] = inherited
        self.client = distributed.Client(self.cluster)
        # Our own workers ignore Ctrl-C from the terminal: the client stops their trials with a checkpoint.
        self.client.register_plugin(_ignore_sigint_plugin(distributed), name="layerwise-ignore-sigint")
        return self

    def __exit__(self, *exc: object) -> None:
        # Shutting the workers down takes a few tenths of a second of waiting: it runs in the
        # background while the caller writes its results and plots; ``join`` waits for it.
        self._closer = threading.Thread(target=self._close, name="layerwise-dask-close", daemon=True)
        self._closer.start()

    def _close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing after an interruption may race; nothing is lost
                    thing.close()

    def join(self, timeout: float = 60.0) -> None:
        """Wait until the client and a cluster of our own are closed (after leaving the ``with`` block)."""
        closer = getattr(self, "_closer", None)
        if closer is not None:
            closer.join(timeout)

    def rows(self, tasks: Sequence[TrialTask]) -> Iterator[dict[str, Any]]:
        nonce = uuid.uuid4().hex[:8]  # two sweeps on one cluster must not share task keys
        for task in tasks:
            self._futures[task.trial_id] = self.client.submit(
                run_trial, task, key=f"layerwise-trial-{task.trial_id}-{nonce}", pure=False
            )
        by_key = {f.key: tid for tid, f in self._futures.items()}
        for future in self._distributed.as_completed(list(self._futures.values())):
            yield self._row(by_key[future.key], future)

    def _row(self, trial_id: str, future: Any, stopping: bool = False) -> dict[str, Any]:
        self._futures.pop(trial_id, None)
        try:
            return future.result()
        except Exception as e:  # noqa: BLE001 - KilledWorker, a lost connection, a cancelled future
            if stopping:
                return {"trial": trial_id, "status": "interrupted"}
            return {"trial": trial_id, "status": "failed", "error": _one_line(f"{type(e).__name__}: {e}")}

    def stop(self, cancel_file: Path, grace_s: float) -> Iterator[dict[str, Any]]:
        """After Ctrl-C: ask running trials to checkpoint and return; cancel what is left after ``grace_s``."""
        if not self._futures:
            return
        from ..atomic import atomic_write

        with atomic_write(cancel_file) as f:
            f.write(b"cancelled\n")
        left = dict(self._futures)
        done, _ = self._distributed.wait(list(left.values()), timeout=grace_s, return_when="ALL_COMPLETED")
        for trial_id, future in left.items():
            if future in done:
                yield self._row(trial_id, future, stopping=True)
        self.client.cancel(list(self._futures.values()))
        for trial_id in list(self._futures):
            yield {"trial": trial_id, "status": "interrupted"}
            self._futures.pop(trial_id, None)


def _ignore_sigint_plugin(distributed: Any) -> Any:
    """A worker plugin: the worker process ignores SIGINT (its ``setup`` runs in the worker's main thread)."""

    class IgnoreSigint(distributed.WorkerPlugin):
        idempotent = True

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()
