"""Sweeps on a real Dask LocalCluster (two single-threaded worker processes) with tiny MNIST runs.

The references are ``train_run`` calls in this process with one BLAS thread, as the
workers have: the order of a matrix product's additions depends on the thread count,
so only then are the weights bit-identical.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layerwise import sweep
from layerwise.errors import RunFolderError
from layerwise.runs import CancelToken, RunConfig, train_run
from layerwise.sweep import load_spec

distributed = pytest.importorskip("distributed")
threadpoolctl = pytest.importorskip("threadpoolctl")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LAYERWISE_DATA") or REPO.parent / "shared" / "data")
pytestmark = pytest.mark.skipif(
    not any((DATA / "mnist").glob("t10k-images*")), reason=f"MNIST not found in {DATA}/mnist (set LAYERWISE_DATA)"
)

GRID = {
    "train": {"epochs": 2, "limit": 2000, "validation": 200},
    "grid": {"arch": ["[(10,Linear)]", "[(24,ReLU),(10,Linear)]"], "lr": [1e-3, 3e-3]},
}


def _quiet(*args: Any, **kwargs: Any) -> None:
    pass


def reference_run(config: RunConfig, out: Path, cancel: CancelToken | None = None) -> Path:
    with threadpoolctl.threadpool_limits(1):
        train_run(config, out, verbose=0, log=_quiet, cancel=cancel)
    return out


def weights(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "model.npz") as z:
        return {k: z[k] for k in z.files if k.startswith(("net/", "buffers/"))}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    for key in wa:
        assert np.array_equal(wa[key], wb[key]), f"{key} differs between {a} and {b}"


@pytest.fixture(scope="module", autouse=True)
def data_env() -> Any:
    """Worker processes inherit the environment when they start: the data must be found there too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERWISE_DATA", str(DATA))
        mp.setenv("MPLBACKEND", "Agg")
        mp.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
        yield


@pytest.fixture(scope="module")
def cluster(data_env: Any) -> Any:
    """A LocalCluster shared by the tests that pass its address as the sweep's scheduler."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local.scheduler_address, client


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory, data_env: Any) -> dict[str, Path]:
    """The grid's four trials, each run by ``train_run`` in this process."""
    root = tmp_path_factory.mktemp("references")
    return {t.id: reference_run(t.config, root / t.id) for t in load_spec(GRID).trials()}


def test_grid_on_a_local_cluster_matches_serial_runs(tmp_path: Path, references: dict[str, Path]) -> None:
    lines: list[str] = []
    rows = sweep.run(GRID, tmp_path, workers=2, progress=False, log=lines.append)
    assert "a local Dask cluster of 2 single-threaded worker processes" in lines[0]
    trials = load_spec(GRID).trials()
    assert [r["trial"] for r in rows] == [t.id for t in trials]
    for row, trial in zip(rows, trials, strict=True):
        assert row["status"] == "finished", row
        assert {k: row[k] for k in trial.values} == trial.values
        assert_same_weights(tmp_path / "trials" / trial.id, references[trial.id])
        ref = RunConfig.from_json((references[trial.id] / "config.json").read_text())
        assert ref == trial.config
        metrics = json.loads((references[trial.id] / "metrics.json").read_text())
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "train_accuracy", "train_loss"):
            assert row[key] == metrics[key], key
        assert row["epochs_run"] == 2 and row["resumed"] is False
        assert row["blas_threads"] == 1  # threadpoolctl, inside the task: BLAS pinned in the worker processes
        assert int(row["worker"].rsplit(":", 1)[1]) != os.getpid()
    assert (tmp_path / "results.csv").read_text().count("\n") == 5
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [t.config for t in load_spec(tmp_path / "sweep.toml").trials()] == [t.config for t in trials]


def test_rerun_finishes_only_the_missing_trials(
    tmp_path: Path, references: dict[str, Path], cluster: tuple[str, Any]
) -> None:
    t_done1, t_done2, t_unfinished, t_new = load_spec(GRID).trials()
    for t in (t_done1, t_done2):  # as if an earlier run of the sweep had finished these two
        shutil.copytree(references[t.id], tmp_path / "trials" / t.id)
    token = CancelToken()
    token.request()  # stops after the first step: a checkpoint in the middle of epoch 1
    partial = reference_run(t_unfinished.config, tmp_path / "trials" / t_unfinished.id, cancel=token)
    assert (partial / "checkpoint.npz").is_file() and not (partial / "model.npz").exists()
    before = {p: p.stat().st_mtime_ns for t in (t_done1, t_done2) for p in (tmp_path / "trials" / t.id).iterdir()}

    lines: list[str] = []
    rows = {r["trial"]: r for r in sweep.run(GRID, tmp_path, scheduler=cluster[0], progress=False, log=lines.append)}
    assert "4 trials, 2 finished already, 2 to run" in lines[0]
    assert all(r["status"] == "finished" for r in rows.values())
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the finished trials were not touched
    for t in (t_done1, t_done2):
        assert rows[t.id]["worker"] is None  # read back from the folder, not run
    assert rows[t_unfinished.id]["resumed"] is True and rows[t_new.id]["resumed"] is False
    for t in (t_unfinished, t_new):
        assert rows[t.id]["worker"] is not None
        assert_same_weights(tmp_path / "trials" / t.id, references[t.id])


def test_diverging_trial_fails_while_the_others_finish(tmp_path: Path, cluster: tuple[str, Any]) -> None:
    spec = {
        "train": {"epochs": 1, "limit": 1000, "validation": 200, "optimizer": "sgd", "arch": "[(24,ReLU),(10,Linear)]"},
        "grid": {"lr": [0.1, 1e30, 0.2]},
    }
    rows = sweep.run(spec, tmp_path, scheduler=cluster[0], progress=False, log=_quiet)
    assert [r["status"] for r in rows] == ["finished", "failed", "finished"]
    assert rows[1]["error"].startswith("DivergenceError: training diverged")
    assert rows[1]["val_accuracy"] is None and rows[0]["val_accuracy"] > 0.5 and rows[2]["val_accuracy"] > 0.5
    csv_text = (tmp_path / "results.csv").read_text()
    assert "failed" in csv_text and "DivergenceError" in csv_text
    table = sweep.format_table(rows, ["lr"], "val_accuracy")
    assert table.splitlines()[-1].startswith(f"  {rows[1]['trial']}: DivergenceError")

    # A rerun tries the failed trial again (it fails again) and leaves the finished ones alone.
    stamp = (tmp_path / "trials" / rows[0]["trial"] / "metrics.json").stat().st_mtime_ns
    lines: list[str] = []
    again = sweep.run(spec, tmp_path, scheduler=cluster[0], progress=False, log=lines.append)
    assert "3 trials, 2 finished already, 1 to run" in lines[0]
    assert [r["status"] for r in again] == ["finished", "failed", "finished"]
    assert (tmp_path / "trials" / rows[0]["trial"] / "metrics.json").stat().st_mtime_ns == stamp


def test_a_killed_worker_does_not_lose_its_trial(tmp_path: Path, cluster: tuple[str, Any]) -> None:
    address, client = cluster
    spec = {"train": {"epochs": 8, "limit": 12000, "validation": 1000}, "grid": {"lr": [1e-3, 2e-3]}}
    target = load_spec(spec).trials()[0]
    folder = tmp_path / "trials" / target.id
    outcome: dict[str, Any] = {}

    def sweep_in_background() -> None:
        try:
            outcome["rows"] = sweep.run(spec, tmp_path, scheduler=address, progress=False, log=_quiet)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=sweep_in_background, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        if (folder / "checkpoint.npz").is_file():  # epoch 1 is done: the trial is mid-way
            running = [w for w, keys in client.processing().items() if any(target.id in str(k) for k in keys)]
            if running:
                victim = client.run(os.getpid)[running[0]]
                os.kill(victim, signal.SIGKILL)
                break
        time.sleep(0.01)
    assert victim is not None, f"never saw trial {target.id} mid-way on a worker: {outcome}"
    assert not (folder / "metrics.json").exists()  # it really was killed before it finished
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in outcome, outcome
    rows = {r["trial"]: r for r in outcome["rows"]}
    assert [r["status"] for r in rows.values()] == ["finished", "finished"]
    row = rows[target.id]
    assert row["resumed"] is True and row["epochs_run"] == 8
    assert int(row["worker"].rsplit(":", 1)[1]) != victim
    assert_same_weights(folder, reference_run(target.config, tmp_path / "reference"))


def test_serial_random_search_is_reproducible(tmp_path: Path) -> None:
    spec = {
        "train": {"epochs": 1, "limit": 1000, "validation": 200},
        "random": {"trials": 2, "seed": 3, "lr": {"loguniform": [1e-4, 1e-2]}, "batch_size": {"int": [16, 64]}},
    }
    rows = sweep.run(spec, tmp_path, serial=True, progress=False, log=_quiet)
    expected = load_spec(spec).trials()
    assert [{k: r[k] for k in ("lr", "batch_size")} for r in rows] == [t.values for t in expected]
    assert all(r["status"] == "finished" and r["worker"].endswith(f":{os.getpid()}") for r in rows)
    lines: list[str] = []
    again = sweep.run(spec, tmp_path, serial=True, progress=False, log=lines.append)
    assert "2 trials, 2 finished already, 0 to run" in lines[0]
    assert [r["val_accuracy"] for r in again] == [r["val_accuracy"] for r in rows]


def test_a_trial_folder_holding_another_run_is_refused(tmp_path: Path) -> None:
    trial = load_spec(GRID).trials()[0]
    folder = tmp_path / "trials" / trial.id
    folder.mkdir(parents=True)
    other = trial.config.replace(lr=0.5)
    (folder / "config.json").write_text(json.dumps(other.to_dict()))
    with pytest.raises(RunFolderError, match=r"holds a different run than the spec's trial .*lr: 0.001"):
        sweep.run(GRID, tmp_path, serial=True, progress=False, log=_quiet)
    assert not (tmp_path / "results.csv").exists()  # refused before anything ran or was written


def test_a_changed_spec_reuses_the_trials_it_shares(tmp_path: Path) -> None:
    """Trial ids are content hashes: growing the grid reruns only the new trials; the folder then holds the new spec."""
    small = {"train": {"epochs": 1, "limit": 1000, "validation": 200}, "grid": {"lr": [1e-3, 2e-3]}}
    first = sweep.run(small, tmp_path, serial=True, progress=False, log=_quiet)
    stamps = {r["trial"]: (tmp_path / "trials" / r["trial"] / "model.npz").stat().st_mtime_ns for r in first}
    grown = {**small, "grid": {"lr": [1e-3, 2e-3, 4e-3]}}
    lines: list[str] = []
    rows = sweep.run(grown, tmp_path, serial=True, progress=False, log=lines.append)
    assert any("held another spec; it is replaced" in line for line in lines)
    assert "3 trials, 2 finished already, 1 to run" in lines[1]
    assert [r["lr"] for r in rows] == [1e-3, 2e-3, 4e-3] and all(r["status"] == "finished" for r in rows)
    assert {t: (tmp_path / "trials" / t / "model.npz").stat().st_mtime_ns for t in stamps} == stamps
    assert load_spec(tmp_path / "sweep.toml").grid == {"lr": [1e-3, 2e-3, 4e-3]}
    assert len(json.loads((tmp_path / "results.json").read_text())) == 3


def test_a_trial_another_process_is_writing_is_waited_for(tmp_path: Path) -> None:
    """E.g. a cluster worker still training the trial for a sweep whose client was killed."""
    spec = {"train": {"epochs": 1, "limit": 1000, "validation": 200}, "grid": {"lr": [1e-3]}}
    folder = sweep.driver.RunFolder(tmp_path / "trials" / load_spec(spec).trials()[0].id)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder.lock():
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert locked.wait(30)
    threading.Timer(1.0, release.set).start()
    rows = sweep.run(spec, tmp_path, serial=True, progress=False, log=_quiet)
    assert release.is_set() and rows[0]["status"] == "finished", rows
    holder.join(30)


def _worker_setup() -> tuple[str | None, int, int | None]:
    from layerwise.layers import _fast
    from layerwise.sweep import execute

    execute._pin_threads()  # what run_trial does before it trains
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), _fast.threads(), execute._blas_threads()


def test_our_workers_keep_glibc_malloc_and_train_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from layerwise.sweep.execute import Dask

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as a cluster started earlier leaves it
    with Dask(workers=1) as dask_:
        trim, threads, blas = dask_.client.submit(_worker_setup, pure=False).result()
    dask_.join()
    # Dask's default MALLOC_TRIM_THRESHOLD_ made every array a step allocates fault in anew: 2-4x slower trials.
    assert trim is None and os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # ours only: this process keeps it
    assert threads == 1 and blas == 1  # two workers with two-thread regions each on 2 cores: 3x slower


def test_trials_on_an_existing_cluster_train_on_one_thread_too(cluster: tuple[str, Any]) -> None:
    # Its workers start with the defaults (Numba: a thread per core); a trial holds one.
    _, client = cluster
    _, threads, blas = client.submit(_worker_setup, pure=False).result()
    assert threads == 1 and blas == 1
