"""safetensors files, read and written with NumPy alone: no pickle, no torch, no ``safetensors`` package.

The format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
``{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
"__metadata__": {"key": "value"}}``, then the tensors' raw little-endian bytes; the
offsets count from the end of the header and must tile the data exactly (no gap, no
overlap, nothing after).  Reading checks all of that, for every tensor, before a
single array is made, and then reads only the tensors it needs, one at a time.

``save_safetensors(net, path)`` writes the parameters and buffers under their
layerwise names (``0.W``, ``3.running_mean``), or with ``torch_names=True`` under the
names of the module ``to_torch(net)`` builds (``0.weight`` = Wᵀ), which
``torch_module.load_state_dict(safetensors.torch.load_file(path))`` accepts.
``load_safetensors(net, path)`` reads either kind, and any ``torch.nn.Sequential``
``state_dict`` whose layers with weights come in the same order as the network's.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import ConfigError, ModelFileError
from ..layers import BatchNorm, Conv2D, Dense
from ..network import Sequential

DTYPES: dict[str, np.dtype | None] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "BF16": None,  # sizes are known (below), but NumPy has no such dtype: refused when loaded
    "F8_E4M3": None,
    "F8_E5M2": None,
}
ITEMSIZE = {name: (dt.itemsize if dt is not None else (2 if name == "BF16" else 1)) for name, dt in DTYPES.items()}
NAMES = {dt: name for name, dt in DTYPES.items() if dt is not None}
# A header is ~100 bytes per tensor.  Python's JSON objects take up to ~25 times the
# bytes they come from, so both the size and the number of containers/items are capped
# to keep a hostile header's parse well under 100 MB.
MAX_HEADER_BYTES = 4 << 20
MAX_CONTAINERS = 100_000
MAX_ITEMS = 400_000
MAX_DIMS = 16
TORCH_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


# -- the file format -------------------------------------------------------------------------
def write_safetensors(tensors: dict[str, np.ndarray], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write named arrays (numeric dtypes) to ``path`` atomically, in the order given."""
    header: dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ConfigError(f"metadata: expected a dict of str to str, got {metadata!r}")
        header["__metadata__"] = dict(metadata)
    arrays = []
    offset = 0
    for name, value in tensors.items():
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if not isinstance(name, str) or name == "__metadata__" or dtype not in NAMES:
            raise ConfigError(f"tensors[{name!r}]: expected a str name and a numeric array, got {array.dtype}")
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[name] = {"dtype": NAMES[dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        arrays.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned, as the reference writer does
    with atomic_write(path) as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for data in arrays:
            f.write(data)


class SafetensorsFile:
    """A checked header: ``entries`` name -> (dtype name, shape, begin, end), ``metadata``; ``read(name)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = where = str(path)
        size = os.stat(self.path).st_size
        with open(self.path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{where}: not a safetensors file ({size} bytes; the header length needs 8)")
            n = int.from_bytes(prefix, "little")
            if n > min(size - 8, MAX_HEADER_BYTES):
                limit = (
                    f"the file holds {size - 8:,} after the length"
                    if n > size - 8
                    else f"at most {MAX_HEADER_BYTES:,} are accepted"
                )
                raise ModelFileError(
                    f"{where}: not a safetensors file, or damaged: the header claims {n:,} bytes, but {limit}"
                )
            raw = f.read(n)
        if len(raw) != n:
            raise ModelFileError(f"{where}: the file ended inside the header")
        self.data_start, self.data_size = 8 + n, size - 8 - n
        self.entries, self.metadata = self._parse(raw)

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {message}")

    def _parse(self, raw: bytes) -> tuple[dict[str, tuple[str, tuple[int, ...], int, int]], dict[str, str]]:
        if not raw.lstrip(b" ").startswith(b"{"):
            raise self.fail("the header is not a JSON object")
        if raw.count(b"{") + raw.count(b"[") > MAX_CONTAINERS or raw.count(b",") + raw.count(b":") > MAX_ITEMS:
            raise self.fail(f"the header holds too many items (at most {MAX_CONTAINERS:,} objects and lists)")

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in items]
            if len(set(keys)) != len(keys):
                raise self.fail(f"the header repeats a key ({sorted(k for k in keys if keys.count(k) > 1)[0]!r})")
            return dict(items)

        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            if isinstance(e, ModelFileError):
                raise
            raise self.fail(f"the header is not valid UTF-8 JSON ({str(e)[:200]})") from None
        if not isinstance(header, dict):
            raise self.fail("the header is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise self.fail("__metadata__ should map strings to strings")
        entries = {}
        for name, entry in header.items():
            entries[name] = self._entry(name, entry)
        spans = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items())
        position = 0
        for begin, end, name in spans:
            if begin != position:
                what = "overlaps the one before" if begin < position else f"leaves a gap of {begin - position:,} bytes"
                raise self.fail(f"tensor {name!r} at bytes {begin:,}-{end:,} {what}")
            position = end
        if position != self.data_size:
            raise self.fail(f"the tensors cover {position:,} bytes of data, the file holds {self.data_size:,}")
        return entries, metadata

    def _entry(self, name: str, entry: Any) -> tuple[str, tuple[int, ...], int, int]:
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise self.fail(f"tensor {name!r}: expected {{dtype, shape, data_offsets}}, got {str(entry)[:200]}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise self.fail(f"tensor {name!r}: unknown dtype {str(dtype)[:40]!r}")
        integer = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(integer(d) for d in shape):
            raise self.fail(f"tensor {name!r}: shape should be at most {MAX_DIMS} integers >= 0, got {str(shape)[:80]}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(integer(v) for v in offsets):
            raise self.fail(f"tensor {name!r}: data_offsets should be two integers >= 0, got {str(offsets)[:80]}")
        begin, end = offsets
        if not begin <= end <= self.data_size:
            raise self.fail(f"tensor {name!r}: data_offsets {offsets} lie outside the {self.data_size:,} data bytes")
        expected = math.prod(shape) * ITEMSIZE[dtype]
        if end - begin != expected:
            raise self.fail(
                f"tensor {name!r}: {dtype} {tuple(shape)} needs {expected:,} bytes, data_offsets give {end - begin:,}"
            )
        return dtype, tuple(shape), begin, end

    def read(self, name: str) -> np.ndarray:
        """One tensor as a new array (read from disk now)."""
        dtype, shape, begin, end = self.entries[name]
        if DTYPES[dtype] is None:
            raise self.fail(f"tensor {name!r} is {dtype}, which NumPy cannot hold; convert it to F32 first")
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            data = f.read(end - begin)
        if len(data) != end - begin:
            raise self.fail(f"tensor {name!r}: the file is shorter than its header says (changed while read?)")
        return np.frombuffer(data, DTYPES[dtype]).reshape(shape).copy()


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file, and its ``__metadata__``."""
    file = SafetensorsFile(path)
    return {name: file.read(name) for name in file.entries}, file.metadata


# -- networks ----------------------------------------------------------------------------------
def _net(net_or_model: Any) -> Sequential:
    net = getattr(net_or_model, "net", net_or_model)
    if not isinstance(net, Sequential):
        raise ConfigError(f"net: expected a layerwise Sequential or Model, got {type(net_or_model).__name__}")
    return net


def torch_state_dict(net_or_model: Any) -> dict[str, np.ndarray]:
    """The parameters and buffers under the names of ``to_torch(net)``'s state_dict (Linear weights transposed)."""
    net = _net(net_or_model)
    state: dict[str, np.ndarray] = {}
    for i, (layer, shape) in enumerate(zip(net.layers, net.shapes, strict=True)):
        kind = type(layer)
        if kind is Dense:
            state |= {f"{i}.weight": layer.params["W"].T, f"{i}.bias": layer.params["b"]}
        elif kind is Conv2D:
            top, bottom, left, right = layer.pads(shape)
            name = f"{i}" if (top, left) == (bottom, right) else f"{i}.1"  # after a ZeroPad2d
            state |= {f"{name}.weight": layer.params["W"], f"{name}.bias": layer.params["b"]}
        elif kind is BatchNorm:
            state |= {f"{i}.weight": layer.params["gamma"], f"{i}.bias": layer.params["beta"]}
            state |= {
                f"{i}.running_mean": layer.buffers["running_mean"],
                f"{i}.running_var": layer.buffers["running_var"],
            }
            state[f"{i}.num_batches_tracked"] = np.array(0, np.int64)  # layerwise does not count them
        elif layer.params or layer.buffers:
            raise ConfigError(f"layers[{i}] {layer!r}: no PyTorch names for a {kind.__name__}'s weights")
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


def save_safetensors(
    net_or_model: Any, path: str | Path, torch_names: bool = False, metadata: dict[str, str] | None = None
) -> None:
    """Write the network's parameters and buffers to a safetensors file (atomically).

    torch_names: name them as ``to_torch(net).state_dict()`` does, so PyTorch loads the file.
    """
    net = _net(net_or_model)
    tensors = torch_state_dict(net) if torch_names else dict(net.named_parameters() + net.named_buffers())
    meta = {"format": "pt" if torch_names else "layerwise", "layers": json.dumps(net.config()["layers"])}
    write_safetensors(tensors, path, {**meta, **(metadata or {})})


def load_safetensors(net_or_model: Any, path: str | Path) -> None:
    """Load parameters and buffers from a safetensors file into the network, in place.

    The file holds either the network's own names (``save_safetensors``) or a PyTorch
    ``state_dict`` (``0.weight``, ``0.bias``, ``1.running_mean``...): its modules with
    weights are matched in order to the layers with weights (Linear to Dense with the
    transpose, Conv2d to Conv2D, BatchNorm to BatchNorm; ``num_batches_tracked`` is
    ignored).  Every shape is checked before anything is copied.

    Raises:
        ModelFileError: the file is damaged or does not match the network (names, shapes).
    """
    net = _net(net_or_model)
    file = SafetensorsFile(path)
    mine = dict(net.named_parameters() + net.named_buffers())
    names = set(file.entries)
    plan = _plan_own(mine, file) if names == set(mine) else _plan_torch(net, file)
    for target, (name, transpose) in plan.items():  # shapes checked: now read
        value = file.read(name)
        if value.dtype.kind != "f":
            raise file.fail(f"tensor {name!r} is {value.dtype}, expected floats")
        if not np.isfinite(value).all():
            raise file.fail(f"tensor {name!r} holds NaN or inf")
        mine[target][...] = value.T if transpose else value


def _plan_own(mine: dict[str, np.ndarray], file: SafetensorsFile) -> dict[str, tuple[str, bool]]:
    for name, target in mine.items():
        shape = file.entries[name][1]
        if shape != target.shape:
            raise file.fail(f"tensor {name!r} has shape {shape}, the network's is {target.shape}")
    return {name: (name, False) for name in mine}


def _natural(prefix: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"\.", prefix)]


def _plan_torch(net: Sequential, file: SafetensorsFile) -> dict[str, tuple[str, bool]]:
    groups: dict[str, dict[str, str]] = {}
    for name in file.entries:
        prefix, _, suffix = name.rpartition(".")
        if suffix not in TORCH_SUFFIXES or not prefix:
            own = ", ".join(n for n, _ in (net.named_parameters() + net.named_buffers())[:6])
            raise file.fail(
                f"tensor {name!r} is neither one of the network's ({own}...) nor a PyTorch name (prefix.weight...)"
            )
        groups.setdefault(prefix, {})[suffix] = name
    ordered = [
        (p, g)
        for p, g in sorted(groups.items(), key=lambda item: _natural(item[0]))
        if set(g) != {"num_batches_tracked"}
    ]
    layers = [(i, layer) for i, layer in enumerate(net.layers) if layer.params or layer.buffers]
    if len(ordered) != len(layers):
        raise file.fail(
            f"the file holds weights of {len(ordered)} modules ({', '.join(p for p, _ in ordered[:8])}), "
            f"the network has {len(layers)} layers with weights"
        )
    plan: dict[str, tuple[str, bool]] = {}
    for (prefix, group), (i, layer) in zip(ordered, layers, strict=True):
        kind = type(layer)
        wanted = {Dense: {"weight": "W", "bias": "b"}, Conv2D: {"weight": "W", "bias": "b"},
                  BatchNorm: {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
                              "running_var": "running_var"}}.get(kind)  # fmt: skip
        if wanted is None:
            raise file.fail(f"module {prefix!r}: layers[{i}] {layer!r} has no PyTorch names")
        if set(group) - {"num_batches_tracked"} != set(wanted):
            raise file.fail(f"module {prefix!r} holds {sorted(group)}; layers[{i}] {layer!r} needs {sorted(wanted)}")
        for suffix, key in wanted.items():
            name = group[suffix]
            target = layer.params.get(key, layer.buffers.get(key))
            transpose = kind is Dense and suffix == "weight"
            shape = file.entries[name][1]
            if (shape[::-1] if transpose else shape) != target.shape:
                raise file.fail(
                    f"tensor {name!r} has shape {shape}, layers[{i}] {layer!r} needs "
                    f"{target.shape[::-1] if transpose else target.shape}" + (" (out, in)" if transpose else "")
                )
            plan[f"{i}.{key}"] = (name, transpose)
    return plan


__all__ = [
    "SafetensorsFile",
    "load_safetensors",
    "read_safetensors",
    "save_safetensors",
    "torch_state_dict",
    "write_safetensors",
]
