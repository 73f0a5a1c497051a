"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a header followed by the array's elements, big-endian, in C order::

    byte 0-1   0x00 0x00                 (magic)
    byte 2     dtype code                (see ``DTYPE_CODES``)
    byte 3     rank r                    (1..255)
    then       r big-endian uint32 sizes (the shape)
    then       prod(shape) elements

Files may be gzip-compressed; that is recognised by the gzip magic bytes
``1f 8b``, never by the file name.

Rank 0 is rejected when reading and writing: the format's definition starts at
rank 1 (vectors), and a scalar in an IDX file is far more likely a damaged
header than an intended value.  The format allows ranks up to 255, but a NumPy
array holds at most 64 dimensions (32 before NumPy 2), so files of higher rank
are rejected with a ``DataFormatError`` saying so.

Every read is bounded by what the header declares: the expected byte count is
computed with Python integers *before* anything is allocated, so a header
claiming 10**9 images in a 1 kB file fails at once; an uncompressed file whose
size differs from what its header declares (say a valid header followed by 3 GB
of sparse trailing data) fails before its body is read; and a gzip "bomb" is only
decompressed up to the declared size plus one byte.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from layerwise.atomic import atomic_write
from layerwise.errors import DataFormatError, DTypeError, ShapeError

__all__ = [
    "DTYPE_CODES",
    "check_idx_pair",
    "decompress_idx",
    "load_idx_pair",
    "parse_idx_bytes",
    "read_idx",
    "read_idx_raw",
    "write_idx",
]

#: IDX dtype code -> element type as stored on disk (big-endian).
DTYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (kind, itemsize) -> code, so that an array of either byte order maps to its code.
_CODE_OF = {(dt.kind, dt.itemsize): code for code, dt in DTYPE_CODES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DIM = 2**32 - 1  # sizes are stored as uint32
_CHUNK = 1 << 20  # bytes decompressed per step of a bounded read
_GZIP_LEVEL = 6  # zlib's default: level 9 is several times slower for ~1% smaller files

PathLike = str | os.PathLike[str]
Buffer = bytes | bytearray | memoryview


def _numpy_max_rank() -> int:
    """The most dimensions this NumPy's arrays can have (64 in NumPy 2, else 32)."""
    for rank in (64, 32):
        try:
            np.empty((1,) * rank, dtype=np.uint8)
        except ValueError:
            continue
        return rank
    return 32


_MAX_RANK = _numpy_max_rank()  # the format allows 255 (one byte), NumPy fewer
_MAX_NBYTES = int(np.iinfo(np.intp).max)


@dataclass(frozen=True)
class _Header:
    """A parsed IDX header: element type, shape and the sizes it implies."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Bytes the header itself takes."""
        return 4 + 4 * len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of element data the header declares (a Python int: no overflow)."""
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"shape {self.shape} of {self.dtype.newbyteorder('=').name}"


def _known_codes() -> str:
    return ", ".join(f"0x{c:02X} {dt.newbyteorder('=').name}" for c, dt in DTYPE_CODES.items())


def _parse_header(buf: Buffer, name: str) -> _Header:
    """Validate and decode the header at the start of ``buf`` (which may hold more)."""
    if len(buf) < 4:
        raise DataFormatError(f"{name}: too short for an IDX header: {len(buf)} bytes, need at least 4")
    zero0, zero1, code, rank = buf[0], buf[1], buf[2], buf[3]
    if zero0 != 0 or zero1 != 0:
        raise DataFormatError(
            f"{name}: bad magic, not an IDX file: the first two bytes must be 00 00, got {zero0:02x} {zero1:02x}"
        )
    if code not in DTYPE_CODES:
        raise DataFormatError(f"{name}: unknown IDX dtype code 0x{code:02X} (known: {_known_codes()})")
    if rank == 0 or rank > _MAX_RANK:
        raise DataFormatError(
            f"{name}: IDX rank {rank} is not supported: NumPy arrays hold ranks "
            f"1..{_MAX_RANK} (the format allows up to 255)"
        )
    size = 4 + 4 * rank
    if len(buf) < size:
        raise DataFormatError(
            f"{name}: too short for its IDX header: rank {rank} needs a {size}-byte header, got {len(buf)} bytes"
        )
    shape = struct.unpack_from(f">{rank}I", buf, 4)
    dtype = DTYPE_CODES[code]
    # NumPy refuses shapes whose nonzero sizes multiply past its index type, even
    # for an empty array such as (0, 10**9, 10**9, 10**9); checked with Python ints.
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_NBYTES:
        raise DataFormatError(f"{name}: IDX shape {shape} is too large for a NumPy array")
    return _Header(dtype, shape)


def _check_body(header: _Header, actual: int, name: str) -> None:
    """DataFormatError unless ``actual`` bytes of data follow the header, as it declares."""
    expected = header.nbytes
    if actual < expected:
        raise DataFormatError(
            f"{name}: truncated IDX data: the header declares {header.describe()} "
            f"= {expected} bytes, but only {actual} bytes follow the header"
        )
    if actual > expected:
        extra = actual - expected
        # Bounded reads stop one byte past the declared size, so 1 may mean "1 or more".
        surplus = "at least 1 extra byte" if extra == 1 else f"{extra} extra bytes"
        raise DataFormatError(
            f"{name}: trailing data after the IDX array: the header declares "
            f"{header.describe()} = {expected} bytes; found {surplus} after them"
        )


def _decode(buf: Buffer, name: str) -> np.ndarray:
    """Turn uncompressed IDX bytes into an array in native byte order."""
    header = _parse_header(buf, name)
    _check_body(header, len(buf) - header.size, name)
    arr = np.frombuffer(buf, dtype=header.dtype, count=math.prod(header.shape), offset=header.size)
    arr = arr.reshape(header.shape)
    if not arr.dtype.isnative:
        # One byte-swapping copy now saves a slow non-native path in every later op.
        return arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable:
        # A read-only input buffer (e.g. ``bytes``) whose data needed no byte swap.
        return arr.copy()
    return arr


def _read_upto(stream: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, or fewer only at end of stream."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_bounded(stream: BinaryIO, name: str) -> bytearray:
    """Read an uncompressed IDX stream, at most one byte past its declared size.

    Returns header + data as a ``bytearray`` (writable, so arrays decoded from it
    are writable without a copy).  The header is validated first, and the buffer
    then grows chunk by chunk, so memory never exceeds what the stream really holds.
    """
    buf = bytearray(_read_upto(stream, 4))
    if len(buf) == 4:
        buf += _read_upto(stream, 4 * buf[3])
    header = _parse_header(buf, name)
    limit = header.size + header.nbytes + 1  # the extra byte reveals trailing data
    while len(buf) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _gunzip(stream: BinaryIO, name: str) -> bytearray:
    """Decompress a gzip stream holding an IDX file, bounded by its declared size."""
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
            return _read_bounded(gz, name)  # type: ignore[arg-type]
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{name}: corrupt gzip data: {exc}") from exc


def decompress_idx(data: Buffer, name: str = "<bytes>") -> Buffer:
    """Return the uncompressed IDX bytes of ``data``, gunzipped if it starts with 1f 8b.

    Uncompressed input is returned as is.  Gzip input is decompressed only up to one
    byte past the size its IDX header declares, and its header is validated.
    Raises ``DataFormatError`` naming ``name`` on corrupt gzip or a bad header.
    """
    if bytes(data[:2]) == _GZIP_MAGIC:
        return _gunzip(io.BytesIO(data), name)
    return data


def read_idx_raw(path: PathLike) -> Buffer:
    """Return the uncompressed IDX bytes of the file at ``path``, header included.

    Gzip files are decompressed, bounded by their declared size.  Useful to hash the
    canonical contents of a file and then decode them with ``parse_idx_bytes``
    without decompressing twice.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        if _read_upto(f, 2) == _GZIP_MAGIC:
            f.seek(0)
            return _gunzip(f, name)
        f.seek(0)
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            # A pipe or device has no size to check the header against.
            return _read_bounded(f, name)
        return _read_regular(f, info.st_size, name)


def _read_regular(f: BinaryIO, file_size: int, name: str) -> bytearray:
    """An uncompressed IDX file: the header is read and checked against the file's size first.

    Only then is the body read, into one buffer of exactly the declared size (readinto:
    no second copy of a 47 MB file).  A valid small header followed by gigabytes of
    (sparse) trailing data fails here without reading them.
    """
    head = bytearray(_read_upto(f, 4))
    if len(head) == 4:
        head += _read_upto(f, 4 * head[3])
    header = _parse_header(head, name)
    expected = header.size + header.nbytes
    _check_body(header, file_size - header.size, name)
    buf = bytearray(expected)
    buf[: len(head)] = head
    view = memoryview(buf)
    got = len(head)
    while got < expected:  # readinto may return less than asked (a file shrinking under us)
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    view.release()
    if got < expected or f.read(1):  # the file changed size since fstat
        del buf[got:]
        if got == expected:
            buf += b"\0"  # one byte past the declared size: reported as trailing data
    return buf


def parse_idx_bytes(data: Buffer, name: str = "<bytes>") -> np.ndarray:
    """Decode an IDX file held in memory (gzip-compressed or not).

    Args:
        data: the file's bytes.  A ``bytearray`` is decoded without copying (the
            array then shares its memory).
        name: how error messages name the data, e.g. its file name.

    Returns:
        An array with the header's shape (rank 1..64), in native byte order,
        writable, of dtype uint8, int8, int16, int32, float32 or float64.

    Raises:
        DataFormatError: too short, bad magic, unknown dtype code, rank 0, truncated
            or trailing data, corrupt gzip.  The message names ``name``.
    """
    return _decode(decompress_idx(data, name), name)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array; see ``parse_idx_bytes``.

    Raises:
        DataFormatError: the file is malformed (the message names the file).
        FileNotFoundError: there is no file at ``path``.
    """
    return _decode(read_idx_raw(path), os.fspath(path))


def _encode_header(arr: np.ndarray, name: str) -> tuple[bytes, np.dtype]:
    """Build the IDX header for ``arr``; also return its big-endian on-disk dtype."""
    code = _CODE_OF.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise DTypeError(
            f"write_idx({name}): IDX cannot store dtype {arr.dtype}; supported: "
            f"{_known_codes()}. Cast first, e.g. array.astype(np.int32)"
        )
    if arr.ndim == 0:  # NumPy itself caps the rank at 64, below IDX's 255
        raise ShapeError(f"write_idx({name}): IDX stores arrays of rank >= 1, got rank 0")
    if any(d > _MAX_DIM for d in arr.shape):
        raise ShapeError(
            f"write_idx({name}): IDX sizes are uint32, so each must be <= {_MAX_DIM}; got shape {arr.shape}"
        )
    header = struct.pack(f">BBBB{arr.ndim}I", 0, 0, code, arr.ndim, *arr.shape)
    return header, DTYPE_CODES[code]


def write_idx(path: PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` to ``path`` as an IDX file, atomically.

    Args:
        path: destination; its folder must exist.
        array: rank >= 1, dtype uint8, int8, int16, int32, float32 or float64
            (either byte order), each size < 2**32.
        compress: gzip the file; by default, when ``path`` ends with ``.gz``.

    Raises:
        DTypeError: a dtype IDX cannot store (e.g. int64, bool): cast it first.
        ShapeError: rank 0, or a size of 2**32 or more.
    """
    name = os.fspath(path)
    arr = np.asarray(array)
    header, disk_dtype = _encode_header(arr, name)
    # A flat uint8 view of the big-endian data: bytes-like for any writer, and a
    # copy only when the array is not already big-endian and C-contiguous.
    payload = np.ascontiguousarray(arr, dtype=disk_dtype).reshape(-1).view(np.uint8)
    if compress is None:
        compress = name.endswith(".gz")
    with atomic_write(path) as f:
        if compress:
            # mtime=0 and no file name in the gzip header: same array, same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=_GZIP_LEVEL) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)


def check_idx_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    """Raise ``DataFormatError`` unless ``labels`` is 1-D with one label per image."""
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_name}: labels must be 1-D, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"image and label counts differ: {images_name} holds {images.shape[0]} "
            f"images, {labels_name} holds {labels.shape[0]} labels"
        )


def load_idx_pair(images_path: PathLike, labels_path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file, checking that they belong together.

    Returns:
        ``(images, labels)``: images of shape (n, ...) and labels of shape (n,), each
        in the dtype its file stores (uint8 for MNIST).

    Raises:
        DataFormatError: either file is malformed, the labels are not 1-D, or the
            counts differ (the message names both files and both counts).
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    check_idx_pair(images, labels, os.fspath(images_path), os.fspath(labels_path))
    return images, labels
