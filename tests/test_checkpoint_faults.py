"""Issue 5, item 3 (the fault test): a crash while a checkpoint is written loses nothing.

``layerwise.atomic.atomic_write`` writes a temporary file beside the target, fsyncs
it and renames it over the target.  Whatever fails on the way (the writer, the
fsync, the rename, a Ctrl-C, or SIGKILL of the whole process) the previous
checkpoint at the path must still load with its old weights and training state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.io import save_model


def trained_model(epochs: int) -> lw.Model:
    net = lw.NeuralNetwork(4, [(6, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net, optimizer=lw.optim.Adam(0.01))
    rng = np.random.default_rng(0)
    model.fit(rng.random((32, 4)), np.arange(32) % 3, epochs=epochs, batch_size=8, verbose=0)
    return model


def checkpoint(model: lw.Model, path: Path) -> None:
    """What the CLI writes each epoch: the model plus its training state."""
    save_model(model, path, train_state={**model.train_state, "history": model.history.history})


@pytest.fixture
def old_and_new(tmp_path):
    """A checkpoint after 1 epoch at ``path``, and the model after 3 epochs about to overwrite it."""
    path = tmp_path / "run" / "checkpoint.npz"
    old = trained_model(1)
    checkpoint(old, path)
    new = trained_model(3)
    assert not np.array_equal(old.net.flat_params, new.net.flat_params)
    return path, old, new


def assert_old_checkpoint_intact(path: Path, old: lw.Model) -> None:
    loaded = lw.load(path)
    np.testing.assert_array_equal(loaded.net.flat_params, old.net.flat_params)
    assert loaded.train_state["epoch"] == 1
    assert len(loaded.train_state["history"]["loss"]) == 1
    for slot, arrays in old.optimizer.state.items():
        np.testing.assert_array_equal(loaded.optimizer.state[slot][0], arrays[0])


def assert_no_stray_files(path: Path) -> None:
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


class CrashError(Exception):
    pass


def half_written_savez(f, **arrays):
    """Write half of what np.savez would, then fail like a full disk."""
    import io

    buf = io.BytesIO()
    real_savez(buf, **arrays)
    data = buf.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    raise OSError(28, "No space left on device")


real_savez = np.savez


def test_writer_fails_half_way(old_and_new, monkeypatch):
    path, old, new = old_and_new
    monkeypatch.setattr(np, "savez", half_written_savez)
    with pytest.raises(OSError, match="No space left"):
        checkpoint(new, path)
    assert_old_checkpoint_intact(path, old)
    assert_no_stray_files(path)


@pytest.mark.parametrize(
    "exc",
    [CrashError("power cut"), KeyboardInterrupt(), OSError(5, "I/O error")],
    ids=["exception", "ctrl-c", "oserror"],
)
@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_crash_before_rename(old_and_new, monkeypatch, exc, where):
    """The temporary file is complete but fsync or the rename fails: the target is untouched."""
    path, old, new = old_and_new
    temps: list[str] = []
    real_replace = os.replace

    def failing(*args, **kwargs):
        temps.extend(str(a) for a in args if isinstance(a, (str, Path)))
        raise exc

    monkeypatch.setattr(os, where, failing)
    with pytest.raises(type(exc)):
        checkpoint(new, path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert_old_checkpoint_intact(path, old)
    assert_no_stray_files(path)
    if where == "replace":  # the file it was about to rename was the temporary one, beside the target
        assert Path(temps[0]).parent == path.parent and Path(temps[0]).name.startswith(f".{path.name}.")


def test_successful_overwrite_after_a_failed_one(old_and_new, monkeypatch):
    path, old, new = old_and_new
    monkeypatch.setattr(np, "savez", half_written_savez)
    with pytest.raises(OSError):
        checkpoint(new, path)
    monkeypatch.setattr(np, "savez", real_savez)
    checkpoint(new, path)
    loaded = lw.load(path)
    np.testing.assert_array_equal(loaded.net.flat_params, new.net.flat_params)
    assert loaded.train_state["epoch"] == 3
    assert_no_stray_files(path)


def test_leftover_truncated_temp_file_is_harmless(old_and_new):
    """A temp file left by an earlier SIGKILL neither breaks loading nor the next save."""
    path, old, new = old_and_new
    stray = path.parent / f".{path.name}.abc123.tmp"
    stray.write_bytes(path.read_bytes()[:100])
    assert_old_checkpoint_intact(path, old)
    checkpoint(new, path)
    np.testing.assert_array_equal(lw.load(path).net.flat_params, new.net.flat_params)
    with pytest.raises(lw.errors.ModelFileError):  # and the stray itself is refused, not half-loaded
        lw.load(stray)


CHILD = textwrap.dedent(
    """
    import io, os, signal, sys
    import numpy as np
    import layerwise as lw
    from layerwise.io import save_model

    path, ready = sys.argv[1], sys.argv[2]
    net = lw.NeuralNetwork(4, [(6, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net, optimizer=lw.optim.Adam(0.01))
    x, y = np.random.default_rng(0).random((32, 4)), np.arange(32) % 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    save_model(model, path, train_state=model.train_state)
    np.save(ready, model.net.flat_params)   # the weights of the good checkpoint
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)

    real_savez = np.savez
    def dying_savez(f, **arrays):
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)   # the process dies mid-write
    np.savez = dying_savez
    save_model(model, path, train_state=model.train_state)
    print("not reached")
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_write_leaves_previous_checkpoint(tmp_path):
    path, ready = tmp_path / "checkpoint.npz", tmp_path / "good_weights.npy"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(ready)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "not reached" not in proc.stdout
    loaded = lw.load(path)
    np.testing.assert_array_equal(loaded.net.flat_params, np.load(ready))
    assert loaded.train_state["epoch"] == 1
    # SIGKILL leaves no chance to clean up: the half-written temporary file remains,
    # beside the target, under a name that cannot be mistaken for it; it is refused.
    strays = [p for p in tmp_path.iterdir() if p.name.startswith(".checkpoint.npz.") and p.suffix == ".tmp"]
    assert len(strays) == 1
    with pytest.raises(lw.errors.ModelFileError):
        lw.load(strays[0])
