"""Issue 5, item 4: model files from strangers are refused cleanly and never unpickled.

Every damaged or hostile file must raise ``ModelFileError`` (a ``ValueError``)
with a message that says what is wrong; nothing may be unpickled, and a file
that lies about its sizes must not make ``load`` allocate what it claims.
"""

from __future__ import annotations

import io
import json
import pathlib
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layerwise as lw
from layerwise.errors import LayerwiseError, ModelFileError

HEADER = "__header__.npy"


# -- building valid and damaged files ---------------------------------------------------
def small_model(optimizer="adam") -> lw.Model:
    net = lw.NeuralNetwork(4, [(5, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net, optimizer=optimizer)
    x = np.random.default_rng(0).random((16, 4))
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("valid") / "model.npz"
    small_model().save(path)
    return path


@pytest.fixture(scope="module")
def valid_bytes(valid_file) -> bytes:
    return valid_file.read_bytes()


def members(path: pathlib.Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def read_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def header_of(parts: dict[str, bytes]) -> dict:
    return json.loads(read_npy(parts[HEADER]).tobytes().decode())


def header_npy(header) -> bytes:
    text = header if isinstance(header, (str, bytes)) else json.dumps(header)
    data = text.encode() if isinstance(text, str) else text
    return npy(np.frombuffer(data, dtype=np.uint8))


def write_zip(path: pathlib.Path, parts: dict[str, bytes]) -> pathlib.Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return path


def refused(path: pathlib.Path, *needles: str) -> ModelFileError:
    with pytest.raises(ModelFileError) as info:
        lw.load(path)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, LayerwiseError)
    message = str(err)
    assert str(path) in message, message  # names the file
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return err


class Touch:
    """Unpickling this creates ``marker``: proof that a pickle payload was executed."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


# -- the baseline: a valid file loads -----------------------------------------------------
def test_valid_file_round_trips(valid_file, tmp_path):
    model = small_model()
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = lw.load(path)
    np.testing.assert_array_equal(loaded.net.flat_params, model.net.flat_params)
    x = np.random.default_rng(1).random((5, 4))
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))
    # The hand-rebuilt copy of a valid file (the helpers below) loads too.
    copy = write_zip(tmp_path / "copy.npz", members(valid_file))
    np.testing.assert_array_equal(lw.load(copy).net.flat_params, lw.load(valid_file).net.flat_params)


# -- pickles --------------------------------------------------------------------------------
def test_object_array_is_refused_and_never_unpickled(valid_file, tmp_path):
    marker = tmp_path / "PWNED"
    payload = np.array([Touch(marker), 1.0], dtype=object)
    parts = members(valid_file)
    parts["net/0.W.npy"] = npy(payload, allow_pickle=True)
    path = write_zip(tmp_path / "evil.npz", parts)
    refused(path, "net/0.W.npy", "object")
    assert not marker.exists()
    # The payload is live: NumPy's own loader with allow_pickle=True runs it.
    with np.load(path, allow_pickle=True) as archive:
        archive["net/0.W"]
    assert marker.exists()


def test_object_array_made_by_savez_is_refused(valid_file, tmp_path):
    """np.savez(..., allow_pickle) writing an object array next to a valid header."""
    marker = tmp_path / "PWNED"
    header = read_npy(members(valid_file)[HEADER])
    path = tmp_path / "evil.npz"
    np.savez(path, __header__=header, **{"net/0.W": np.array([Touch(marker)], dtype=object)}, allow_pickle=True)
    refused(path, "object")
    assert not marker.exists()


def test_pickled_header_is_refused(valid_file, tmp_path):
    marker = tmp_path / "PWNED"
    parts = members(valid_file)
    parts[HEADER] = npy(np.array([Touch(marker)], dtype=object), allow_pickle=True)
    refused(write_zip(tmp_path / "evil.npz", parts), "object")
    assert not marker.exists()


def test_raw_pickle_file_is_refused(tmp_path):
    import pickle

    marker = tmp_path / "PWNED"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(Touch(marker)))
    refused(path, "not a readable layerwise model file")
    assert not marker.exists()


# -- arrays that do not match the header ------------------------------------------------------
def damage(parts: dict[str, bytes], case: str) -> dict[str, bytes]:
    parts = dict(parts)
    W0 = read_npy(parts["net/0.W.npy"])
    header = header_of(parts)
    if case == "missing-weight":
        del parts["net/2.W.npy"]
    elif case == "missing-optimizer-slot":
        del parts["optimizer/v/0.npy"]
    elif case == "missing-header":
        del parts[HEADER]
    elif case == "extra-array":
        parts["net/9.W.npy"] = npy(np.zeros((2, 2), np.float32))
    elif case == "extra-slot":
        parts["optimizer/m/1.npy"] = npy(np.zeros(38, np.float32))
    elif case == "extra-non-npy":
        parts["README.txt"] = b"hello"
    elif case == "transposed":
        parts["net/0.W.npy"] = npy(np.ascontiguousarray(W0.T))
    elif case == "flattened":
        parts["net/0.W.npy"] = npy(W0.reshape(-1))
    elif case == "float64-in-float32":
        parts["net/0.W.npy"] = npy(W0.astype(np.float64))
    elif case == "int-weights":
        parts["net/0.W.npy"] = npy(W0.astype(np.int32))
    elif case == "complex-weights":
        parts["net/0.W.npy"] = npy(W0.astype(np.complex64))
    elif case == "string-weights":
        parts["net/0.W.npy"] = npy(W0.astype(str))
    elif case == "structured-weights":
        parts["net/0.W.npy"] = npy(np.zeros(W0.shape, dtype=[("a", "<f4")]))
    elif case == "nan-weights":
        W0 = W0.copy()
        W0[1, 1] = np.nan
        parts["net/0.W.npy"] = npy(W0)
    elif case == "optimizer-state-shape":
        parts["optimizer/m/0.npy"] = npy(np.zeros(7, np.float32))
    elif case == "header-bigger-layer":  # a wider first Dense, consistent shapes, too few stored numbers
        header["layers"][0]["units"] = 6
        for later in header["layers"][1:3]:
            later["input_shape"] = [6]
    elif case == "header-dtype-float16":
        header["dtype"] = "float16"
    elif case == "header-dtype-garbage":
        header["dtype"] = "float33"
    elif case == "header-version-3":
        header["version"] = 3
    elif case == "header-version-missing":
        del header["version"]
    elif case == "header-format":
        header["format"] = "keras.h5"
    elif case == "header-unknown-layer":
        header["layers"][1]["type"] = "GELU"
    elif case == "header-unknown-loss":
        header["loss"] = "Hinge"
    elif case == "header-unknown-optimizer":
        header["optimizer"]["name"] = "Adagrad"
    elif case == "header-bad-lr":
        header["optimizer"]["config"]["lr"] = -1
    elif case == "header-slots":
        header["optimizer"]["slots"]["m"] = 2
    elif case == "header-layers-not-list":
        header["layers"] = "Dense"
    elif case == "header-seed":
        header["seed"] = "zero"
    elif case == "header-train-config":
        header["train_config"] = [1, 2]
    elif case == "header-not-json":
        parts[HEADER] = header_npy(b"{'format': 'layerwise.model'")
    elif case == "header-not-utf8":
        parts[HEADER] = header_npy(b"\xff\xfe{}")
    elif case == "header-json-list":
        parts[HEADER] = header_npy("[1, 2, 3]")
    elif case == "header-deeply-nested":
        parts[HEADER] = header_npy("[" * 100_000 + "]" * 100_000)
    elif case == "header-float-array":
        parts[HEADER] = npy(np.zeros(8))
    if case.startswith("header-") and case not in HEADER_REPLACED:
        parts[HEADER] = header_npy(header)
    return parts


HEADER_REPLACED = {
    "header-not-json",
    "header-not-utf8",
    "header-json-list",
    "header-deeply-nested",
    "header-float-array",
}

DAMAGE = [
    ("missing-weight", ["missing", "net/2.W"]),
    ("missing-optimizer-slot", ["missing", "optimizer/v/0"]),
    ("missing-header", ["no layerwise header"]),
    ("extra-array", ["unexpected", "net/9.W"]),
    ("extra-slot", ["unexpected", "optimizer/m/1"]),
    ("extra-non-npy", ["unexpected member", "README.txt"]),
    ("transposed", ["net/0.W", "(4, 5)", "(5, 4)"]),
    ("flattened", ["net/0.W", "(4, 5)", "(20,)"]),
    ("float64-in-float32", ["net/0.W", "float32", "float64"]),
    ("int-weights", ["net/0.W", "float32", "int32"]),
    ("complex-weights", ["net/0.W", "complex64"]),
    ("string-weights", ["net/0.W", "<U"]),
    ("structured-weights", ["net/0.W", "only numeric"]),
    ("nan-weights", ["net/0.W", "NaN or inf"]),
    ("optimizer-state-shape", ["optimizer/m/0", "(7,)"]),
    ("header-bigger-layer", ["net/0.W", "(4, 6)", "(4, 5)"]),
    ("header-dtype-float16", ["dtype", "float16"]),
    ("header-dtype-garbage", ["header", "float33"]),
    ("header-version-3", ["unknown format version 3", "versions 1, 2"]),
    ("header-version-missing", ["unknown format version None"]),
    ("header-format", ["not a layerwise model file", "keras.h5"]),
    ("header-unknown-layer", ["header", "GELU"]),
    ("header-unknown-loss", ["header", "Hinge"]),
    ("header-unknown-optimizer", ["header", "Adagrad"]),
    ("header-bad-lr", ["header", "lr", "-1"]),
    ("header-slots", ["missing", "optimizer/m/1"]),
    ("header-layers-not-list", ["layers", "str"]),
    ("header-seed", ["seed", "'zero'"]),
    ("header-train-config", ["train_config", "[1, 2]"]),
    ("header-not-json", ["not valid JSON"]),
    ("header-not-utf8", ["not valid JSON"]),
    ("header-json-list", ["not a layerwise model file"]),
    ("header-deeply-nested", ["not valid JSON"]),
    ("header-float-array", ["no layerwise header"]),
]


@pytest.mark.parametrize(("case", "needles"), DAMAGE, ids=[c for c, _ in DAMAGE])
def test_damaged_file_is_refused(valid_file, tmp_path, case, needles):
    path = write_zip(tmp_path / f"{case}.npz", damage(members(valid_file), case))
    refused(path, *needles)


# -- not a zip, truncated zips ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "not a readable"),
        (b"hello, I am a text file\n", "not a readable"),
        (bytes(range(256)) * 4, "not a readable"),
        (b"PK\x03\x04" + b"\0" * 100, "not a readable"),
        (npy(np.zeros(3)), "not a readable"),  # a bare .npy, not an archive
    ],
    ids=["empty", "text", "random", "zip-magic-only", "bare-npy"],
)
def test_not_a_zip(tmp_path, content, needle):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    refused(path, needle)


def test_missing_file_and_directory(tmp_path):
    refused(tmp_path / "nope.npz", "no such model file")
    refused(tmp_path, "no such model file")


def test_truncated_at_many_lengths(valid_bytes, tmp_path):
    path = tmp_path / "cut.npz"
    lengths = sorted({*range(0, len(valid_bytes), 97), 1, 4, 22, len(valid_bytes) - 22, len(valid_bytes) - 1})
    for n in lengths:
        path.write_bytes(valid_bytes[:n])
        with pytest.raises(ModelFileError, match="cut.npz"):
            lw.load(path)


def test_truncated_data_with_intact_directory(valid_file, tmp_path):
    """Zero bytes inside a member (its CRC no longer matches): refused, not loaded as garbage."""
    data = bytearray(valid_file.read_bytes())
    with zipfile.ZipFile(valid_file) as zf:
        info = zf.getinfo("net/0.W.npy")
    start = info.header_offset + 30 + len(info.filename) + 128 + 8  # inside the array data
    data[start : start + 16] = bytes(16)
    path = tmp_path / "zeroed.npz"
    path.write_bytes(bytes(data))
    refused(path, "not a readable")


# -- sizes that lie ----------------------------------------------------------------------------
def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic string included


def lying_zip(name: str, data: bytes, claimed_size: int) -> bytes:
    """A one-member stored zip whose directory claims ``claimed_size`` bytes for ``data``."""
    fname = name.encode()
    crc = zlib.crc32(data)
    local = (
        struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, claimed_size, claimed_size, len(fname), 0) + fname
    )
    central = (
        struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            0,
            0,
            0,
            crc,
            claimed_size,
            claimed_size,
            len(fname),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + fname
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def peak_while_loading(path: pathlib.Path) -> tuple[int, ModelFileError]:
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as info:
            lw.load(path)
        return tracemalloc.get_traced_memory()[1], info.value
    finally:
        tracemalloc.stop()


SMALL = 4 << 20  # 4 MiB: far above what reading a few-kB file needs, far below what the files claim


def test_gigantic_npy_shape_fails_fast(valid_file, tmp_path):
    parts = members(valid_file)
    parts["net/0.W.npy"] = npy_header((10**9, 10**9)) + b"\0" * 64
    path = write_zip(tmp_path / "huge.npz", parts)
    peak, err = peak_while_loading(path)
    assert "(1000000000, 1000000000)" in str(err) and "bytes" in str(err)
    assert peak < SMALL


@pytest.mark.parametrize("n", [400_000_000, 10**9 // 8])
def test_zip_directory_lying_about_member_size_fails_fast(tmp_path, n):
    """Both the .npy header and the zip directory claim GBs; the file holds a few hundred bytes.

    Before the fix this allocated the claimed size (3.2 GB) before noticing.
    """
    header = npy_header((n,))
    path = tmp_path / "bomb.npz"
    path.write_bytes(lying_zip("net/0.W.npy", header + b"\0" * 64, len(header) + 8 * n))
    peak, err = peak_while_loading(path)
    assert "net/0.W.npy" in str(err) and "more than" in str(err)
    assert peak < SMALL


def test_header_claiming_huge_layer_fails_before_allocating(valid_file, tmp_path):
    parts = members(valid_file)
    header = header_of(parts)
    header["input_shape"] = [30_000]
    header["layers"][0].update(units=30_000, input_shape=[30_000])  # 3.6 GB of float32 zeros if built
    parts[HEADER] = header_npy(header)
    path = write_zip(tmp_path / "wide.npz", parts)
    peak, err = peak_while_loading(path)
    assert "Dense with W (30000, 30000)" in str(err) and "stores only" in str(err)
    assert peak < SMALL


def test_negative_dimension_is_refused(valid_file, tmp_path):
    parts = members(valid_file)
    parts["net/0.W.npy"] = npy_header((-4, -5), "<f4") + b"\0" * 80
    refused(write_zip(tmp_path / "neg.npz", parts), "net/0.W.npy")


def test_deflate_bomb_member_is_bounded(valid_file, tmp_path):
    """A compressed member is read only as far as it really expands (here: refused for its shape)."""
    parts = members(valid_file)
    path = tmp_path / "deflated.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        zf.writestr("optimizer/zz/0.npy", npy(np.zeros(2_000_000, np.float32)))  # 8 MB -> ~8 kB
    peak, err = peak_while_loading(path)
    assert "unexpected" in str(err) and "optimizer/zz/0" in str(err)
    assert peak < 32 << 20  # what the member really holds (8 MB), read once


# -- mutated files (Hypothesis) ------------------------------------------------------------------
@st.composite
def mutations(draw, size: int):
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
                st.integers(0, size - 1),
                st.integers(0, 255),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return ops


def apply(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, i, value in ops:
        i = min(i, max(0, len(buf) - 1))
        if op == "flip":
            if buf:
                buf[i] ^= 1 << (value % 8)
        elif op == "set":
            if buf:
                buf[i] = value
        elif op == "truncate":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = bytes([value]) * (1 + value % 5)
        elif op == "delete":
            del buf[i : i + 1 + value % 8]
    return bytes(buf)


MUTATION_SIZE = 4096  # larger than the small model file: indices past the end clamp to it


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=mutations(MUTATION_SIZE))
def test_mutated_file_loads_or_is_refused(valid_bytes, tmp_path, ops):
    path = tmp_path / "mutated.npz"
    path.write_bytes(apply(valid_bytes, ops))
    try:
        model = lw.load(path)
    except ModelFileError as err:
        assert str(path) in str(err)
    else:
        # Whatever loads is a usable model with finite weights.
        assert np.isfinite(model.net.flat_params).all()
        assert model.predict_logits(np.ones((2, model.net.n_inputs))).shape[0] == 2


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["layers", "dtype", "loss", "optimizer", "seed", "train_config", "version"]),
    value=st.recursive(
        st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    ),
)
def test_mutated_header_loads_or_is_refused(valid_file, tmp_path, key, value):
    """A header whose fields hold arbitrary JSON: only a model or ModelFileError, nothing else."""
    parts = members(valid_file)
    header = header_of(parts)
    header[key] = value
    parts[HEADER] = header_npy(header)
    path = write_zip(tmp_path / "hdr.npz", parts)
    try:
        model = lw.load(path)
    except ModelFileError:
        pass
    else:
        assert np.isfinite(model.net.flat_params).all()
