"""Saving and loading models and checkpoints: one ``.npz`` of plain arrays plus a JSON header.

Layout of the zip archive (each member a ``.npy`` file):

- ``__header__``: the UTF-8 JSON header as uint8 — format name and version,
  layers, dtype, loss, optimizer (name, config, step count), training config and,
  for checkpoints, the training state (epoch, step, RNG state, running totals, history);
- ``net/<layer>.<name>``: each parameter, e.g. ``net/0.W``;
- ``optimizer/<slot>/<k>``: the optimizer's state arrays, e.g. ``optimizer/m/0``.

Loading never unpickles: it reads the zip itself, refuses object dtypes, checks
every array's size against the bytes actually stored *before* allocating, and
accepts exactly the members the header calls for.  Writes go to a temporary
file that is renamed over the target, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write
from .errors import LayerwiseError, ModelFileError
from .layers import layer_from_config
from .losses import get_loss
from .network import Sequential
from .optim import get_optimizer
from .validation import train_state_problem

if TYPE_CHECKING:
    from .model import Model

FORMAT = "layerwise.model"
VERSION = 1
HEADER = "__header__"


def save_model(model: Model, path: str | Path, train_state: dict[str, Any] | None = None) -> None:
    """Write ``model`` (and, for a checkpoint, ``train_state``) to ``path`` atomically."""
    opt_state = model.optimizer.state_dict()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "layers": [layer.config() for layer in model.net.layers],
        "dtype": model.net.dtype.name,
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
        _check_layer_configs(where, header["layers"], arrays)
        seed = header.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ModelFileError(f"{where}: bad seed {seed!r} in the header (expected null or an integer >= 0)")
        net = Sequential([layer_from_config(c, dtype=dtype) for c in header["layers"]], dtype=dtype)
        net.seed = header.get("seed")
        opt_header = header["optimizer"]
        optimizer = get_optimizer(opt_header["name"], **opt_header["config"])
        loss = get_loss(header["loss"])
    except ModelFileError:
        raise
    except (LayerwiseError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{where}: the header does not describe a valid model ({e})") from None
    expected = {f"net/{name}": p for name, p in net.named_parameters()}
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


def _check_layer_configs(where: str, layers: Any, arrays: dict[str, np.ndarray]) -> None:
    """Before building the network: no layer may need more parameters than the file stores.

    Otherwise a 1 kB header describing Dense(30000, 30000) would allocate gigabytes of
    zeros before the missing arrays are noticed.
    """
    if not isinstance(layers, list):
        raise ModelFileError(f"{where}: header 'layers' should be a list, got {type(layers).__name__}")
    stored = sum(a.size for a in arrays.values())
    for i, config in enumerate(layers):
        if not isinstance(config, dict):
            raise ModelFileError(f"{where}: header layers[{i}] should be an object, got {config!r}")
        if config.get("type") == "Dense":
            n_in, n_out = config.get("n_in"), config.get("n_out")
            if isinstance(n_in, int) and isinstance(n_out, int) and n_in * n_out > stored:
                raise ModelFileError(
                    f"{where}: header layers[{i}] is Dense({n_in}, {n_out}), but the file stores "
                    f"only {stored} numbers in all"
                )
        if config.get("type") == "Rescale":
            scale = config.get("scale")
            if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not np.isfinite(scale):
                raise ModelFileError(f"{where}: header layers[{i}] has a bad Rescale scale {scale!r}")


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
    if header.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: unknown format version {header.get('version')!r}; this layerwise reads version {VERSION}"
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
