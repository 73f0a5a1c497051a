"""A run folder is a transaction: locked, fingerprinted, never overwritten by accident, never lost to a signal."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise
from layerwise.runs import RunFolder

from .conftest import cli_env, layerwise_command, needs_mnist, run_cli

pytestmark = needs_mnist

SMALL = ["train", "--arch", "[(16,ReLU),(10,Linear)]", "--limit", "1500", "--batch-size", "50", "--quiet"]


def one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error: "), result.stderr
    assert len(lines[0]) < 400, lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    result = run_cli(*SMALL, "--epochs", "2", "--out", "run", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return tmp / "run"


def test_training_reports_validation_not_test_and_test_once_at_the_end(tmp_path: Path) -> None:
    result = run_cli(*SMALL[:-1], "--epochs", "2", "--out", "run", cwd=tmp_path)  # not --quiet: per-epoch lines
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    finished_at = next(i for i, line in enumerate(lines) if line.startswith("Finished"))
    during = "\n".join(lines[:finished_at]) + result.stderr
    assert "validation accuracy" in during and "test" not in during.lower()
    assert any(line.startswith("test ") for line in lines[finished_at:])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all("val_accuracy" in epoch for epoch in metrics["history"])
    assert metrics["config"]["n_validation"] == 150 and metrics["config"]["n_train"] == 1350


def test_a_finished_run_is_not_overwritten_without_overwrite(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = (out / "model.npz").read_bytes()
    one_line_error(run_cli(*SMALL, "--epochs", "1", "--out", str(out)), "finished run", "--overwrite")
    assert (out / "model.npz").read_bytes() == before
    result = run_cli(*SMALL, "--epochs", "1", "--out", str(out), "--overwrite")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


def test_a_locked_folder_names_its_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder(out).lock():
        one_line_error(run_cli(*SMALL, "--epochs", "1", "--out", str(out)), "another run is writing", "pid")
    assert not (out / "model.npz").exists()


def test_a_foreign_checkpoint_is_refused_naming_the_field(finished: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    result = run_cli(*SMALL, "--epochs", "3", "--lr", "3e-3", "--out", str(other), "--checkpoint-every", "1")
    assert result.returncode == 0, result.stderr
    ours = tmp_path / "ours"
    shutil.copytree(finished, ours)
    # A checkpoint of another run (lr 3e-3) dropped into our folder, which says lr 1e-3.
    shutil.copy(other / "model.npz", ours / "checkpoint.npz")
    one_line_error(run_cli("train", "--resume", str(ours), "--quiet"), "different run", "lr")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda c: c.update(optimizer="adagrad"), "optimizer"),
        (lambda c: c.update(seed="0"), "seed"),
        (lambda c: c.update(limit="100"), "limit"),
        (lambda c: c.update(epochs=None), "epochs"),
        (lambda c: c.update(unknown=1), "unknown"),
    ],
    ids=["optimizer", "seed-string", "limit-string", "epochs-null", "unknown-key"],
)
def test_a_tampered_config_is_refused_naming_the_field(finished: Path, tmp_path: Path, edit, fragment: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    config = json.loads((out / "config.json").read_text())
    edit(config)
    (out / "config.json").write_text(json.dumps(config))
    one_line_error(run_cli("train", "--resume", str(out), "--epochs", "3", "--quiet"), fragment)


@pytest.mark.parametrize("text", ["5000 digits", "deep nesting"])
def test_a_config_json_that_python_cannot_read_is_refused(finished: Path, tmp_path: Path, text: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    body = '{"seed": ' + "1" * 5000 + "}" if text == "5000 digits" else "[" * 100_000
    (out / "config.json").write_text(body)
    one_line_error(run_cli("train", "--resume", str(out), "--epochs", "3", "--quiet"), "config.json")


def test_a_finished_run_can_be_extended_bit_identically(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    result = run_cli("train", "--resume", str(out), "--epochs", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    straight = run_cli(*SMALL, "--epochs", "3", "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    a, b = layerwise.load(out / "model.npz").net, layerwise.load(tmp_path / "straight" / "model.npz").net
    assert np.array_equal(a.flat_params, b.flat_params)


@pytest.mark.parametrize("text", ["١", "²", "3.0", "-1", "0"])
def test_epochs_takes_ascii_positive_integers_only(tmp_path: Path, text: str) -> None:
    one_line_error(run_cli(*SMALL, "--epochs", text, "--out", "x", cwd=tmp_path), "--epochs")


def test_signals_at_random_moments_leave_a_complete_or_resumable_folder(tmp_path: Path) -> None:
    """SIGINT/SIGTERM at random times, including after the last epoch: never a lost run."""
    rng = random.Random(0)
    outcomes = set()
    for trial in range(6):
        out = tmp_path / f"run{trial}"
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        proc = subprocess.Popen(
            [*layerwise_command(), *SMALL, "--epochs", "2", "--out", str(out)],
            env=cli_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # "From the first line of train": wait for its first line of output (start-up and imports come
        # before any handler can exist), then anywhere in training, evaluation or writing the outputs.
        first = proc.stdout.readline()
        assert first.startswith("Training"), first
        time.sleep(rng.uniform(0.0, 4.0))
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=300)
        state = RunFolder(out).state
        if proc.returncode == 0:  # finished before the signal
            assert state == "finished"
            outcomes.add("finished first")
            continue
        assert proc.returncode == 128 + sig, (proc.returncode, stderr)
        assert "Traceback" not in stderr
        if state == "unfinished":
            assert "--resume" in stderr
            result = run_cli("train", "--resume", str(out), "--quiet")
            assert result.returncode == 0, result.stderr
            outcomes.add("resumed")
        else:
            assert state in ("finished", "empty"), state
            if state == "finished":
                assert "complete" in stderr
            outcomes.add(state)
        final = RunFolder(out).state
        assert final in ("finished", "empty"), final
    assert outcomes, "no trial ran"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--arch", "999999999:relu,10", "--limit", "100", "--out", "x"], ["memory", "--arch"]),
        (["bench", "--repeats", "0"], ["--repeats", "positive integer"]),
        (["bench", "cnn", "--repeats", "0"], ["--repeats", "positive integer"]),
    ],
    ids=["huge-arch", "bench-repeats", "bench-cnn-repeats"],
)
def test_more_one_line_errors(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    one_line_error(run_cli(*args, cwd=tmp_path), *fragments)


def test_a_signal_after_the_last_output_line_leaves_a_clean_exit(tmp_path: Path) -> None:
    """SIGTERM/SIGINT while the finished process shuts down (after main() returned): exit 0, or 128 + the
    signal if it still reached train's own handler, but never killed by it (-15) or a traceback."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"run-{sig.name}"
        proc = subprocess.Popen(
            [*layerwise_command(), *SMALL, "--epochs", "1", "--out", str(out)],
            env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for line in proc.stdout:  # the last line train prints names what it wrote
            if line.startswith("Wrote "):
                break
        while proc.poll() is None:  # keep signalling until the process is gone
            proc.send_signal(sig)
            time.sleep(0.005)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode in (0, 128 + sig), (proc.returncode, stderr)
        assert "Traceback" not in stderr
        assert RunFolder(out).state == "finished"
