"""Issue 9: a property test over every kind of file layerwise reads.

Hypothesis mutates valid model files, checkpoints (a model saved with its training
state), run configs (``config.json``, read by ``RunConfig.from_json``), IDX files
(raw and gzip) and PNG images -- bytes flipped, inserted, deleted, truncated; zip
directory and IDX header fields set to extreme sizes; header JSON values replaced by
hostile ones -- and asserts for every example:

- the reader returns, or raises an error from ``layerwise.errors`` (nothing else:
  no zipfile, json, NumPy, Pillow or Python error);
- it never hangs (Hypothesis' ``deadline``);
- its memory stays bounded (``tracemalloc`` peak under 64 MB for files of a few kB,
  whatever sizes they declare; the crafted multi-gigabyte cases are measured with
  ``resource`` in test_reliability2_files.py).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import layerwise as lw
from layerwise.data.idx import read_idx, write_idx
from layerwise.errors import LayerwiseError
from layerwise.images import load_image
from layerwise.io import save_model
from layerwise.runs.config import RunConfig

PEAK_LIMIT = 64 << 20
SETTINGS = {
    "deadline": 3000,  # ms per example: a hang fails the test
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "derandomize": True,  # the same examples on every run: a failure reproduces
}


def outcome(read, *args):
    """Run ``read``: its result or the LayerwiseError it raised; anything else fails the test.  Memory is bounded."""
    tracemalloc.start()
    try:
        result = read(*args)
    except LayerwiseError as e:
        result = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{peak:,} bytes"
    return result


# -- valid files ----------------------------------------------------------------------------------
def trained_model() -> lw.Model:
    net = lw.NeuralNetwork(6, [(5, "ReLU"), (3, "Linear")], seed=0, input_scale=1 / 255)
    model = lw.Model(net, optimizer=lw.optim.Adam(0.01))
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 256, (24, 6)), np.arange(24) % 3, epochs=2, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("valid")
    model = trained_model()
    model.save(d / "model.npz")
    save_model(model, d / "checkpoint.npz", train_state={**model.train_state, "history": model.history.history})
    rng = np.random.default_rng(0)
    write_idx(d / "images", rng.integers(0, 256, (3, 7, 5), np.uint8))
    write_idx(d / "floats.gz", rng.standard_normal((4, 6)).astype(np.float32))
    Image.fromarray(rng.integers(0, 256, (12, 10), np.uint8)).save(d / "digit.png")
    names = ("model.npz", "checkpoint.npz", "images", "floats.gz", "digit.png")
    return {name: (d / name).read_bytes() for name in names}


# -- mutations --------------------------------------------------------------------------------------
byte_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "truncate", "insert", "delete"]), st.integers(0, 1 << 16), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)


def apply(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, i, value in ops:
        i = i % max(1, len(buf))
        if op == "flip" and buf:
            buf[i] ^= 1 << (value % 8)
        elif op == "set" and buf:
            buf[i] = value
        elif op == "truncate":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = bytes([value]) * (1 + value % 7)
        elif op == "delete":
            del buf[i : i + 1 + value % 9]
    return bytes(buf)


# Sizes a hostile file would declare: small, at the edges of the field, and random.
sizes = st.one_of(
    st.integers(0, 300), st.sampled_from([2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)
)

# Fields of the zip records (offset, width): local header, central directory entry, end record.
LOCAL = [(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)]
CENTRAL = [(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)]
END = [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]


def patch_zip(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    records = {
        b"PK\x03\x04": LOCAL,
        b"PK\x01\x02": CENTRAL,
        b"PK\x05\x06": END,
    }
    starts = [(i, fields) for sig, fields in records.items() for i in _find_all(bytes(buf), sig)]
    for pick, field, value in edits:
        start, fields = starts[pick % len(starts)]
        offset, width = fields[field % len(fields)]
        struct.pack_into("<H" if width == 2 else "<I", buf, start + offset, value % (1 << (8 * width)))
    return bytes(buf)


def _find_all(data: bytes, sig: bytes) -> list[int]:
    found, i = [], data.find(sig)
    while i >= 0:
        found.append(i)
        i = data.find(sig, i + 1)
    return found


def hostile_json():
    """Any JSON value, with numbers no float or int holds (written as digits: see ``dumps``) and hostile strings."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.integers(39, 5000).map(lambda k: f"__DIGITS_{k}__"),  # 10**k, as text
        st.sampled_from([2**63, -1, 0, 1e308, -0.0]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
        st.sampled_from(["\x1b[2J", "a" * 5000, "../../etc/passwd", "{epoch}"]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=10,
    )


def dumps(value) -> str:
    """json.dumps, with the ``__DIGITS_k__`` placeholders written as the k+1-digit integer 10**k (also 1e400)."""
    text = json.dumps(value)
    return re.sub(r'"__DIGITS_(\d+)__"', lambda m: "1" + "0" * int(m.group(1)), text)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, (*prefix, i))


def replaced(value, path, new):
    if not path:
        return new
    value = dict(value) if isinstance(value, dict) else list(value)
    value[path[0]] = replaced(value[path[0]], path[1:], new)
    return value


def rezip(data: bytes, header: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            member = src.read(info)
            if info.filename == "__header__.npy":
                buf = io.BytesIO()
                np.save(buf, np.frombuffer(header.encode("utf-8", "surrogatepass"), np.uint8))
                member = buf.getvalue()
            dst.writestr(info.filename, member)
    return out.getvalue()


def header_json(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(np.load(io.BytesIO(zf.read("__header__.npy"))).tobytes())


# -- readers ----------------------------------------------------------------------------------------
def load_and_use(path: Path):
    model = lw.load(path)
    assert np.isfinite(model.net.flat_params).all()
    if model.net.input_shape is not None and model.net.n_inputs <= 10_000:
        model.predict_proba(np.ones((2, *model.net.input_shape)))  # may raise NonFiniteError, a LayerwiseError
    if model.train_state is not None:
        assert model.train_state["epoch"] >= 0
    model.summary()
    return model


# -- the properties -------------------------------------------------------------------------------
@settings(max_examples=120, **SETTINGS)
@given(kind=st.sampled_from(["model.npz", "checkpoint.npz"]), ops=byte_edits)
def test_mutated_model_bytes(files, tmp_path, kind, ops):
    path = tmp_path / kind
    path.write_bytes(apply(files[kind], ops))
    result = outcome(load_and_use, path)
    if isinstance(result, LayerwiseError):
        assert str(path) in str(result)


@settings(max_examples=120, **SETTINGS)
@given(kind=st.sampled_from(["model.npz", "checkpoint.npz"]),
       edits=st.lists(st.tuples(st.integers(0, 99), st.integers(0, 9), sizes), min_size=1, max_size=3))  # fmt: skip
def test_mutated_zip_directory(files, tmp_path, kind, edits):
    """Sizes, offsets, flags (encryption...), methods and counts of the zip set to anything."""
    path = tmp_path / kind
    path.write_bytes(patch_zip(files[kind], edits))
    result = outcome(load_and_use, path)
    if isinstance(result, LayerwiseError):
        assert str(path) in str(result) and "\x1b" not in str(result)


@settings(max_examples=120, **SETTINGS)
@given(kind=st.sampled_from(["model.npz", "checkpoint.npz"]), pick=st.integers(0, 10**6), value=hostile_json())
def test_mutated_header_values(files, tmp_path, kind, pick, value):
    """One value of the JSON header (layers, optimizer, training state, history...) replaced by anything."""
    header = header_json(files[kind])
    paths = list(paths_of(header))
    path_in_header = paths[pick % len(paths)]
    path = tmp_path / kind
    path.write_bytes(rezip(files[kind], dumps(replaced(header, path_in_header, value))))
    result = outcome(load_and_use, path)
    if isinstance(result, LayerwiseError):
        assert str(path) in str(result) and "\x1b" not in str(result)


@settings(max_examples=150, **SETTINGS)
@given(
    kind=st.sampled_from(["images", "floats.gz"]), ops=byte_edits, dims=st.lists(sizes, max_size=3), gz=st.booleans()
)
def test_mutated_idx_files(files, tmp_path, kind, ops, dims, gz):
    raw = bytearray(gzip.decompress(files[kind]) if kind.endswith(".gz") else files[kind])
    for k, d in enumerate(dims[: raw[3] if len(raw) > 3 else 0]):  # header sizes set to anything
        struct.pack_into(">I", raw, 4 + 4 * k, d)
    data = apply(bytes(raw), ops)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(apply(gzip.compress(data), ops[:1]) if gz else data)
    result = outcome(read_idx, path)
    if isinstance(result, LayerwiseError):
        assert str(path) in str(result)
    else:
        assert result.nbytes <= len(data)


@settings(max_examples=100, **SETTINGS)
@given(
    key=st.sampled_from([*RunConfig().to_dict(), "unknown", "layerwise_version"]),
    value=hostile_json(),
    ops=st.one_of(st.just([]), byte_edits),
    drop=st.booleans(),
)
def test_mutated_run_config(key, value, ops, drop):
    """config.json of a run folder: RunConfig.from_json gives a RunConfig or a ConfigError."""
    data = RunConfig().to_dict()
    if drop:
        data.pop(key, None)
    else:
        data[key] = value
    text = apply(dumps(data).encode(), ops).decode("utf-8", "replace")
    result = outcome(RunConfig.from_json, text, "run/config.json")
    if isinstance(result, LayerwiseError):
        assert "run/config.json" in str(result) and len(str(result)) < 2100
    else:
        assert isinstance(result, RunConfig)


@settings(max_examples=100, **SETTINGS)
@given(ops=byte_edits, size=st.tuples(sizes, sizes))
def test_mutated_images(files, tmp_path, ops, size):
    """A PNG with bytes changed, or its header's width and height set to anything."""
    data = bytearray(files["digit.png"])
    if size != (0, 0):
        struct.pack_into(">II", data, 16, *size)
    path = tmp_path / "digit.png"
    path.write_bytes(apply(bytes(data), ops))
    try:
        result = load_image(path, 28)
    except LayerwiseError as e:
        assert str(path) in str(e)
    else:
        assert result.shape == (28, 28) and result.dtype == np.uint8
