"""``layerwise reproduce`` trains through ``train_run``: run folders, --workers on Dask, Ctrl-C and resume, reuse."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise

from .conftest import cli_env, needs_mnist, run_cli

QUICK = ("--epochs", "1", "--limit", "3000", "--quiet")


def weights(path: Path) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in layerwise.load(path).net.named_parameters()}


@needs_mnist
def test_hw2_on_two_dask_workers_equals_the_serial_run(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    serial = run_cli("reproduce", "hw2", *QUICK, "--threads", "1", "--out", str(tmp_path / "serial"))
    assert serial.returncode == 0, serial.stderr
    parallel = run_cli("reproduce", "hw2", *QUICK, "--workers", "2", "--out", str(tmp_path / "dask"), timeout=600)
    assert parallel.returncode == 0, parallel.stderr
    assert "local Dask cluster of 2 single-threaded worker processes" in parallel.stdout
    for name in "abc":  # bit-identical weights: the same train_run, with one BLAS thread on both sides
        a, b = weights(tmp_path / "serial" / name / "model.npz"), weights(tmp_path / "dask" / name / "model.npz")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    rows = [json.loads((tmp_path / d / "results.json").read_text())["networks"] for d in ("serial", "dask")]
    for one, other in zip(*rows, strict=True):
        assert (one["train_accuracy"], one["test_accuracy"]) == (other["train_accuracy"], other["test_accuracy"])


def test_workers_need_several_networks(tmp_path: Path) -> None:
    result = run_cli("reproduce", "lenet5", "--workers", "2", "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "layerwise: error: --workers: lenet5 from one seed trains one network; give --seeds N to train N at once"
    )
    assert not (tmp_path / "o").exists()


@needs_mnist
def test_ctrl_c_leaves_a_checkpoint_and_the_same_command_resumes_then_reuses(tmp_path: Path) -> None:
    out = tmp_path / "hw2"
    args = ["reproduce", "hw2", "--epochs", "60", "--limit", "4000", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "layerwise", *args], env=cli_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("*/checkpoint.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"to resume, run the same command again (without --overwrite): layerwise reproduce hw2 --out {out}" in stderr
    assert list(out.glob("*/checkpoint.npz")) and not (out / "results.json").exists()

    resumed = run_cli(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the interrupted run" in resumed.stdout
    first = json.loads((out / "results.json").read_text())["networks"]
    assert any(net["resumed"] for net in first) and all(net["epochs"] == 60 for net in first)
    assert not list(out.glob("*/checkpoint.npz"))

    again = run_cli(*args, cwd=tmp_path)  # the same settings: the finished runs are reused, not retrained
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already holds this finished run; reusing it") == 3
    second = json.loads((out / "results.json").read_text())["networks"]
    assert [n["test_accuracy"] for n in second] == [n["test_accuracy"] for n in first]

    other = run_cli("reproduce", "hw2", "--epochs", "1", "--limit", "4000", "--out", str(out), "--quiet")
    assert other.returncode == 0, other.stderr  # other settings: trained afresh into the same folders
    assert "reusing" not in other.stdout
    assert all(n["epochs"] == 1 for n in json.loads((out / "results.json").read_text())["networks"])


def test_workers_without_dask_says_what_to_install(tmp_path: Path) -> None:
    """With dask hidden, --workers is refused in one line naming the extra (and no --serial, which sweep has)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "distributed.py").write_text("raise ImportError('hidden for this test')\n")
    env = cli_env(tmp_path) | {"PYTHONPATH": str(hide)}
    done = subprocess.run([sys.executable, "-m", "layerwise", "reproduce", "hw2", "--workers", "2", "--limit", "500",
                           "--epochs", "1", "--out", str(tmp_path / "o")], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "layerwise: error: --workers: dask is not installed; pip install 'layerwise[sweep]', or leave out --workers"
    )
    assert not (tmp_path / "o").exists()  # refused before any folder was made
