"""A run folder is a small transaction: locked while a run writes it, finished or resumable, never mixed.

Files: ``config.json`` (the RunConfig), ``checkpoint.npz`` (while unfinished),
``model.npz``, ``metrics.json`` and the plots (when finished), ``.lock`` (the
advisory lock a writing run holds; the kernel releases it when the process dies,
so a killed run never leaves the folder locked).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RunFolderError

CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
METRICS = "metrics.json"
LOCK = ".lock"


class RunFolder:
    """The files of one run in ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.config = self.path / CONFIG
        self.checkpoint = self.path / CHECKPOINT
        self.model = self.path / MODEL
        self.metrics = self.path / METRICS

    @property
    def state(self) -> str:
        """``empty``, ``unfinished`` (a checkpoint), ``finished`` (model and metrics) or ``partial``."""
        if self.checkpoint.is_file():
            return "unfinished"
        if self.model.is_file() and self.metrics.is_file():
            return "finished"
        if self.config.is_file() or self.model.is_file():
            return "partial"
        return "empty"

    def clear(self) -> None:
        """Remove the run's own files (config, checkpoint, model, metrics), so that a new run starts here.

        Only under the folder's lock: a run writing the folder makes this a RunFolderError."""
        with self.lock():
            for path in (self.checkpoint, self.metrics, self.model, self.config):
                path.unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock; a second run into it gets a RunFolderError naming the holder."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunFolderError(f"{self.path}: exists and is not a folder") from None
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                raise RunFolderError(
                    f"{self.path}: another run is writing this folder ({holder}); wait for it or pick another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
