"""ONNX tensors as NumPy arrays, with every declared size checked against the bytes stored first.

A ``Tensor`` from ``onnx_proto`` says where its numbers are in the file; ``tensor_array``
turns it into an array only once its dims, data type and storage agree, so a tensor
that declares a terabyte and stores 16 bytes is refused without allocating anything.
External data (a path to another file) and segmented tensors are refused.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelFileError
from .onnx_proto import MAX_DECODED_ELEMENTS, MAX_DIMS, Tensor, _Reader

# TensorProto.DataType -> NumPy dtype (little-endian), for the types a network's constants use.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    4: np.dtype("<u2"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype("?"),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
    12: np.dtype("<u4"),
    13: np.dtype("<u8"),
}
TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
              9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 16: "bfloat16"}  # fmt: skip


def tensor_array(t: Tensor, data: bytes, where: str, what: str) -> np.ndarray:
    """The tensor as a read-only NumPy array (a view of ``data`` when stored as raw bytes).

    The declared size is compared with the bytes the tensor stores before any array is made.
    """
    shown = f"{where}: {what} {t.name!r}"
    if t.external:
        raise ModelFileError(
            f"{shown} keeps its data in an external file; such references are refused (a file could point "
            "anywhere on disk): save the weights inside the .onnx file, e.g. torch.onnx.export(..., "
            "external_data=False) or onnx.save(model, path, save_as_external_data=False)"
        )
    if t.segmented:
        raise ModelFileError(f"{shown} is a segment of a tensor; segmented tensors are not supported")
    if t.data_type not in DTYPES:
        name = TYPE_NAMES.get(t.data_type, f"data type {t.data_type}")
        raise ModelFileError(f"{shown} has type {name}; expected a float or integer tensor")
    if len(t.dims) > MAX_DIMS or any(d < 0 for d in t.dims):
        raise ModelFileError(f"{shown} has invalid dims {t.dims}")
    dtype = DTYPES[t.data_type]
    n = math.prod(t.dims)
    sources = [k for k in (t.raw and "raw", t.packed and "packed", t.values and "values") if k]
    if len(sources) > 1 or len(t.packed) + len(t.values) > 1:
        raise ModelFileError(f"{shown} stores its numbers in more than one field")
    if t.raw:
        stored = sum(e - s for s, e in t.raw)
        if stored != n * dtype.itemsize:
            raise ModelFileError(
                f"{shown} declares dims {t.dims} ({n:,} x {dtype.itemsize} bytes) but stores {stored:,} bytes"
            )
        if len(t.raw) == 1:
            return np.frombuffer(data, dtype, n, t.raw[0][0]).reshape(t.dims)
        return np.frombuffer(b"".join(data[s:e] for s, e in t.raw), dtype).reshape(t.dims)
    fixed = {4: (np.dtype("<f4"), 1), 10: (np.dtype("<f8"), 11)}  # field -> (wire layout, the type it serves)
    if t.packed:
        (number, spans), = t.packed.items()  # fmt: skip
        if number in fixed:
            layout, _ = fixed[number]
            stored = sum(e - s for s, e in spans)
            if stored != n * layout.itemsize:
                raise ModelFileError(f"{shown} declares dims {t.dims} ({n:,} values) but stores {stored:,} bytes")
            raw = data[spans[0][0] : spans[0][1]] if len(spans) == 1 else b"".join(data[s:e] for s, e in spans)
            return np.frombuffer(raw, layout).astype(dtype).reshape(t.dims)
        if n > MAX_DECODED_ELEMENTS:
            raise ModelFileError(f"{shown}: {n:,} values stored as varints; at most {MAX_DECODED_ELEMENTS:,}")
        reader = _Reader(data, where)
        values: list[int] = []
        for span in spans:
            reader.int_list(2, span, values, f"{what} {t.name!r}", MAX_DECODED_ELEMENTS)
        return _int_values(values, n, dtype, t, shown)
    if t.values:
        (number, elements), = t.values.items()  # fmt: skip
        if number == 6:
            raise ModelFileError(f"{shown} holds strings; expected numbers")
        if len(elements) != n:
            raise ModelFileError(f"{shown} declares dims {t.dims} ({n:,} values) but stores {len(elements):,}")
        if number in fixed:
            layout, _ = fixed[number]
            if any(w != (5 if layout.itemsize == 4 else 1) for w, _ in elements):
                raise ModelFileError(f"{shown}: values of the wrong wire type")
            raw = b"".join(data[v : v + layout.itemsize] for _, v in elements)
            return np.frombuffer(raw, layout).astype(dtype).reshape(t.dims)
        if any(w != 0 for w, _ in elements):
            raise ModelFileError(f"{shown}: values of the wrong wire type")
        return _int_values([v - (1 << 64) if v >= 1 << 63 else v for _, v in elements], n, dtype, t, shown)
    if n:
        raise ModelFileError(f"{shown} declares dims {t.dims} ({n:,} values) but stores none")
    return np.zeros(t.dims, dtype)


def _int_values(values: list[int], n: int, dtype: np.dtype, t: Tensor, shown: str) -> np.ndarray:
    if len(values) != n:
        raise ModelFileError(f"{shown} declares dims {t.dims} ({n:,} values) but stores {len(values):,}")
    if dtype.kind == "f":  # float16 travels as int32 bit patterns
        return np.array(values, np.uint16).view(dtype).reshape(t.dims)
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is not None and any(not info.min <= v <= info.max for v in values):
        raise ModelFileError(f"{shown} holds values out of range for {dtype.name}")
    return np.array(values, dtype).reshape(t.dims)
