"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

``atomic_write(path)`` is the one way layerwise writes a file (models, checkpoints,
JSON, IDX, plots).  The data goes to a temporary file beside the target
(``.<name>.<pid>.<random>.tmp``), which is flushed, fsynced and renamed over the
target; then the folder is fsynced so that the rename itself survives a power cut.

- Readers see the old file or the new one, never a mix.
- The target keeps its permission bits (a 0600 file stays 0600) and, where the
  process may, its owner; a new file gets the mode a plain ``open()`` would give
  (0666 less the umask).
- A symlink is written through: its target file is replaced, the link stays a link.
- On any error (a full disk, Ctrl-C) the temporary file is removed and the old file
  is untouched.  ``OSError``s become ``FileWriteError`` naming the path asked for,
  never the temporary file.  Temporary files that escape that cleanup (a second
  Ctrl-C during it) are removed when the process exits, and those of a process that
  was killed (SIGKILL, power cut) by the next write to the same path.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from .errors import FileWriteError

__all__ = ["atomic_write"]

# Temporary files this process created and has not yet renamed or removed.
_pending: set[str] = set()


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write to a temporary file beside ``path``; move it onto ``path`` on success.

    Yields a binary file object.  Missing parent folders are created.  If the
    ``with`` block raises, the temporary file is removed and ``path`` is untouched.

    Raises:
        FileWriteError: (an ``OSError``) the file could not be written, e.g. the disk
            is full; the message names ``path``.
    """
    shown = Path(path)
    target = _resolve(shown)
    tmp = str(target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileWriteError(e.errno, f"cannot create its folder ({e.strerror or e})", str(shown)) from None
    try:
        _remove_stale(target)
        old = _stat(target)
        _pending.add(tmp)  # before the file exists: an interrupt right after creating it is covered
        # 0o666: the umask decides the mode of a new file, as for a plain open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            if old is not None:
                _copy_owner_and_mode(f.fileno(), old)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _pending.discard(tmp)
    except OSError as e:
        _discard(tmp)
        if e.filename not in (None, tmp, str(target), str(shown)):
            raise  # about another file the body touched: not ours to rename
        reason = f"cannot write ({e.strerror or e}); the previous file there is unchanged"
        raise FileWriteError(e.errno, reason, str(shown)) from None
    except BaseException:
        _discard(tmp)
        raise
    try:
        _fsync_folder(target.parent)
    except OSError as e:  # the new file is in place, but a power cut could still undo the rename
        reason = f"written, but syncing its folder failed ({e.strerror or e}); a crash now may lose it"
        raise FileWriteError(e.errno, reason, str(shown)) from None


def _resolve(path: Path) -> Path:
    """The file a write to ``path`` must replace: a symlink's target, so the link stays a link."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def _stat(path: Path) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _copy_owner_and_mode(fd: int, old: os.stat_result) -> None:
    if hasattr(os, "fchown") and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        with suppress(OSError):  # only root (or a member of the group) may; otherwise the writer owns it
            os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable.  Some file systems cannot fsync a folder; that is not an error."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def _discard(tmp: str) -> None:
    """Remove the temporary file; a Ctrl-C during this leaves it to the exit handler."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError:
        return  # e.g. the folder became read-only: left to the exit handler
    _pending.discard(tmp)


@atexit.register
def _remove_pending() -> None:
    for tmp in list(_pending):
        _discard(tmp)


def _remove_stale(target: Path) -> None:
    """Remove temporary files of ``target`` left by processes that no longer exist (SIGKILL)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]{{12}}\.tmp")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _alive(int(match.group(1))):
            with suppress(OSError):
                os.unlink(target.parent / name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # our own: another write of this process may be in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True
