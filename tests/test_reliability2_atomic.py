"""Issue 9, items 8 and 9: one atomic writer for every file the library writes.

``layerwise.atomic.atomic_write`` must, for models, checkpoints, JSON, IDX files,
plots and downloaded data alike: leave the old file intact and no temporary file
behind when the disk fills up (an injected ``ENOSPC`` at every stage of every write
path, and a real small tmpfs); name the target in the error, never the temporary
file; fsync the folder after the rename; keep the target's permission bits; write
through a symlink; and clean up after a second Ctrl-C.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import atomic, plots
from layerwise.atomic import atomic_write
from layerwise.callbacks import ModelCheckpoint
from layerwise.data import datasets
from layerwise.data.idx import read_idx, write_idx
from layerwise.errors import FileWriteError, LayerwiseError
from layerwise.io import save_model

OLD = b"the previous contents, which must survive\n"


def small_model(n_in: int = 4, hidden: int = 5) -> lw.Model:
    net = lw.NeuralNetwork(n_in, [(hidden, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net, optimizer=lw.optim.Adam(0.01))
    rng = np.random.default_rng(0)
    model.fit(rng.random((16, n_in)), np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    return model


class FullDisk:
    """A file object that accepts ``budget`` bytes, then fails like a full disk (ENOSPC)."""

    def __init__(self, f, budget: int) -> None:
        self._f, self._left = f, budget

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if len(data) > self._left:
            self._f.write(data[: self._left])
            self._left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode), budget))


# -- every write path of the library ---------------------------------------------------------
def write_model(path: Path) -> None:
    small_model().save(path)


def write_checkpoint(path: Path) -> None:
    model = small_model()
    save_model(model, path, train_state={**model.train_state, "history": model.history.history})


def write_by_callback(path: Path) -> None:
    net = lw.NeuralNetwork(4, [(5, "ReLU"), (3, "Linear")], seed=0)
    x = np.random.default_rng(0).random((16, 4))
    lw.Model(net).fit(x, np.arange(16) % 3, epochs=1, verbose=0, callbacks=[ModelCheckpoint(path)])


def write_idx_raw(path: Path) -> None:
    write_idx(path, np.arange(4096, dtype=np.uint8).reshape(4, 32, 32))


def write_idx_gz(path: Path) -> None:
    write_idx(path, np.random.default_rng(0).integers(0, 256, (4, 32, 32), np.uint8), compress=True)


def write_json(path: Path) -> None:  # what metrics.json, config.json and results.json go through
    with atomic_write(path) as f:
        f.write(json.dumps({"accuracy": [0.5] * 500}, indent=2).encode())


def write_learning_curves(path: Path) -> None:
    plots.learning_curves({"loss": [1.0, 0.5, 0.3], "accuracy": [0.5, 0.7, 0.8]}, path)


def write_confusion(path: Path) -> None:
    plots.confusion_matrix(np.eye(3, dtype=int) * 7, path)


def write_templates(path: Path) -> None:
    plots.weight_templates(np.random.default_rng(0).standard_normal((16, 3)), path)


WRITERS = {
    "model": (write_model, "model.npz"),
    "checkpoint": (write_checkpoint, "checkpoint.npz"),
    "ModelCheckpoint": (write_by_callback, "best.npz"),
    "idx": (write_idx_raw, "images-idx3-ubyte"),
    "idx-gz": (write_idx_gz, "images-idx3-ubyte.gz"),
    "json": (write_json, "metrics.json"),
    "learning-curves": (write_learning_curves, "learning_curves.png"),
    "confusion-matrix": (write_confusion, "confusion_matrix.png"),
    "weight-templates": (write_templates, "weights.png"),
}


def assert_refused_cleanly(info: pytest.ExceptionInfo, path: Path, shown: Path | None = None) -> None:
    err = info.value
    assert isinstance(err, FileWriteError) and isinstance(err, OSError) and isinstance(err, LayerwiseError)
    assert err.errno == errno.ENOSPC
    message = str(err)
    assert str(shown or path) in message and "No space left" in message, message
    assert ".tmp" not in message, message  # never the temporary file


@pytest.mark.parametrize("budget", [0, 1000], ids=["at-once", "part-way"])
@pytest.mark.parametrize("kind", list(WRITERS))
def test_full_disk_during_every_write_leaves_the_old_file(tmp_path, monkeypatch, kind, budget):
    write, name = WRITERS[kind]
    path = tmp_path / name
    path.write_bytes(OLD)
    fill_disk_after(monkeypatch, budget)
    with pytest.raises(FileWriteError) as info:
        write(path)
    assert_refused_cleanly(info, path)
    assert path.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    monkeypatch.undo()
    write(path)  # and the disk "freed": the same write succeeds
    assert path.read_bytes() != OLD and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_every_writer_writes_a_readable_file(tmp_path):
    """The happy path of the same writers (plots go through a file object: format from the suffix)."""
    for kind, (write, name) in WRITERS.items():
        path = tmp_path / kind / name
        write(path)
        data = path.read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n", kind
        elif name.endswith(".npz"):
            assert lw.load(path).net.n_params == 43
        elif name.endswith(".json"):
            assert json.loads(data)["accuracy"][0] == 0.5
        else:
            assert read_idx(path).shape == (4, 32, 32)
    from PIL import Image

    plots.learning_curves({"loss": [1.0, 0.5], "accuracy": [0.5, 0.6]}, tmp_path / "curves.jpg")
    assert Image.open(tmp_path / "curves.jpg").format == "JPEG"


def test_full_disk_while_caching_a_download(tmp_path, monkeypatch, make_fake_mnist):
    """The data set cache is written through the same writer: no half-written cache file."""
    mirror, sha = make_fake_mnist(tmp_path / "mirror")
    monkeypatch.setenv("LAYERWISE_MIRROR", mirror.as_uri() + "/")
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LAYERWISE_DATA", raising=False)
    monkeypatch.setitem(datasets.SHA256, "mnist", sha)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    fill_disk_after(monkeypatch, 100)
    with pytest.raises(FileWriteError) as info:
        datasets.load("mnist")
    cached = tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz"
    assert_refused_cleanly(info, cached)
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


@pytest.fixture
def make_fake_mnist():
    def make(folder: Path) -> tuple[Path, dict[str, str]]:
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        sha = {}
        for stem, shape in [("train-images-idx3-ubyte", (20, 28, 28)), ("train-labels-idx1-ubyte", (20,)),
                            ("t10k-images-idx3-ubyte", (5, 28, 28)), ("t10k-labels-idx1-ubyte", (5,))]:  # fmt: skip
            write_idx(folder / f"{stem}.gz", rng.integers(0, 10, shape, np.uint8))
            sha[stem] = hashlib.sha256(gzip.decompress((folder / f"{stem}.gz").read_bytes())).hexdigest()
        return folder, sha

    return make


@pytest.mark.parametrize("stage", ["fsync", "replace", "mkdir"])
def test_errors_name_the_target_never_the_temporary_file(tmp_path, monkeypatch, stage):
    path = tmp_path / "sub" / "model.npz"
    if stage != "mkdir":
        path.parent.mkdir()
        path.write_bytes(OLD)

    def fail(*args, **kwargs):  # as the OS reports it: naming the path it was given (temporary file, folder)
        if stage == "fsync":
            raise OSError(errno.EIO, "Input/output error")
        raise OSError(errno.EIO, "Input/output error", str(args[0]))

    monkeypatch.setattr(atomic.os if stage != "mkdir" else Path, stage, fail)
    with pytest.raises(FileWriteError) as info:
        write_model(path)
    message = str(info.value)
    assert str(path) in message and ".tmp" not in message and "Input/output error" in message, message
    monkeypatch.undo()
    if stage != "mkdir":
        assert path.read_bytes() == OLD
        assert sorted(p.name for p in path.parent.iterdir()) == ["model.npz"]


def test_target_that_is_a_folder(tmp_path):
    (tmp_path / "model.npz").mkdir()
    with pytest.raises(FileWriteError) as info:
        write_model(tmp_path / "model.npz")
    assert str(tmp_path / "model.npz") in str(info.value) and ".tmp" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# -- a real full disk: a small tmpfs -----------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root, as in the project's container); skipped, saying why, where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk(tiny_disk):
    model_path, plot_path, idx_path = tiny_disk / "model.npz", tiny_disk / "curves.png", tiny_disk / "x-idx3-ubyte"
    small = small_model()
    small.save(model_path)
    old_model = model_path.read_bytes()
    plot_path.write_bytes(OLD)
    idx_path.write_bytes(OLD)
    big = small_model(n_in=784, hidden=100)  # ~320 kB of weights (and as much optimizer state)
    with pytest.raises(FileWriteError) as info:
        big.save(model_path)
    assert_refused_cleanly(info, model_path)
    with pytest.raises(FileWriteError) as info:
        write_idx(idx_path, np.zeros((400, 28, 28), np.uint8))
    assert_refused_cleanly(info, idx_path)
    # Fill what is left, so that even a small plot does not fit.
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    with pytest.raises(FileWriteError) as info:
        write_learning_curves(plot_path)
    assert_refused_cleanly(info, plot_path)
    assert model_path.read_bytes() == old_model and plot_path.read_bytes() == OLD and idx_path.read_bytes() == OLD
    np.testing.assert_array_equal(lw.load(model_path).net.flat_params, small.net.flat_params)
    assert sorted(p.name for p in tiny_disk.iterdir()) == sorted(["model.npz", "curves.png", "x-idx3-ubyte", "filler"])


# -- durability, permissions, symlinks ----------------------------------------------------------
def test_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    write_json(tmp_path / "metrics.json")
    assert events == ["fsync file", "rename", "fsync folder"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444, 0o755])
def test_existing_file_keeps_its_mode(tmp_path, mode):
    path = tmp_path / "model.npz"
    path.write_bytes(OLD)
    path.chmod(mode)
    write_model(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert lw.load(path).net.n_params == 43


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_file_gets_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "new.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_existing_file_keeps_its_owner(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_bytes(OLD)
    os.chown(path, 12345, 54321)
    write_json(path)
    assert (path.stat().st_uid, path.stat().st_gid) == (12345, 54321)


def test_symlink_is_written_through(tmp_path):
    real = tmp_path / "runs" / "model-v3.npz"
    real.parent.mkdir()
    real.write_bytes(OLD)
    real.chmod(0o600)
    link = tmp_path / "latest.npz"
    link.symlink_to(Path("runs") / "model-v3.npz")  # a relative link
    model = small_model()
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(Path("runs") / "model-v3.npz")
    np.testing.assert_array_equal(lw.load(real).net.flat_params, model.net.flat_params)
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in real.parent.iterdir()) == ["model-v3.npz"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "elsewhere" / "real.json")
    write_json(link)
    assert link.is_symlink() and json.loads((tmp_path / "elsewhere" / "real.json").read_text())["accuracy"]


# -- temporary files that escape the normal cleanup --------------------------------------------
def test_ctrl_c_during_the_cleanup_is_cleaned_at_exit(tmp_path, monkeypatch):
    """A second Ctrl-C while the first one's cleanup runs: the exit handler removes the temporary file."""
    path = tmp_path / "model.npz"
    path.write_bytes(OLD)
    real_unlink = os.unlink
    calls = []

    def interrupted_unlink(p, *args, **kwargs):
        calls.append(p)
        if len(calls) == 1:
            raise KeyboardInterrupt  # the second Ctrl-C
        return real_unlink(p, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "unlink", interrupted_unlink)
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as f:
        f.write(b"half")
        raise KeyboardInterrupt  # the first Ctrl-C
    strays = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(strays) == 1 and str(strays[0]) in atomic._pending
    atomic._remove_pending()  # what runs at exit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"] and path.read_bytes() == OLD


def test_temp_files_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "checkpoint.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".checkpoint.npz.{dead_pid}.0123456789ab.tmp"
    alive = tmp_path / f".checkpoint.npz.{os.getppid()}.0123456789ab.tmp"  # a live process's write in progress
    foreign = tmp_path / ".checkpoint.npz.abc123.tmp"  # not our naming: never touched
    for p in (stale, alive, foreign):
        p.write_bytes(b"partial")
    write_checkpoint(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, alive.name, foreign.name])


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from layerwise.atomic import atomic_write

    path, seconds = sys.argv[1], float(sys.argv[2])
    deadline = time.time() + seconds
    print("ready", flush=True)
    i = 0
    while time.time() < deadline:
        try:
            i += 1
            with atomic_write(path) as f:
                for _ in range(40):
                    f.write(bytes([i % 251]) * 1000)
                    time.sleep(0.0005)
        except KeyboardInterrupt:
            pass
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_two_quick_sigints_during_writes_leave_no_temporary_file(tmp_path):
    """Real SIGINT pairs (1 ms apart) at random moments of a process that keeps writing one file.

    Whatever the moments, when the process has ended the file is one complete version
    and no temporary file is left (the second Ctrl-C may land in the first one's cleanup).
    """
    rng = random.Random(9)
    for run in range(2):
        path = tmp_path / f"run{run}" / "out.bin"
        path.parent.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), "1.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        while time.monotonic() - started < 0.8 and proc.poll() is None:
            time.sleep(rng.uniform(0.02, 0.12))
            proc.send_signal(signal.SIGINT)
            time.sleep(rng.uniform(0, 0.002))
            proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        names = sorted(p.name for p in path.parent.iterdir())
        assert names in ([], ["out.bin"]), names
        if names:
            data = path.read_bytes()
            assert len(data) == 40_000 and len(set(data)) == 1


def test_folder_sync_failure_says_the_file_was_written(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(FileWriteError, match="written, but syncing its folder failed") as info:
        write_json(tmp_path / "metrics.json")
    assert "unchanged" not in str(info.value)
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"][0] == 0.5
