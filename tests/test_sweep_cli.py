"""``layerwise sweep`` on the command line: one-line errors, an existing Dask cluster, Ctrl-C and resume.

The cluster test starts ``dask scheduler`` and ``dask worker`` as separate processes on
127.0.0.1 (the multi-machine setup, on one machine) and runs ``python -m layerwise sweep
--scheduler tcp://127.0.0.1:PORT`` against them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from layerwise.cli import main

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LAYERWISE_DATA") or REPO.parent / "shared" / "data")
needs_mnist = pytest.mark.skipif(
    not any((DATA / "mnist").glob("t10k-images*")), reason=f"MNIST not found in {DATA}/mnist (set LAYERWISE_DATA)"
)
# Started with -c so that Ctrl-C raises KeyboardInterrupt even when this test runs with SIGINT ignored
# (a background job of a non-interactive shell): Python only installs its handler when SIGINT is not ignored.
CLI_WITH_SIGINT = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from layerwise.cli import main; sys.exit(main(sys.argv[1:]))",
]
# Enough epochs that a trial cannot finish between its first checkpoint and the cancel reaching it.
LONG_SPEC = "[train]\nepochs = 12\nlimit = 8000\nvalidation = 500\n[grid]\nlr = [1e-3, 2e-3]\n"


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return out | {"LAYERWISE_DATA": str(DATA), "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[train]\nepochs = 1\n[grid]\nlr = [1e-3]\nlrr = [1]\n", "[grid] lrr: unknown option (known: dataset, "),
        ("[grid]\nlr = { logunifrom = [1e-4, 1e-2] }\n", "[grid] lr: expected a non-empty list of values"),
        ("[random]\ntrials = 3\nlr = { logunifrom = [1e-4, 1e-2] }\n", "[random] lr: unknown distribution 'logun"),
        ("[train]\nepochs = 1\n[grid]\n", "[grid] is empty"),
        ("[grid]\nepochs = [0, 1]\n", "[grid] epochs[0]: epochs: expected an integer >= 1, got 0"),
    ],
)
def test_bad_spec_is_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"layerwise: error: {spec}: "), err
    assert expected in err, err
    assert not (tmp_path / "out").exists()


def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text("[grid]\nlr = [1e-3]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--serial", "--workers", "2"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--sort", "speed"]) == 2
    assert "--sort" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.toml" in capsys.readouterr().err


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """``dask scheduler`` and one ``dask worker`` (one thread), as separate processes on 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    info = tmp_path / "scheduler.json"
    logs = [open(tmp_path / name, "wb") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(info)], env=env(), stdout=logs[0], stderr=subprocess.STDOUT,
        ))  # fmt: skip
        deadline = time.monotonic() + 60
        while not info.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--nworkers", "1",
             "--no-dashboard", "--host", "127.0.0.1"], env=env(), stdout=logs[1], stderr=subprocess.STDOUT,
        ))  # fmt: skip
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            worker_pids = set(client.run(os.getpid).values())
        yield address, worker_pids
    finally:
        for proc in reversed(procs):  # the worker first, then the scheduler
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in logs:
            f.close()


@needs_mnist
def test_sweep_on_an_existing_cluster_interrupted_and_resumed(tmp_path: Path, dask_cluster) -> None:
    address, worker_pids = dask_cluster
    spec, out = tmp_path / "sweep.toml", tmp_path / "out"
    spec.write_text(LONG_SPEC)
    args = ["sweep", str(spec), "--out", str(out), "--scheduler", address]
    proc = subprocess.Popen([*CLI_WITH_SIGINT, *args], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob("trials/*/checkpoint.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C in the client, while a trial runs on the cluster's worker
    stdout, stderr = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == 130, stderr
    assert f"to resume, run the same command again: layerwise sweep {spec} --out {out}" in stderr
    statuses = [r["status"] for r in json.loads((out / "results.json").read_text())]
    assert "interrupted" in statuses and "finished" not in statuses[1:], statuses
    assert list(out.glob("trials/*/checkpoint.npz"))  # the running trial stopped with a checkpoint

    done = subprocess.run(
        [sys.executable, "-m", "layerwise", *args], env=env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert any(r["resumed"] for r in rows)  # continued from the checkpoint Ctrl-C left
    assert {int(r["worker"].rsplit(":", 1)[1]) for r in rows} <= worker_pids  # ran on the cluster's worker
    assert all(r["blas_threads"] == 1 for r in rows)  # dask worker processes start with one BLAS thread
    table = done.stdout.splitlines()
    assert table[0].split()[:4] == ["#", "trial", "lr", "status"] and len(table) == 4
    assert not list(out.glob("trials/*/checkpoint.npz")) and not list(out.glob(".cancel-*"))


@needs_mnist
def test_ctrl_c_on_a_terminal_stops_the_local_cluster_cleanly(tmp_path: Path) -> None:
    """The terminal sends SIGINT to the whole process group: the workers must let the client stop them."""
    pytest.importorskip("distributed")
    spec, out = tmp_path / "sweep.toml", tmp_path / "out"
    spec.write_text(LONG_SPEC)
    proc = subprocess.Popen(
        [*CLI_WITH_SIGINT, "sweep", str(spec), "--out", str(out), "--workers", "2"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("trials/*/checkpoint.npz")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = (s.decode() for s in proc.communicate(timeout=120))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    rows = json.loads((out / "results.json").read_text())
    assert {r["status"] for r in rows} <= {"interrupted", "finished"} and "interrupted" in {r["status"] for r in rows}
    for row in rows:  # a trial that had started stopped with a checkpoint (or had finished)
        folder = out / "trials" / row["trial"]
        if (folder / "config.json").is_file():
            assert (folder / ("checkpoint.npz" if row["status"] == "interrupted" else "metrics.json")).is_file()
    deadline = time.monotonic() + 20
    while live_processes_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_processes_in_group(proc.pid) == []  # no worker process outlived the client


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
