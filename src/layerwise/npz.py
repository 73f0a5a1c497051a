"""Reading a model file (``.npz``: a zip of ``.npy`` members) that may come from a stranger.

Every size is checked against what the file can hold *before* anything of that
size is allocated, in this order:

1. the zip's end record: at most ``MAX_MEMBERS`` members and a central directory of
   at most ``MAX_DIRECTORY_BYTES`` (a zip listing 200,000 members is refused before
   Python builds 200,000 entries);
2. the directory: only ``.npy`` members, no duplicates, no encryption, stored or
   deflated, each member's sizes possible for the file (stored sizes add up to at most
   the file's size; deflate expands at most ~1032:1);
3. the header member (at most ``MAX_HEADER_BYTES``), parsed as JSON with numbers
   that fit a float or a 128-bit integer;
4. then the caller (``io.load_model``) works out every array the header calls for and
   ``check_members`` compares names, ``.npy`` headers (dtype, shape) and sizes with
   them, and the total with ``MAX_EXPANSION`` times the file's size, before a byte
   of array data is read.  Members the header does not call for are never read.

Array data is read in chunks into one buffer of the verified size, so reading a
member never needs more than its size plus a chunk.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFileError

HEADER = "__header__"
MAX_MEMBERS = 10_000  # a network of 3,000 layers with its optimizer state holds far fewer
MAX_DIRECTORY_BYTES = 4 << 20  # ~100 bytes per member in a layerwise file
MAX_HEADER_BYTES = 16 << 20  # the JSON header: layers, history of a long run...
MAX_EXPANSION = 16  # Model.save stores arrays uncompressed; a re-zipped file of weights shrinks ~1.1:1
MAX_NPY_HEADER = 4096  # bytes before the data of one .npy member (NumPy writes 128)
MAX_INT_DIGITS = 40  # 2**128 (a PCG64 state) has 39 digits
_CHUNK = 1 << 20
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError, struct.error, OverflowError, KeyError)  # fmt: skip


class _OutOfRange:
    """A JSON number that fits neither a float nor a 128-bit integer (kept as text for the message)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        digits = sum(c.isdigit() for c in self.text)
        return self.text if len(self.text) <= 24 else f"{self.text[:12]}...({digits} digits)"


class Archive:
    """An open model file; ``header`` is the parsed JSON header.  Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        try:
            self.size = path.stat().st_size
            self._raw = open(path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as e:  # unreadable: permissions, an I/O error
            raise ModelFileError(f"{path}: cannot read the model file ({e.strerror or e})") from None
        try:
            self._zip = self._open_zip()
            self.members = self._check_directory()
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._raw.close()

    def _fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {what}")

    def _damaged(self, e: BaseException) -> ModelFileError:
        return self._fail(f"not a readable layerwise model file (truncated or damaged: {e})")

    # -- 1. the end record -------------------------------------------------------------
    def _open_zip(self) -> zipfile.ZipFile:
        try:
            counts = _end_record(self._raw, self.size)
            if counts is not None:
                members, directory = counts
                if members > MAX_MEMBERS:
                    raise self._fail(
                        f"the zip lists {members:,} members; a layerwise model has at most {MAX_MEMBERS:,}"
                    )
                if directory > MAX_DIRECTORY_BYTES:
                    raise self._fail(
                        f"the zip's directory takes {directory:,} bytes; a layerwise model needs "
                        f"at most {MAX_DIRECTORY_BYTES:,}"
                    )
            self._raw.seek(0)
            return zipfile.ZipFile(self._raw)
        except ModelFileError:
            raise
        except _READ_ERRORS as e:
            raise self._damaged(e) from None

    # -- 2. the directory --------------------------------------------------------------
    def _check_directory(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self._fail(f"the zip lists {len(infos):,} members; a layerwise model has at most {MAX_MEMBERS:,}")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise self._fail(f"unexpected member {name!r}")
            if name[:-4] in members:
                raise self._fail(f"member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise self._fail(f"member {name!r} is encrypted; layerwise model files never are")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._fail(f"member {name!r} uses unsupported compression {info.compress_type}")
            stored_ok = info.compress_type != zipfile.ZIP_STORED or info.file_size == info.compress_size
            # Deflate expands at most ~1032:1; a larger ratio is a lie (or a zip bomb).
            deflate_ok = info.file_size <= 1100 * info.compress_size + 1024
            if info.compress_size > self.size or not stored_ok or not deflate_ok:
                raise self._fail(
                    f"member {name!r} claims {info.file_size} bytes ({info.compress_size} stored), "
                    f"more than the {self.size}-byte file can hold"
                )
            members[name[:-4]] = info
        stored = sum(info.compress_size for info in infos)
        if stored > self.size:
            raise self._fail(f"its members claim {stored:,} stored bytes in all, more than the {self.size:,}-byte file")
        return members

    # -- 3. the header -----------------------------------------------------------------
    def _read_header(self) -> dict[str, Any]:
        info = self.members.get(HEADER)
        if info is None:
            raise self._fail("no layerwise header; was it written by Model.save?")
        if info.file_size > MAX_HEADER_BYTES:
            raise self._fail(f"the header takes {info.file_size:,} bytes; at most {MAX_HEADER_BYTES:,} are allowed")
        array = self._read(HEADER)
        if array.dtype != np.uint8 or array.ndim != 1:
            raise self._fail("no layerwise header; was it written by Model.save?")
        try:
            header = json.loads(array.tobytes().decode("utf-8"), parse_int=_parse_int, parse_float=_parse_float)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
            raise self._fail(f"the header is not valid JSON ({type(e).__name__}: {e})") from None
        if (where := _find_out_of_range(header)) is not None:
            field, number = where
            raise self._fail(f"the header's {field} holds the number {number!r}, too large for a float or an integer")
        if not isinstance(header, dict) or header.get("format") != "layerwise.model":
            found = header.get("format") if isinstance(header, dict) else None
            raise self._fail(f"not a layerwise model file (format {found!r}, expected 'layerwise.model')")
        if header.get("version") not in (1, 2):
            raise self._fail(f"unknown format version {header.get('version')!r}; this layerwise reads versions 1, 2")
        return header

    # -- 4. the arrays -----------------------------------------------------------------
    def stored_numbers(self, dtype: np.dtype) -> int:
        """At most how many numbers of ``dtype`` the array members can hold (from their declared sizes)."""
        return sum(info.file_size for name, info in self.members.items() if name != HEADER) // dtype.itemsize

    def check_members(self, expected: dict[str, tuple[int, ...]], dtype: np.dtype) -> None:
        """The members are exactly ``expected`` (name -> shape), each a ``dtype`` .npy of that shape.

        Only the .npy headers are read; then the total size is checked against the file.
        """
        present = set(self.members) - {HEADER}
        missing, extra = set(expected) - present, present - set(expected)
        if missing or extra:
            raise self._fail(
                f"arrays do not match the header (missing {_listing(missing)}, unexpected {_listing(extra)})"
            )
        for name, shape in expected.items():
            info = self.members[name]
            where = f"{self.path}:{info.filename}"
            try:
                with self._zip.open(info) as f:
                    found, header_bytes = _npy_header(f, where)
            except ModelFileError:
                raise
            except _READ_ERRORS as e:
                raise self._damaged(e) from None
            if header_bytes + found.nbytes != info.file_size:
                raise self._fail(
                    f"{info.filename}: header claims {found.shape} {found.dtype} ({found.nbytes} bytes) "
                    f"but {info.file_size - header_bytes} are stored"
                )
            native = found.dtype.newbyteorder("=")
            if found.shape != tuple(shape) or native != dtype:
                raise self._fail(
                    f"array {name!r} should be {dtype.name} of shape {tuple(shape)}, "
                    f"got {native.name} of shape {found.shape}"
                )
        total = sum(self.members[name].file_size for name in expected)
        if total > MAX_EXPANSION * self.size + (1 << 20):
            raise self._fail(
                f"its arrays take {total:,} bytes uncompressed, more than {MAX_EXPANSION} times the "
                f"{self.size:,}-byte file: Model.save stores arrays uncompressed, so this is damaged or a zip bomb"
            )

    def array(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The finite ``dtype`` array of ``shape`` stored as ``name`` (checked by ``check_members`` first)."""
        value = self._read(name)
        if value.shape != tuple(shape) or value.dtype != dtype:
            raise self._fail(
                f"array {name!r} should be {dtype.name} of shape {tuple(shape)}, "
                f"got {value.dtype.name} of shape {value.shape}"
            )
        if not np.isfinite(value).all():
            raise self._fail(f"array {name!r} holds NaN or inf")
        return value

    def _read(self, name: str) -> np.ndarray:
        info = self.members[name]
        try:
            with self._zip.open(info) as f:
                return _read_npy(f, info.file_size, f"{self.path}:{info.filename}")
        except ModelFileError:
            raise
        except _READ_ERRORS as e:
            raise self._damaged(e) from None


def _end_record(f: io.BufferedReader, size: int) -> tuple[int, int] | None:
    """(member count, directory size) from the zip's end record (zip64 too), or None if there is none."""
    tail = min(size, 22 + 65535)
    f.seek(size - tail)
    data = f.read(tail)
    i = data.rfind(b"PK\x05\x06")
    if i < 0 or len(data) - i < 22:
        return None  # zipfile will say what is wrong
    members, directory = struct.unpack_from("<HI", data, i + 10)
    if (members == 0xFFFF or directory == 0xFFFFFFFF) and i >= 20 and data[i - 20 : i - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack_from("<Q", data, i - 12)
        if offset + 56 <= size:
            f.seek(offset)
            record = f.read(56)
            if record[:4] == b"PK\x06\x06":
                members, directory = struct.unpack_from("<QQ", record, 32)
    return members, directory


def _npy_header(f: io.BufferedIOBase, where: str) -> tuple[_Declared, int]:
    """(what the member's .npy header declares, the header's size in bytes); numeric dtypes only."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_NPY_HEADER)
    else:
        raise ModelFileError(f"{where}: unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: refusing array of dtype {dtype} (only numeric arrays are allowed)")
    if any(dim < 0 for dim in shape):
        raise ModelFileError(f"{where}: negative dimension in shape {shape}")
    return _Declared(tuple(shape), dtype, fortran), f.tell()


class _Declared:
    """What a .npy header declares: shape, dtype, order and byte count (a Python int: no overflow)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fortran: bool) -> None:
        self.shape, self.dtype, self.fortran = shape, dtype, fortran
        self.nbytes = math.prod(shape) * dtype.itemsize


def _read_npy(f: io.BufferedIOBase, stored_size: int, where: str) -> np.ndarray:
    """One .npy member: plain numeric dtypes only, size checked against the stored bytes first."""
    found, header_bytes = _npy_header(f, where)
    nbytes = found.nbytes
    if header_bytes + nbytes != stored_size:
        raise ModelFileError(
            f"{where}: header claims {found.shape} {found.dtype} ({nbytes} bytes) "
            f"but {stored_size - header_bytes} are stored"
        )
    data = bytearray(nbytes)  # nbytes is verified: at most the member's declared size
    view, got = memoryview(data), 0
    while got < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - got))
        if not chunk:
            break
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
    view.release()
    if got != nbytes:
        raise ModelFileError(f"{where}: truncated ({got} of {nbytes} bytes)")
    array = np.frombuffer(data, dtype=found.dtype).reshape(found.shape, order="F" if found.fortran else "C")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _parse_int(text: str) -> int | _OutOfRange:
    # Python refuses int() of more than 4300 digits with a ValueError; refuse far earlier.
    return _OutOfRange(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _parse_float(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else _OutOfRange(text)  # 1e400 overflows to inf


def _find_out_of_range(value: Any) -> tuple[str, _OutOfRange] | None:
    """(field path such as "optimizer.config.lr", number) of the first out-of-range number, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _OutOfRange):
            return path or "top level", item
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return None


def _listing(names: set[str], limit: int = 5) -> str:
    """``['a', 'b', ...]`` sorted, at most ``limit`` names and a count of the others."""
    shown = sorted(names)
    text = repr(shown[:limit])
    return text if len(shown) <= limit else f"{text[:-1]}, ... and {len(shown) - limit:,} more]"
