"""A minimal, defensive reader of the ONNX protobuf format, in pure Python and NumPy.

``from_onnx`` reads files from anywhere, so it does not hand them to a general
protobuf parser.  This module decodes only the fields a sequential network needs
(``ModelProto`` → ``GraphProto`` → nodes, attributes, initializers, input/output
types, metadata) and skips every other field by its length without looking inside.
Why not ``onnx.load``: it parses (and allocates) everything in the file, recursing
into sub-graphs, before one can check anything; here

- the file is read once (its size is checked first: at most 2 GiB, protobuf's limit);
  every length is checked against the bytes that are there before it is used;
- tensors are never copied while parsing: a tensor is a (dtype, dims, byte range) of
  the file, and its declared size must equal the bytes it stores before any array is made;
- everything decoded into Python objects (nodes, names, ints) counts against a budget
  of ``MAX_ITEMS``, so a small file cannot expand into gigabytes of objects;
- there is no recursion on the data: sub-graphs (If/Loop bodies), functions and
  training info are skipped as opaque byte ranges, and such nodes are refused later.

It needs neither ``onnx`` nor ``protobuf``: ``from_onnx`` works with NumPy alone.
Field numbers are those of onnx.proto (IR version 10 and earlier ones, which agree on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError

MAX_FILE_BYTES = 2**31 - 1  # protobuf cannot serialise a larger message
MAX_FIELDS = 2_000_000  # fields walked, skipped ones included (a LeNet-5 file has ~1,000)
MAX_ITEMS = 200_000  # decoded names, ints, floats, nodes, attributes... in one file
MAX_DIMS = 8
# What one node, attribute or tensor costs in that budget: a dataclass with its lists and dicts
# takes ~400 bytes, a decoded int or short name ~50.
NODE_COST = 8
MAX_DECODED_ELEMENTS = 65_536  # tensors stored as varints (int64_data...) are shape constants: small


@dataclass
class Tensor:
    """A TensorProto, not yet an array: where its numbers are in the file."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw: list[tuple[int, int]] = field(default_factory=list)  # byte ranges of raw_data
    packed: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # field -> packed byte ranges
    values: dict[int, list[Any]] = field(default_factory=dict)  # field -> unpacked elements
    external: bool = False
    segmented: bool = False


@dataclass
class Attribute:
    name: str = ""
    type: int = 0
    f: float = 0.0
    i: int = 0
    s: bytes = b""
    t: Tensor | None = None
    ints: list[int] = field(default_factory=list)
    floats: list[float] = field(default_factory=list)
    has_subgraph: bool = False  # GRAPH / GRAPHS / sparse / type attributes: never used, never parsed


@dataclass
class Node:
    name: str = ""
    op_type: str = ""
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, Attribute] = field(default_factory=dict)


@dataclass
class ValueInfo:
    name: str = ""
    elem_type: int | None = None
    dims: list[int | str | None] | None = None  # None: no shape given; a str: a symbolic dim


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, Tensor] = field(default_factory=dict)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    sparse_initializers: int = 0


@dataclass
class Model:
    ir_version: int = 0
    opsets: dict[str, int] = field(default_factory=dict)
    producer: str = ""
    graph: Graph | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    functions: int = 0


class _Reader:
    """Walks the fields of protobuf messages inside one bytes object, counting what it decodes."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.where = where
        self.items = 0
        self.fields_read = 0

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: not a valid ONNX file ({message})")

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise ModelFileError(
                f"{self.where}: the file holds too many nodes, names and numbers outside its tensors "
                f"(a budget of {MAX_ITEMS:,}, a node counting {NODE_COST}); a sequential network needs far "
                "fewer (refused to bound memory)"
            )

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        result, shift = 0, 0
        data = self.data
        while True:
            if pos >= end:
                raise self.fail("a number runs past the end of its message")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.fail("a number is longer than 10 bytes")

    def fields(self, start: int, end: int) -> Any:
        """Yield (field number, wire type, value) of the message in data[start:end].

        value: an int (varint), or (begin, end) of the bytes of a length-delimited
        field, or the offset of a fixed32/fixed64 field.
        """
        pos = start
        while pos < end:
            self.fields_read += 1
            if self.fields_read > MAX_FIELDS:  # skipping is cheap, but not free: bound the time too
                raise self.fail(f"more than {MAX_FIELDS:,} protobuf fields")
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail("field number 0")
            if wire == 0:
                value, pos = self.varint(pos, end)
            elif wire == 2:
                length, pos = self.varint(pos, end)
                if length > end - pos:
                    raise self.fail(f"field {number} declares {length:,} bytes, only {end - pos:,} remain")
                value, pos = (pos, pos + length), pos + length
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                if size > end - pos:
                    raise self.fail(f"field {number} runs past the end of its message")
                value, pos = pos, pos + size
            else:  # 3, 4: deprecated groups; 6, 7: invalid
                raise self.fail(f"unsupported wire type {wire} in field {number}")
            yield number, wire, value

    # -- scalars -------------------------------------------------------------------------
    def string(self, span: Any, what: str) -> str:
        if not isinstance(span, tuple):
            raise self.fail(f"{what} should be a string")
        self.count()
        try:
            return self.data[span[0] : span[1]].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8") from None

    def integer(self, wire: int, value: Any, what: str, signed: bool = True) -> int:
        if wire != 0:
            raise self.fail(f"{what} should be an integer")
        return value - (1 << 64) if signed and value >= 1 << 63 else value

    def int_list(self, wire: int, value: Any, out: list[int], what: str, limit: int) -> None:
        """Append a repeated int64 field, packed (wire 2) or not (wire 0)."""
        if wire == 0:
            values = [value]
        elif wire == 2:
            values, pos = [], value[0]
            while pos < value[1]:
                v, pos = self.varint(pos, value[1])
                values.append(v)
                if len(values) + len(out) > limit:
                    break
        else:
            raise self.fail(f"{what} should be integers")
        if len(out) + len(values) > limit:
            raise self.fail(f"{what} has more than {limit:,} values")
        self.count(len(values))
        out.extend(v - (1 << 64) if v >= 1 << 63 else v for v in values)

    def float_list(self, wire: int, value: Any, out: list[float], what: str, limit: int) -> None:
        if wire == 5:
            values = [float(np.frombuffer(self.data, "<f4", 1, value)[0])]
        elif wire == 2:
            if (value[1] - value[0]) % 4:
                raise self.fail(f"{what}: packed floats of {value[1] - value[0]} bytes")
            if len(out) + (value[1] - value[0]) // 4 > limit:
                raise self.fail(f"{what} has more than {limit:,} values")
            values = np.frombuffer(self.data, "<f4", (value[1] - value[0]) // 4, value[0]).tolist()
        else:
            raise self.fail(f"{what} should be floats")
        if len(out) + len(values) > limit:
            raise self.fail(f"{what} has more than {limit:,} values")
        self.count(len(values))
        out.extend(values)

    # -- messages ------------------------------------------------------------------------
    def model(self) -> Model:
        model = Model()
        graphs = 0
        for number, wire, value in self.fields(0, len(self.data)):
            if number == 1:
                model.ir_version = self.integer(wire, value, "ir_version")
            elif number == 8 and wire == 2:
                domain, version = "", 0
                for n, w, v in self.fields(*value):
                    if n == 1:
                        domain = self.string(v, "opset domain")
                    elif n == 2:
                        version = self.integer(w, v, "opset version")
                if len(model.opsets) >= 64:
                    raise self.fail("more than 64 opset imports")
                model.opsets[domain] = version
            elif number == 2:
                model.producer = self.string(value, "producer_name")
            elif number == 7 and wire == 2:
                graphs += 1
                model.graph = self.graph(value)
            elif number == 14 and wire == 2:
                key, text = self.entry(value)
                if len(model.metadata) >= 1000:
                    raise self.fail("more than 1,000 metadata entries")
                model.metadata[key] = text
            elif number == 25:
                model.functions += 1
            elif number in (1, 2, 7, 8, 14):
                raise self.fail(f"ModelProto field {number} has the wrong wire type {wire}")
        if graphs > 1:
            raise self.fail(f"{graphs} graphs in one model")
        return model

    def entry(self, span: tuple[int, int]) -> tuple[str, str]:
        key = text = ""
        for n, _, v in self.fields(*span):
            if n == 1:
                key = self.string(v, "metadata key")
            elif n == 2:
                text = self.string(v, "metadata value")
        return key, text

    def graph(self, span: tuple[int, int]) -> Graph:
        graph = Graph()
        for number, wire, value in self.fields(*span):
            if wire != 2 and number in (1, 5, 11, 12, 15):
                raise self.fail(f"GraphProto field {number} has the wrong wire type {wire}")
            if number == 1:
                self.count(NODE_COST)
                graph.nodes.append(self.node(value))
            elif number == 5:
                self.count(NODE_COST)
                tensor = self.tensor(value)
                if tensor.name in graph.initializers:
                    raise self.fail(f"two initializers are named {tensor.name!r}")
                graph.initializers[tensor.name] = tensor
            elif number == 11:
                graph.inputs.append(self.value_info(value))
            elif number == 12:
                graph.outputs.append(self.value_info(value))
            elif number == 15:
                graph.sparse_initializers += 1
        return graph

    def node(self, span: tuple[int, int]) -> Node:
        node = Node()
        for number, wire, value in self.fields(*span):
            if number == 1:
                node.inputs.append(self.string(value, "node input"))
            elif number == 2:
                node.outputs.append(self.string(value, "node output"))
            elif number == 3:
                node.name = self.string(value, "node name")
            elif number == 4:
                node.op_type = self.string(value, "op_type")
            elif number == 7:
                node.domain = self.string(value, "node domain")
            elif number == 5:
                if wire != 2:
                    raise self.fail("a node attribute has the wrong wire type")
                self.count(NODE_COST)
                attr = self.attribute(value)
                if attr.name in node.attributes:
                    raise self.fail(f"node {node.name!r} has two attributes named {attr.name!r}")
                node.attributes[attr.name] = attr
        return node

    def attribute(self, span: tuple[int, int]) -> Attribute:
        attr = Attribute()
        for number, wire, value in self.fields(*span):
            if number == 1:
                attr.name = self.string(value, "attribute name")
            elif number == 20:
                attr.type = self.integer(wire, value, "attribute type")
            elif number == 2:
                if wire != 5:
                    raise self.fail("attribute f should be a float")
                attr.f = float(np.frombuffer(self.data, "<f4", 1, value)[0])
            elif number == 3:
                attr.i = self.integer(wire, value, "attribute i")
            elif number == 4:
                if not isinstance(value, tuple):
                    raise self.fail("attribute s should be bytes")
                attr.s = self.data[value[0] : min(value[1], value[0] + 4096)]
            elif number == 5:
                if wire != 2:
                    raise self.fail("attribute t should be a tensor")
                attr.t = self.tensor(value)
            elif number == 7:
                self.float_list(wire, value, attr.floats, "attribute floats", 4096)
            elif number == 8:
                self.int_list(wire, value, attr.ints, "attribute ints", 4096)
            elif number in (6, 11, 22, 23, 14, 15, 10, 9):  # graphs, sparse tensors, types, tensors, strings
                attr.has_subgraph = True
        return attr

    def tensor(self, span: tuple[int, int]) -> Tensor:
        t = Tensor()
        for number, wire, value in self.fields(*span):
            if number == 1:
                self.int_list(wire, value, t.dims, "tensor dims", MAX_DIMS)
            elif number == 2:
                t.data_type = self.integer(wire, value, "tensor data_type")
            elif number == 8:
                t.name = self.string(value, "tensor name")
            elif number == 9:
                if wire != 2:
                    raise self.fail("raw_data should be bytes")
                self.count()
                t.raw.append(value)
            elif number in (4, 5, 7, 10, 11):  # float_data, int32_data, int64_data, double_data, uint64_data
                if wire == 2:
                    self.count()
                    t.packed.setdefault(number, []).append(value)
                else:
                    self.count()
                    elements = t.values.setdefault(number, [])
                    if len(elements) >= MAX_DECODED_ELEMENTS:
                        raise self.fail(f"tensor {t.name!r} stores more than {MAX_DECODED_ELEMENTS:,} unpacked values")
                    elements.append((wire, value))
            elif number == 6:
                self.count()
                t.values.setdefault(6, []).append(value)  # string_data: refused later (no string tensors)
            elif number == 13:
                t.external = True
            elif number == 14:
                t.external = t.external or self.integer(wire, value, "data_location") != 0
            elif number == 3:
                t.segmented = True
        return t

    def value_info(self, span: tuple[int, int]) -> ValueInfo:
        info = ValueInfo()
        for number, _, value in self.fields(*span):
            if number == 1:
                info.name = self.string(value, "input/output name")
            elif number == 2 and isinstance(value, tuple):
                for n, _, v in self.fields(*value):  # TypeProto
                    if n == 1 and isinstance(v, tuple):  # tensor_type
                        for n2, w2, v2 in self.fields(*v):
                            if n2 == 1:
                                info.elem_type = self.integer(w2, v2, "elem_type")
                            elif n2 == 2 and isinstance(v2, tuple):
                                info.dims = self.shape(v2)
                    elif n in (4, 5, 7, 8, 9):
                        info.elem_type = -n  # a sequence, map, ... : not a tensor
        return info

    def shape(self, span: tuple[int, int]) -> list[int | str | None]:
        dims: list[int | str | None] = []
        for number, _, value in self.fields(*span):
            if number != 1 or not isinstance(value, tuple):
                continue
            if len(dims) >= MAX_DIMS:
                raise self.fail(f"a shape has more than {MAX_DIMS} dimensions")
            self.count()
            dim: int | str | None = None
            for n, w, v in self.fields(*value):
                if n == 1:
                    dim = self.integer(w, v, "dim_value")
                elif n == 2:
                    dim = self.string(v, "dim_param")
            dims.append(dim)
        return dims


def read_model(path: str | Path) -> tuple[Model, bytes]:
    """Parse the file at ``path``: (the model's structure, the file's bytes the tensors point into)."""
    where = str(path)
    path = Path(path)
    size = path.stat().st_size  # FileNotFoundError / IsADirectoryError for the caller
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{where}: {size:,} bytes; an ONNX file holds at most {MAX_FILE_BYTES:,} (2 GiB)")
    with open(path, "rb") as f:
        data = f.read(size + 1)
    if len(data) != size:
        raise ModelFileError(f"{where}: the file changed size while it was read")
    reader = _Reader(data, where)
    return reader.model(), data
