"""Saving and loading models and checkpoints: one ``.npz`` of plain arrays plus a JSON header.

Layout of the zip archive (each member a ``.npy`` file):

- ``__header__``: the UTF-8 JSON header as uint8 — format name and version,
  the per-sample input shape, the layers (each ``Layer.config()``: its registered
  name, constructor arguments and input shape), dtype, loss, optimizer (name, config, step count), training config and,
  for checkpoints, the training state (epoch, step, RNG state, running totals, history);
- ``net/<layer>.<name>``: each parameter, e.g. ``net/0.W``;
- ``buffers/<layer>.<name>``: each non-trained buffer, e.g. ``buffers/3.running_mean``;
- ``optimizer/<slot>/<k>``: the optimizer's state arrays, e.g. ``optimizer/m/0``.

Loading never unpickles: it reads the zip itself, refuses object dtypes, checks
every array's size against the bytes actually stored *before* allocating, rebuilds
layers by name through the layer registry only after the sizes the header declares
are known to fit in what the file stores, and accepts exactly the members the
header calls for.  Version 1 files (MLPs of layerwise 0.1) still load.  Writes go to a temporary
file that is renamed over the target, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write
from .errors import LayerwiseError, ModelFileError
from .layers import layer_from_config
from .layers.base import check_shape
from .losses import get_loss
from .network import Sequential
from .optim import get_optimizer
from .validation import train_state_problem

if TYPE_CHECKING:
    from .model import Model

FORMAT = "layerwise.model"
VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER = "__header__"


def save_model(model: Model, path: str | Path, train_state: dict[str, Any] | None = None) -> None:
    """Write ``model`` (and, for a checkpoint, ``train_state``) to ``path`` atomically."""
    opt_state = model.optimizer.state_dict()
    header = {
        "format": FORMAT,
        "version": VERSION,
        **model.net.config(),
        "seed": model.seed,
        "loss": type(model.loss).__name__,
        "optimizer": {
            "name": opt_state["name"],
            "config": opt_state["config"],
            "iterations": opt_state["iterations"],
            "slots": {k: len(v) for k, v in opt_state["slots"].items()},
        },
        "train_config": model.train_config,
        "train_state": train_state,
    }
    arrays = {f"net/{name}": p for name, p in model.net.named_parameters()}
    arrays.update({f"buffers/{name}": b for name, b in model.net.named_buffers()})
    for slot, values in opt_state["slots"].items():
        for k, value in enumerate(values):
            arrays[f"optimizer/{slot}/{k}"] = value
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_model(path: str | Path) -> Model:
    """Read a model written by ``Model.save`` (or a checkpoint); ``model.train_state`` holds its state."""
    from .model import Model

    arrays, header = _read_archive(path)
    where = f"{path}"
    try:
        dtype = np.dtype(header["dtype"])
        if dtype not in (np.float32, np.float64):
            raise ModelFileError(f"{where}: unsupported dtype {header['dtype']!r}")
        seed = header.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ModelFileError(f"{where}: bad seed {seed!r} in the header (expected null or an integer >= 0)")
        net = _build_network(where, header, arrays, dtype)
        net.seed = header.get("seed")
        opt_header = header["optimizer"]
        optimizer = get_optimizer(opt_header["name"], **opt_header["config"])
        loss = get_loss(header["loss"])
    except ModelFileError:
        raise
    except (LayerwiseError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{where}: the header does not describe a valid model ({e})") from None
    expected = {f"net/{name}": p for name, p in net.named_parameters()}
    expected.update({f"buffers/{name}": b for name, b in net.named_buffers()})
    slots = opt_header.get("slots", {})
    if not isinstance(slots, dict) or any(not isinstance(v, int) or v < 0 for v in slots.values()):
        raise ModelFileError(f"{where}: bad optimizer slots in the header: {slots!r}")
    # Model trains on the network's one flat buffer, so each slot is one array of n_params.
    opt_keys = {f"optimizer/{s}/{k}": s for s, count in slots.items() for k in range(count)}
    missing = set(expected) - set(arrays) | set(opt_keys) - set(arrays)
    extra = set(arrays) - set(expected) - set(opt_keys)
    if missing or extra:
        raise ModelFileError(
            f"{where}: arrays do not match the header (missing {sorted(missing)}, unexpected {sorted(extra)})"
        )
    for name, target in expected.items():
        _check_array(where, name, arrays[name], target.shape, dtype)
        target[...] = arrays[name]
    opt_slots: dict[str, list[np.ndarray]] = {}
    for slot, count in slots.items():
        if count != 1:
            raise ModelFileError(f"{where}: optimizer slot {slot!r} should hold 1 array, the header says {count}")
        key = f"optimizer/{slot}/0"
        _check_array(where, key, arrays[key], (net.n_params,), dtype)
        opt_slots[slot] = [arrays[key]]
    try:
        optimizer.load_state_dict(
            {
                "name": opt_header["name"],
                "config": opt_header["config"],
                "iterations": opt_header.get("iterations", 0),
                "slots": opt_slots,
            }
        )
    except (LayerwiseError, TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: bad optimizer state ({e})") from None
    model = Model(net, loss=loss, optimizer=optimizer, seed=seed)
    train_config = header.get("train_config") or {}
    if not isinstance(train_config, dict):
        raise ModelFileError(f"{where}: header 'train_config' should be an object, got {train_config!r}")
    model.train_config = train_config
    train_state = header.get("train_state")
    if train_state is not None and (problem := train_state_problem(train_state)):
        raise ModelFileError(f"{where}: bad training state in the header: {problem}")
    model.train_state = train_state
    return model


def _build_network(where: str, header: dict[str, Any], arrays: dict[str, np.ndarray], dtype: np.dtype) -> Sequential:
    """The network the header describes, built only after its declared sizes are checked against the file.

    Otherwise a 1 kB header describing Dense(30000, 30000) would allocate gigabytes of
    zeros before the missing arrays are noticed.  Layers are made by name through the
    registry, unbuilt; shapes are inferred without data; then the network is built.
    """
    configs = header["layers"]
    if not isinstance(configs, list) or not configs:
        raise ModelFileError(f"{where}: header 'layers' should be a non-empty list, got {type(configs).__name__}")
    layers = []
    for i, config in enumerate(configs):
        if not isinstance(config, dict):
            raise ModelFileError(f"{where}: header layers[{i}] should be an object, got {config!r}")
        try:
            layers.append(layer_from_config(config, dtype=dtype, build=False))
        except (LayerwiseError, TypeError, ValueError, OverflowError) as e:
            raise ModelFileError(f"{where}: header layers[{i}] is not a valid layer ({e})") from None
    if header["version"] == 1:  # no input_shape: the first Dense layer's n_in gives it
        first = next((layer for layer in layers if layer.input_shape is not None), None)
        input_shape = first.input_shape if first is not None else None
    else:
        input_shape = check_shape("input_shape", header["input_shape"])
    stored = sum(a.size for a in arrays.values())
    declared, shape = 0, input_shape
    for i, (layer, config) in enumerate(zip(layers, configs, strict=True)):
        if shape is None:
            break
        given = config.get("input_shape", shape)
        if not isinstance(given, (list, tuple)) or tuple(given) != tuple(shape):
            raise ModelFileError(f"{where}: header layers[{i}] takes input {given!r}, but receives {list(shape)}")
        try:
            sizes = {**layer.param_shapes(shape), **layer.buffer_shapes(shape)}
            shape = layer.output_shape(shape)
        except LayerwiseError as e:
            raise ModelFileError(f"{where}: header layers[{i}]: {e}") from None
        declared += sum(math.prod(s) for s in sizes.values())
        if declared > stored:
            listed = ", ".join(f"{name} {tuple(s)}" for name, s in sizes.items())
            raise ModelFileError(
                f"{where}: header layers[{i}] is a {type(layer).__name__} with {listed}: {declared:,} numbers "
                f"up to there, but the file stores only {stored:,} in all"
            )
    for layer in layers:  # the shapes are checked: Sequential may now build
        layer.input_shape = None
    return Sequential(layers, input_shape=input_shape, dtype=dtype)


def _check_array(where: str, name: str, value: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if value.shape != tuple(shape) or value.dtype != dtype:
        raise ModelFileError(
            f"{where}: array {name!r} should be {dtype.name} of shape {tuple(shape)}, "
            f"got {value.dtype.name} of shape {value.shape}"
        )
    if not np.isfinite(value).all():
        raise ModelFileError(f"{where}: array {name!r} holds NaN or inf")


def _read_archive(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of a .npz by member name (without ``.npy``), and the parsed header."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    arrays: dict[str, np.ndarray] = {}
    archive_size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ModelFileError(f"{path}: unexpected member {info.filename!r}")
                _check_member_size(path, info, archive_size)
                with zf.open(info) as f:
                    arrays[info.filename[:-4]] = _read_npy(f, info.file_size, f"{path}:{info.filename}")
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise ModelFileError(f"{path}: not a readable layerwise model file (truncated or damaged: {e})") from None
    if HEADER not in arrays or arrays[HEADER].dtype != np.uint8 or arrays[HEADER].ndim != 1:
        raise ModelFileError(f"{path}: no layerwise header; was it written by Model.save?")
    try:
        header = json.loads(arrays.pop(HEADER).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: the header is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ModelFileError(f"{path}: not a layerwise model file (format {found!r}, expected {FORMAT!r})")
    if header.get("version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: unknown format version {header.get('version')!r}; this layerwise reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return arrays, header


def _check_member_size(path: Path, info: zipfile.ZipInfo, archive_size: int) -> None:
    """Refuse members whose sizes in the zip directory cannot be true, before reading a byte.

    Reading trusts those sizes (a read of n bytes may allocate n bytes first), so a
    1 kB file claiming a 3 GB member must fail here, not in a huge allocation.
    """
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"{path}: member {info.filename!r} uses unsupported compression {info.compress_type}")
    stored_ok = info.compress_type != zipfile.ZIP_STORED or info.file_size == info.compress_size
    # Deflate expands at most ~1032:1; a larger ratio is a lie (or a zip bomb).
    deflate_ok = info.file_size <= 1100 * info.compress_size + 1024
    if info.compress_size > archive_size or not stored_ok or not deflate_ok:
        raise ModelFileError(
            f"{path}: member {info.filename!r} claims {info.file_size} bytes "
            f"({info.compress_size} stored), more than the {archive_size}-byte file can hold"
        )


def _read_npy(f: io.BufferedIOBase, stored_size: int, where: str) -> np.ndarray:
    """One .npy member: plain numeric dtypes only, size checked against the stored bytes first."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ModelFileError(f"{where}: unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: refusing array of dtype {dtype} (only numeric arrays are allowed)")
    if any(dim < 0 for dim in shape):
        raise ModelFileError(f"{where}: negative dimension in shape {shape}")
    count = 1
    for dim in shape:
        count *= dim
    nbytes = count * dtype.itemsize
    header_bytes = f.tell()
    if header_bytes + nbytes != stored_size:
        raise ModelFileError(
            f"{where}: header claims {shape} {dtype} ({nbytes} bytes) but {stored_size - header_bytes} are stored"
        )
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise ModelFileError(f"{where}: truncated ({len(data)} of {nbytes} bytes)")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=True)


def load(path: str | Path) -> Model:
    """``layerwise.load(path)``: the Model saved at ``path``."""
    return load_model(path)
