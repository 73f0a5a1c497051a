"""Interrupting ``layerwise train`` and resuming it: the final weights are bit-identical.

Each test starts the real console script, waits until its progress bar shows that
the second epoch has begun (tqdm writes ``Epoch 2/N`` to stderr when the epoch's
bar opens), sends a signal, and resumes with ``layerwise train --resume DIR``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import layerwise

from .conftest import cli_env, layerwise_command, needs_mnist, run_cli

pytestmark = needs_mnist

EPOCHS = 3
TRAIN = [
    "train",
    "--dataset",
    "mnist",
    "--arch",
    "[(140,ReLU),(10,Linear)]",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--batch-size",
    "32",
    "--seed",
    "0",
    "--limit",
    "12000",
    "--progress",  # the bars (and their "Epoch 2/N") on a pipe too: the tests watch for them
]


class Training:
    """A ``layerwise train`` subprocess whose stderr is watched for a marker."""

    def __init__(self, args: list[str], cwd: Path, marker: str) -> None:
        self.marker = marker.encode()
        self.seen = threading.Event()
        self.stderr = b""
        self.proc = subprocess.Popen(
            [*layerwise_command(), *args], cwd=cwd, env=cli_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 4096):
            self.stderr += chunk
            if self.marker in self.stderr:
                self.seen.set()
        self.seen.set()  # EOF: the process ended (the test then sees why)

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        stdout = self.proc.stdout.read()
        code = self.proc.wait(timeout)
        self.thread.join(timeout)
        return code, stdout.decode(), self.stderr.decode()


def weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k != "__header__"}


def assert_bit_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    assert any(k.startswith("optimizer/") for k in wa)  # Adam's moments are compared too
    for key in wa:
        assert wa[key].dtype == wb[key].dtype
        assert np.array_equal(wa[key], wb[key]), f"{key} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run, never interrupted (and never checkpointed)."""
    tmp = tmp_path_factory.mktemp("reference")
    result = run_cli(*TRAIN, "--epochs", str(EPOCHS), "--out", "ref", "--quiet", "--checkpoint-every", "0", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return tmp / "ref" / "model.npz"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_bit_identical(sig: signal.Signals, reference: Path, tmp_path: Path) -> None:
    run = Training([*TRAIN, "--epochs", str(EPOCHS), "--out", "run"], tmp_path, marker=f"Epoch 2/{EPOCHS}")
    assert run.seen.wait(300), "training never reached epoch 2"
    run.proc.send_signal(sig)
    code, stdout, stderr = run.finish()
    assert code == 128 + sig, (code, stderr)
    assert "Traceback" not in stderr
    assert f"layerwise train --resume {Path('run')}" in stderr
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    state = layerwise.load(checkpoint).train_state
    assert state["epoch"] in (1, 2) and state["step"] >= 1  # stopped inside an epoch
    assert len(state["history"]["loss"]) == state["epoch"]
    assert not (tmp_path / "run" / "model.npz").exists()

    # A fresh run may not overwrite the unfinished one, nor may --resume change its settings.
    refused = run_cli(*TRAIN, "--epochs", str(EPOCHS), "--out", "run", cwd=tmp_path)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    refused = run_cli("train", "--resume", "run", "--lr", "3e-3", cwd=tmp_path)
    assert refused.returncode == 2 and "lr" in refused.stderr, refused.stderr

    resumed = run_cli("train", "--resume", "run", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at epoch {state['epoch'] + 1} step {state['step']}" in resumed.stdout
    assert_bit_identical(tmp_path / "run" / "model.npz", reference)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resumed"] and len(metrics["history"]) == EPOCHS
    assert not checkpoint.exists()


def test_crash_resumes_from_the_epoch_checkpoint(reference: Path, tmp_path: Path) -> None:
    """SIGKILL gives no chance to save: the checkpoint written at the end of epoch 1 is used."""
    run = Training([*TRAIN, "--epochs", str(EPOCHS), "--out", "run"], tmp_path, marker=f"Epoch 2/{EPOCHS}")
    assert run.seen.wait(300), "training never reached epoch 2"
    run.proc.kill()
    code, _, _ = run.finish()
    assert code == -signal.SIGKILL
    state = layerwise.load(tmp_path / "run" / "checkpoint.npz").train_state
    assert (state["epoch"], state["step"]) == (1, 0)
    resumed = run_cli("train", "--resume", "run", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_bit_identical(tmp_path / "run" / "model.npz", reference)


# -- a CNN with BatchNorm and Dropout: the masks' generator and the running statistics are resumed too ----
CNN_ARCH = "[conv(8,3),batchnorm,relu,maxpool(2),dropout(0.5),(10,Linear)]"
CNN_TRAIN = ["train", "--dataset", "mnist", "--arch", CNN_ARCH, "--batch-size", "32", "--seed", "0", "--limit", "6000",
             "--progress"]  # fmt: skip


@pytest.fixture(scope="module")
def cnn_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cnn_reference")
    result = run_cli(*CNN_TRAIN, "--epochs", str(EPOCHS), "--out", "ref", "--quiet", "--checkpoint-every", "0", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return tmp / "ref" / "model.npz"


def test_cnn_with_dropout_resumes_bit_identically_after_sigint(cnn_reference: Path, tmp_path: Path) -> None:
    run = Training([*CNN_TRAIN, "--epochs", str(EPOCHS), "--out", "run"], tmp_path, marker=f"Epoch 2/{EPOCHS}")

    assert run.seen.wait(300), "training never reached epoch 2"
    run.proc.send_signal(signal.SIGINT)
    code, _, stderr = run.finish()
    assert code == 128 + signal.SIGINT, (code, stderr)
    state = layerwise.load(tmp_path / "run" / "checkpoint.npz").train_state
    assert state["epoch"] in (1, 2) and state["step"] >= 1  # stopped inside an epoch
    assert "noise_rng_state" in state  # where the next Dropout mask comes from
    # The same architecture spelled differently is the same configuration.
    spelled = " [CONV(8, 3), BN, ReLU, MaxPool2D(2), Dropout(.5), (10, 'linear')] "
    resumed = run_cli("train", "--resume", "run", "--arch", spelled, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at epoch {state['epoch'] + 1} step {state['step']}" in resumed.stdout
    assert_bit_identical(tmp_path / "run" / "model.npz", cnn_reference)
    with np.load(cnn_reference, allow_pickle=False) as archive:  # the running statistics were compared too
        assert any(k.startswith("buffers/") for k in archive.files)
