"""IDX reading and writing: round trips, byte order, malformed files, fuzzing."""

from __future__ import annotations

import gzip
import io
import re
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from layerwise.data import load_idx_pair, parse_idx_bytes, read_idx, write_idx
from layerwise.data.idx import DTYPE_CODES, atomic_write, decompress_idx
from layerwise.errors import DataFormatError, DTypeError, ShapeError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CODES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32"}
CODES[0x0E] = "float64"


def header(code: int, shape: tuple[int, ...]) -> bytes:
    """A hand-built IDX header."""
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape)


def sample(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values spanning the dtype's range, including negatives, NaN and infinities."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.standard_normal(shape).astype(dt) * dt.type(1e3)
        flat = a.reshape(-1)
        flat[: min(4, flat.size)] = [np.nan, np.inf, -np.inf, -0.0][: min(4, flat.size)]
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bits (NaN payloads and -0.0 included)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ----------------------------------------------------------------- round trips


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip(tmp_path: Path, dtype: type, rank: int, gz: bool) -> None:
    shape = (3, 4, 2, 5, 2)[:rank]
    arr = sample(dtype, shape, seed=rank)
    path = tmp_path / "a.idx"
    write_idx(path, arr, compress=gz)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = read_idx(path)
    assert same(back, arr)
    assert back.dtype.isnative
    assert back.flags.writeable
    assert same(parse_idx_bytes(path.read_bytes(), "a.idx"), arr)


@pytest.mark.parametrize("shape", [(1,) * 64, (2,) + (1,) * 62 + (3,), (0,), (0, 28, 28), (5, 0)])
def test_round_trip_extreme_shapes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    arr = sample(np.int16, shape)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, arr)
        assert same(read_idx(tmp_path / name), arr)


def test_compression_follows_suffix_by_default(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "x.gz", arr)
    write_idx(tmp_path / "x", arr)
    assert (tmp_path / "x.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "x").read_bytes() == header(0x08, (10,)) + arr.tobytes()


def test_gzip_is_detected_by_magic_not_name(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    write_idx(tmp_path / "plain.gz", arr, compress=False)  # raw under a .gz name
    write_idx(tmp_path / "packed.idx", arr, compress=True)  # gzip without .gz
    assert same(read_idx(tmp_path / "plain.gz"), arr)
    assert same(read_idx(tmp_path / "packed.idx"), arr)


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    arr = sample(np.float32, (4, 4))
    write_idx(tmp_path / "a.gz", arr)
    write_idx(tmp_path / "b.gz", arr)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_multi_member_gzip_reads(tmp_path: Path) -> None:
    raw = header(0x08, (6,)) + bytes(range(6))
    (tmp_path / "m.gz").write_bytes(gzip.compress(raw[:5]) + gzip.compress(raw[5:]))
    assert read_idx(tmp_path / "m.gz").tolist() == list(range(6))


def test_writes_little_endian_and_non_contiguous_input_big_endian(tmp_path: Path) -> None:
    arr = np.arange(12, dtype="<i4").reshape(3, 4).T  # non-contiguous view
    write_idx(tmp_path / "t", arr)
    body = (tmp_path / "t").read_bytes()[len(header(0x0C, (4, 3))) :]
    assert body == np.ascontiguousarray(arr).astype(">i4").tobytes()
    write_idx(tmp_path / "b", arr.astype(">i4"))
    assert (tmp_path / "b").read_bytes() == (tmp_path / "t").read_bytes()


# ------------------------------------------------------------------- byte order


@pytest.mark.parametrize(
    ("code", "fmt", "values"),
    [
        (0x08, "B", [0, 1, 255]),
        (0x09, "b", [-128, -1, 127]),
        (0x0B, "h", [-32768, 258, 32767]),
        (0x0C, "i", [-(2**31), 16909060, 2**31 - 1]),
        (0x0D, "f", [1.5, -2.25, 3.0e38]),
        (0x0E, "d", [1.0e-300, -0.1, 2.5]),
    ],
)
def test_hand_built_big_endian_file(code: int, fmt: str, values: list) -> None:
    data = header(code, (3,)) + struct.pack(f">3{fmt}", *values)
    arr = parse_idx_bytes(data)
    assert arr.dtype == np.dtype(CODES[code])
    assert arr.dtype.isnative
    np.testing.assert_array_equal(arr, np.array(values, dtype=CODES[code]))


def test_hand_built_int16_matrix() -> None:
    data = header(0x0B, (2, 2)) + bytes([0x01, 0x02, 0xFF, 0xFE, 0x00, 0x01, 0x80, 0x00])
    np.testing.assert_array_equal(parse_idx_bytes(data), [[258, -2], [1, -32768]])


def test_bytes_input_gives_writable_array() -> None:
    arr = parse_idx_bytes(header(0x08, (3,)) + b"\x01\x02\x03")
    arr[0] = 9  # would raise on a read-only view of the immutable bytes
    assert arr.tolist() == [9, 2, 3]


# -------------------------------------------------------------- writing errors


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.complex64, np.float16])
def test_write_rejects_unsupported_dtype(tmp_path: Path, dtype: type) -> None:
    with pytest.raises(DTypeError, match=r"cannot store dtype.*astype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_write_rejects_rank_0(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match="rank >= 1, got rank 0"):
        write_idx(tmp_path / "x", np.uint8(3))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rank", [65, 255])
def test_read_rejects_ranks_numpy_cannot_hold(rank: int) -> None:
    with pytest.raises(DataFormatError, match=f"f: IDX rank {rank} is not supported"):
        parse_idx_bytes(header(0x08, (1,) * rank) + b"\x07", "f")


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    write_idx(path, np.arange(3, dtype=np.uint8))
    before = path.read_bytes()
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"partial")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


# ------------------------------------------------------------ malformed files


def read_idx_ok(data: bytes) -> np.ndarray:
    """Parse bytes that must be valid (guards that a mutation test starts from good data)."""
    return parse_idx_bytes(data, "good")


GOOD = header(0x08, (2, 3)) + bytes(range(6))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "too short for an IDX header"),
        (b"\x00\x00\x08", "too short for an IDX header"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "rank 3 needs a 16-byte header"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "bad magic.*01 00"),
        (b"PK\x03\x04\x00\x00\x00\x01\x00", "bad magic"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00", "unknown IDX dtype code 0x0A"),
        (b"\x00\x00\x08\x00", "rank 0 is not supported"),
        (b"\x00\x00\x08\xff" + bytes(8), "rank 255 is not supported"),
        (header(0x08, (0, 2**31, 2**31, 2**31)), r"shape \(0, 2147483648.*too large for a NumPy"),
        (GOOD[:-1], "truncated.*6 bytes.*only 5"),
        (header(0x0C, (2,)) + b"\x00" * 7, "truncated.*int32.*8 bytes.*only 7"),
        (GOOD + b"\x00\x00", "trailing data.*(2 extra bytes|at least 1 extra byte)"),
        (GOOD + b"\x00", "trailing data.*at least 1 extra byte"),
    ],
    ids=[
        "empty",
        "3 bytes",
        "short shape",
        "bad magic",
        "zip file",
        "dtype 0x0a",
        "rank 0",
        "rank 255",
        "empty but huge shape",
        "truncated",
        "truncated int32",
        "trailing 2",
        "trailing 1",
    ],
)
def test_malformed_raises_with_name_and_problem(tmp_path: Path, data: bytes, problem: str) -> None:
    path = tmp_path / "broken-images.idx"
    path.write_bytes(data)
    for blob in (data, gzip.compress(data)):
        with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}: .*{problem}"):
            parse_idx_bytes(blob, str(path))
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}: .*{problem}"):
        read_idx(path)


def test_gzip_with_trailing_data_reports_trailing() -> None:
    with pytest.raises(DataFormatError, match=r"^f\.gz: trailing data"):
        parse_idx_bytes(gzip.compress(GOOD + b"\x00" * 100), "f.gz")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda g: g[:-4],  # truncated container (size field cut)
        lambda g: g[:12],  # truncated deflate stream
        lambda g: g[:-8] + b"\x00\x00\x00\x00" + g[-4:],  # CRC wrong
        lambda g: g[:3] + b"\xff" + g[4:],  # reserved flag bits set
        lambda g: g[:2] + b"\x07" + g[3:],  # unknown compression method
        lambda g: g + b"garbage!",  # junk after the member
        lambda g: g[:10] + b"\xff" * 8 + g[18:],  # deflate data destroyed
    ],
    ids=["no size", "cut stream", "bad crc", "bad flags", "bad method", "junk", "bad data"],
)
def test_corrupt_gzip(tmp_path: Path, mutate: Callable[[bytes], bytes]) -> None:
    good = gzip.compress(header(0x08, (1000,)) + bytes(range(256)) * 3 + bytes(232))
    assert read_idx_ok(good).shape == (1000,)
    path = tmp_path / "corrupt.gz"
    path.write_bytes(mutate(good))
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}: corrupt gzip"):
        read_idx(path)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


# ----------------------------------------------------- fail fast, bounded memory


def _assert_cheap(fn: Callable[[], object], *, seconds: float = 0.5, peak_bytes: int = 10 * 2**20) -> DataFormatError:
    """``fn`` must raise DataFormatError quickly, allocating less than ``peak_bytes``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataFormatError) as info:
            fn()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.3f} s"
    assert peak < peak_bytes, f"peak allocation {peak / 2**20:.1f} MiB"
    return info.value


def test_huge_header_in_tiny_file_fails_fast(tmp_path: Path) -> None:
    data = header(0x08, (10**9, 28, 28)) + bytes(1000)
    raw, packed = tmp_path / "huge.idx", tmp_path / "huge.idx.gz"
    raw.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    for path in (raw, packed):
        err = _assert_cheap(lambda p=path: read_idx(p))
        assert "truncated" in str(err) and "784000000000 bytes" in str(err)
    err = _assert_cheap(lambda: parse_idx_bytes(data, "huge"))
    assert "truncated" in str(err)


def test_largest_possible_header_fails_fast() -> None:
    data = header(0x0E, (2**32 - 1,) * 64)  # 8 * (2**32-1)**64 bytes, declared
    _assert_cheap(lambda: parse_idx_bytes(data + bytes(16), "max"))
    _assert_cheap(lambda: parse_idx_bytes(gzip.compress(data), "max.gz"))


def test_gzip_bomb_is_decompressed_only_up_to_declared_size(tmp_path: Path) -> None:
    # A valid 10-byte array followed by 64 MB of zeros, compressed to ~64 kB.
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(header(0x08, (10,)) + bytes(10))]
    zeros = bytes(2**20)
    parts += [comp.compress(zeros) for _ in range(64)]
    parts.append(comp.flush())
    path = tmp_path / "bomb.gz"
    path.write_bytes(b"".join(parts))
    assert path.stat().st_size < 2**20
    err = _assert_cheap(lambda: read_idx(path), seconds=1.0)
    assert "trailing data" in str(err)


# --------------------------------------------------------------- label pairs


def test_load_idx_pair(tmp_path: Path) -> None:
    images = sample(np.uint8, (4, 28, 28))
    labels = np.array([3, 1, 4, 1], np.uint8)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", labels)
    x, y = load_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz")
    assert same(x, images) and same(y, labels)


def test_load_idx_pair_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs.gz", sample(np.uint8, (4, 28, 28)))
    write_idx(tmp_path / "labs.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataFormatError) as info:
        load_idx_pair(tmp_path / "imgs.gz", tmp_path / "labs.gz")
    msg = str(info.value)
    assert "counts differ" in msg
    assert f"{tmp_path / 'imgs.gz'} holds 4 images" in msg
    assert f"{tmp_path / 'labs.gz'} holds 3 labels" in msg


def test_load_idx_pair_labels_must_be_1d(tmp_path: Path) -> None:
    write_idx(tmp_path / "imgs", np.zeros((2, 2, 2), np.uint8))
    write_idx(tmp_path / "labs", np.zeros((2, 1), np.uint8))
    with pytest.raises(DataFormatError, match=r"labs: labels must be 1-D, got shape \(2, 1\)"):
        load_idx_pair(tmp_path / "imgs", tmp_path / "labs")


# ------------------------------------------------------------------- property

FUZZ = settings(
    max_examples=200,
    deadline=2000,  # ms; a hang or a huge allocation would blow through it
    suppress_health_check=[HealthCheck.too_slow],
)


def _parse_or_format_error(data: bytes) -> np.ndarray | None:
    """Parse ``data``; a DataFormatError is fine, any other exception fails the test."""
    try:
        arr = parse_idx_bytes(data, "fuzz")
    except DataFormatError as exc:
        assert str(exc).startswith("fuzz: ")
        return None
    assert isinstance(arr, np.ndarray) and arr.dtype.isnative and arr.ndim >= 1
    return arr


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _parse_or_format_error(data)
    _parse_or_format_error(gzip.compress(data))


@FUZZ
@given(
    code=st.sampled_from(sorted(DTYPE_CODES)),
    shape=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6),
    body=st.binary(max_size=200),
)
def test_random_headers(code: int, shape: list[int], body: bytes) -> None:
    arr = _parse_or_format_error(header(code, tuple(shape)) + body)
    if arr is not None:  # only when the body has exactly the declared size
        assert arr.shape == tuple(shape)
        assert arr.nbytes == len(body)


valid_arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5))
)


def _encode(arr: np.ndarray, gz: bool) -> bytes:
    buf = io.BytesIO()
    code = {v: k for k, v in CODES.items()}[arr.dtype.name]
    buf.write(header(code, arr.shape) + arr.astype(arr.dtype.newbyteorder(">")).tobytes())
    return gzip.compress(buf.getvalue(), mtime=0) if gz else buf.getvalue()


@FUZZ
@given(arr=valid_arrays, gz=st.booleans())
def test_valid_encodings_parse_exactly(arr: np.ndarray, gz: bool) -> None:
    assert same(parse_idx_bytes(_encode(arr, gz)), arr)


@FUZZ
@given(arr=valid_arrays, gz=st.booleans(), data=st.data())
def test_mutated_files(arr: np.ndarray, gz: bool, data: st.DataObject) -> None:
    blob = bytearray(_encode(arr, gz))
    kind = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    else:
        blob += data.draw(st.binary(min_size=1, max_size=50))
    result = _parse_or_format_error(bytes(blob))
    if kind == "truncate" and not gz:
        assert result is None  # a raw file missing bytes can never be valid
    if kind == "append" and not gz:
        assert result is None  # nor one with extra bytes


def test_decompress_idx_passes_raw_data_through() -> None:
    assert decompress_idx(GOOD) is GOOD
    assert bytes(decompress_idx(gzip.compress(GOOD))) == GOOD
