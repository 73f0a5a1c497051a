"""Hostile ONNX and safetensors files, and the in-process checks on them.

``hostile_onnx`` and ``hostile_safetensors`` build the files (truncated, lying sizes,
external data, unknown operators, cycles, enormous declared tensors, bombs of tiny
items, pickles); each must be refused with a ``ModelFileError`` that names the file
and says what is wrong.  ``test_interop_hostile`` loads the same files in a separate
process to measure the peak memory.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ModelFileError
from layerwise.interop import from_onnx, load_safetensors, read_safetensors, save_safetensors, to_onnx

try:
    import onnx
    from onnx import TensorProto, helper
except ImportError:  # pragma: no cover - exercised only where onnx is missing
    if os.environ.get("CI"):
        raise
    pytest.skip("onnx is not installed (set CI=1 to make this an error)", allow_module_level=True)


# -- protobuf bytes, written by hand where onnx would refuse to write them ----------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


# -- valid files to start from ----------------------------------------------------------------
def small_cnn() -> lw.Sequential:
    net = lw.Sequential(
        [lw.Rescale(1 / 255), lw.Conv2D(2, 3, padding=1), lw.BatchNorm(), lw.ReLU(), lw.MaxPool2D(2),
         lw.Dropout(0.2), lw.Flatten(), lw.Dense(4), lw.Tanh(), lw.Dense(3), lw.Softmax()],
        input_shape=(1, 6, 6), seed=0,
    )  # fmt: skip
    net.forward(np.random.default_rng(0).integers(0, 256, (8, 1, 6, 6)).astype(np.uint8), training=True)
    return net


def mlp_model(name: str = "g", nodes=None, initializers=(), inputs=None, outputs=None, opset: int = 17):
    """A hand-made model: x (batch, 3) -> nodes -> y."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])]
    graph = helper.make_graph(
        nodes or [helper.make_node("Relu", ["x"], ["y"])], name, inputs, outputs, list(initializers)
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def weight(name: str, dims, data: bytes | None = None) -> TensorProto:
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = data if data is not None else b"\0" * 16
    return t


def gemm(*initializers):
    return mlp_model(nodes=[helper.make_node("Gemm", ["x", "W", "b"], ["y"])], initializers=initializers)


class Marker:
    """Unpickling this creates a file: it must never happen."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def hostile_onnx(tmp: Path, valid: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for k, cut in enumerate(sorted({1, 2, 5, 9, 17, 40, 100, *range(0, len(valid), max(1, len(valid) // 40))})):
        files[f"truncated-{k}"] = valid[:cut]
    files["empty"] = b""
    files["garbage"] = np.random.default_rng(0).integers(0, 256, 10_000).astype(np.uint8).tobytes()
    files["pickle"] = pickle.dumps(Marker(str(tmp / "PWNED")))
    zipped = tmp / "z.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("model.onnx", valid)
    files["zip"] = zipped.read_bytes()
    files["huge-dims-raw"] = gemm(weight("W", [100_000, 100_000]), weight("b", [3], b"\0" * 12))
    files["huge-dims-no-data"] = gemm(weight("W", [2**40], b""), weight("b", [3], b"\0" * 12))
    files["dims-overflow"] = gemm(weight("W", [2**62, 2**62, 2**62]), weight("b", [3], b"\0" * 12))
    files["negative-dims"] = gemm(weight("W", [-4, 3]), weight("b", [3], b"\0" * 12))
    lying = TensorProto()
    lying.name, lying.data_type = "W", TensorProto.FLOAT
    lying.dims.extend([3, 3])
    lying.float_data.extend([1.0, 2.0])
    files["float-data-short"] = gemm(lying, weight("b", [3], b"\0" * 12))
    files["raw-too-long"] = gemm(weight("W", [3, 3], b"\0" * 400), weight("b", [3], b"\0" * 12))
    external = weight("W", [3, 3], b"")
    external.data_location = TensorProto.EXTERNAL
    entry = external.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    files["external-data"] = gemm(external, weight("b", [3], b"\0" * 12))
    files["graph-length-lies"] = field(1, 8, 0) + varint(7 << 3 | 2) + varint(2**40) + b"\0" * 50
    files["varint-11-bytes"] = b"\x08" + b"\xff" * 10 + b"\x01"
    files["group-wire-type"] = b"\x0b\x0c"
    files["unknown-op"] = mlp_model(nodes=[helper.make_node("Sin", ["x"], ["y"])])
    files["custom-domain"] = mlp_model(nodes=[helper.make_node("Relu", ["x"], ["y"], domain="com.evil")])
    branch = helper.make_graph([helper.make_node("Relu", ["x"], ["z"])], "b", [], [
        helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])  # fmt: skip
    files["if-subgraph"] = mlp_model(
        nodes=[helper.make_node("If", ["x"], ["y"], then_branch=branch, else_branch=branch)]
    )
    files["cycle"] = mlp_model(nodes=[helper.make_node("Relu", ["y"], ["a"]), helper.make_node("Relu", ["a"], ["y"])])
    files["self-loop"] = mlp_model(nodes=[helper.make_node("Add", ["y", "x"], ["y"])])
    files["rewrites-input"] = mlp_model(
        nodes=[helper.make_node("Relu", ["x"], ["x"]), helper.make_node("Relu", ["x"], ["y"])]
    )
    files["branch"] = mlp_model(
        nodes=[helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])]
    )
    files["output-not-end"] = mlp_model(
        nodes=[helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Tanh", ["y"], ["t"])]
    )
    files["huge-input-shape"] = mlp_model(
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10**9, 10**9, 10**9])]
    )
    files["string-input"] = mlp_model(inputs=[helper.make_tensor_value_info("x", TensorProto.STRING, ["b", 3])])
    files["opset-7"] = mlp_model(opset=7)
    sparse = helper.make_sparse_tensor(
        weight("v", [1], b"\0" * 4), helper.make_tensor("i", TensorProto.INT64, [1], [0]), [3]
    )
    model = onnx.load_from_string(mlp_model())
    model.graph.sparse_initializer.append(sparse)
    files["sparse-initializer"] = model.SerializeToString()
    graph = field(1, field(4, b"Relu"))  # an empty-ish node ...
    files["node-bomb"] = field(1, 8, 0) + field(8, field(2, 17, 0)) + field(7, graph + field(1, b"") * 300_000)
    shape = TensorProto()
    shape.name, shape.data_type, shape.raw_data = "s", TensorProto.INT64, b"\0" * 16_000_000
    shape.dims.append(2_000_000)
    files["reshape-to-2M-dims"] = mlp_model(
        nodes=[helper.make_node("Reshape", ["x", "s"], ["y"])], initializers=[shape]
    )
    files["field-bomb"] = field(100, 0, 0) * 2_100_000  # unknown fields, skipped one by one: bounded in time
    ints = field(8, b"\x01" * 1_000_000)  # 10^6 packed ints in one attribute
    node = field(4, b"Conv") + field(5, field(1, b"pads") + ints)
    files["ints-bomb"] = field(8, field(2, 17, 0)) + field(7, field(1, node))
    nested = field(1, b"leaf")  # 5,000 levels of attribute -> graph -> node -> attribute ... (protobuf stops at 100)
    for _ in range(5_000):
        nested = field(5, field(6, field(1, field(4, b"If") + field(5, nested))))
    io = field(11, helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3]).SerializeToString())
    io += field(12, helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3]).SerializeToString())
    node = field(1, b"x") + field(2, b"y") + field(4, b"If") + nested
    files["deep-nesting"] = field(8, field(2, 17, 0)) + field(7, field(1, node) + io)
    # 24 MB of weights that claim 100 times as many: refused, memory bounded by the file, not the claim.
    files["big-lying"] = gemm(weight("W", [3, 2_000_000 * 100], b"\0" * 24_000_000), weight("b", [3], b"\0" * 12))
    return files


def hostile_safetensors(valid: bytes) -> dict[str, bytes]:
    def file(header: object, data: bytes = b"", raw: bytes | None = None) -> bytes:
        text = raw if raw is not None else json.dumps(header).encode()
        return len(text).to_bytes(8, "little") + text + data

    ok = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    files: dict[str, bytes] = {}
    for k, cut in enumerate(sorted({0, 1, 7, 8, 9, 20, *range(0, len(valid), max(1, len(valid) // 30))})):
        files[f"truncated-{k}"] = valid[:cut]
    files["header-length-2^63"] = (2**63).to_bytes(8, "little") + b"{}"
    files["header-longer-than-file"] = (1000).to_bytes(8, "little") + b'{"a": 1}'
    files["header-over-limit"] = file(None, raw=b"{" + b" " * (5 << 20) + b"}")
    files["not-utf8"] = file(None, raw=b'{"\xff\xfe": 1}')
    files["not-json"] = file(None, raw=b"{not json")
    files["json-array"] = file([1, 2])
    files["deep-nesting"] = file(None, raw=b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    files["object-bomb"] = file(None, raw=b'{"a":[' + b"{}," * 1_300_000 + b"{}]}")
    files["number-bomb"] = file(None, raw=b'{"a":[' + b"0," * 2_000_000 + b"0]}")
    files["offsets-past-end"] = file({"w": {**ok, "data_offsets": [0, 8000]}}, b"\0" * 8)
    files["overlap"] = file({"w": ok, "v": ok}, b"\0" * 8)
    files["gap"] = file({"w": {**ok, "data_offsets": [4, 12]}}, b"\0" * 12)
    files["trailing-bytes"] = file({"w": ok}, b"\0" * 100)
    files["shape-vs-offsets"] = file({"w": {**ok, "shape": [3]}}, b"\0" * 8)
    files["enormous-shape"] = file({"w": {**ok, "shape": [10**12, 10**12]}}, b"\0" * 8)
    files["negative-dim"] = file({"w": {**ok, "shape": [-2]}}, b"\0" * 8)
    files["bool-dim"] = file({"w": {**ok, "shape": [True, 2]}}, b"\0" * 8)
    files["float-offsets"] = file({"w": {**ok, "data_offsets": [0.0, 8.0]}}, b"\0" * 8)
    files["unknown-dtype"] = file({"w": {**ok, "dtype": "X99"}}, b"\0" * 8)
    files["duplicate-key"] = file(None, b"\0" * 8, raw=b'{"w": %s, "w": %s}' % ((json.dumps(ok).encode(),) * 2))
    files["metadata-not-strings"] = file({"__metadata__": {"a": 1}, "w": ok}, b"\0" * 8)
    files["entry-missing-key"] = file({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8)
    files["entry-extra-key"] = file({"w": {**ok, "exec": "rm -rf /"}}, b"\0" * 8)
    files["pickle"] = pickle.dumps({"w": np.zeros(2)})
    files["big-lying"] = file({"w": {**ok, "shape": [60_000_000], "data_offsets": [0, 24_000_000]}}, b"\0" * 24_000_000)
    return files


# Expected words in the messages of some cases (every case must be refused, naming the file).
NEEDLES = {
    "onnx": {
        "huge-dims-raw": "declares dims [100000, 100000]",
        "huge-dims-no-data": "(1,099,511,627,776 x 4 bytes) but stores 0 bytes",
        "dims-overflow": "stores 16 bytes",
        "negative-dims": "invalid dims",
        "float-data-short": "stores 8 bytes",
        "external-data": "external file",
        "graph-length-lies": "declares 1,099,511,627,776 bytes",
        "varint-11-bytes": "longer than 10 bytes",
        "unknown-op": "'Sin' is not supported",
        "custom-domain": "domain 'com.evil'",
        "if-subgraph": "'If' is not supported",
        "cycle": "sequential",
        "self-loop": "takes ['y', 'x']; a sequential graph's node takes the previous node's output 'x'",
        "branch": "sequential",
        "output-not-end": "not the end of the chain",
        "huge-input-shape": "too large",
        "opset-7": "opset 7",
        "sparse-initializer": "sparse",
        "node-bomb": "too many nodes",
        "field-bomb": "more than 2,000,000 protobuf fields",
        "reshape-to-2M-dims": "at most 8 values",
        "ints-bomb": "more than 4,096 values",
        "deep-nesting": "'If' is not supported",
        "big-lying": "stores 24,000,000 bytes",
        "pickle": "not a valid ONNX file",
    },
    "safetensors": {
        "header-length-2^63": "header claims",
        "header-over-limit": "at most 4,194,304",
        "not-utf8": "UTF-8",
        "deep-nesting": "too many items",
        "object-bomb": "too many items",
        "number-bomb": "too many items",
        "offsets-past-end": "outside",
        "overlap": "overlaps",
        "gap": "gap",
        "trailing-bytes": "cover 8 bytes of data, the file holds 100",
        "enormous-shape": "needs 4,000,000,000,000,000,000,000,000 bytes",
        "duplicate-key": "repeats a key",
        "unknown-dtype": "unknown dtype",
        "big-lying": "needs 240,000,000 bytes",
    },
}


def valid_files(folder: Path) -> tuple[bytes, bytes]:
    """A small CNN as ONNX and a small MLP's weights as safetensors: the files the hostile ones start from."""
    to_onnx(small_cnn(), folder / "valid.onnx")
    save_safetensors(lw.Sequential([lw.Dense(4), lw.ReLU(), lw.Dense(3)], input_shape=(5,), seed=1), folder / "v.st")
    return (folder / "valid.onnx").read_bytes(), (folder / "v.st").read_bytes()


def test_every_hostile_file_is_refused_naming_the_file(tmp_path):
    valid_onnx, valid_st = valid_files(tmp_path)
    target = lw.Sequential([lw.Dense(4), lw.ReLU(), lw.Dense(3)], input_shape=(5,), seed=0)
    cases = [("onnx", n, d) for n, d in hostile_onnx(tmp_path, valid_onnx).items()]
    cases += [("safetensors", n, d) for n, d in hostile_safetensors(valid_st).items()]
    problems = []
    for kind, name, data in cases:
        path = tmp_path / f"{name}.{kind}"
        path.write_bytes(data)
        load = from_onnx if kind == "onnx" else (lambda p: (read_safetensors(p), load_safetensors(target, p)))
        try:
            load(path)
        except ModelFileError as e:
            needle = NEEDLES[kind].get(name, "")
            if str(path) not in str(e) or needle not in str(e):
                problems.append(f"{kind} {name}: {needle!r} / the path not in {str(e)!r}")
        else:
            problems.append(f"{kind} {name}: loaded")
    assert not problems, "\n".join(problems)
    assert not (tmp_path / "PWNED").exists()  # the pickle was never unpickled


def test_external_data_is_never_opened(tmp_path, monkeypatch):
    files = hostile_onnx(tmp_path, b"")
    (tmp_path / "ext.onnx").write_bytes(files["external-data"])
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(ModelFileError, match="external"):
        from_onnx(tmp_path / "ext.onnx")
    assert opened == [str(tmp_path / "ext.onnx")]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "nope.onnx")
    with pytest.raises(FileNotFoundError):
        read_safetensors(tmp_path / "nope.safetensors")
