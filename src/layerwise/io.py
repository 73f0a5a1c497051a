"""Saving and loading models and checkpoints: one ``.npz`` of plain arrays plus a JSON header.

Layout of the zip archive (each member a ``.npy`` file):

- ``__header__``: the UTF-8 JSON header as uint8 — format name and version,
  the per-sample input shape, the layers (each ``Layer.config()``: its registered
  name, constructor arguments and input shape), dtype, loss, optimizer (name, config, step count), training config and,
  for checkpoints, the training state (epoch, step, RNG state, running totals, history);
- ``net/<layer>.<name>``: each parameter, e.g. ``net/0.W``;
- ``buffers/<layer>.<name>``: each non-trained buffer, e.g. ``buffers/3.running_mean``;
- ``optimizer/<slot>/<k>``: the optimizer's state arrays, e.g. ``optimizer/m/0``.

Loading never unpickles and bounds its memory by what it has verified (see
``layerwise.npz`` for the order of the checks): the zip's member count and directory,
then the header (numbers must fit a float or a 128-bit integer), then the layers are
rebuilt by name through the layer registry, unbuilt, and every array they and the
optimizer need is compared -- name, dtype, shape, size, and the total against the
file's size -- with the members, before a byte of array data is read or the network
allocated.  Members the header does not call for are refused unread.  Version 1
files (MLPs of layerwise 0.1) still load.  Writes go through ``atomic_write``, so a
crash or a full disk never leaves a half-written file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write
from .errors import LayerwiseError, ModelFileError
from .layers import Layer, layer_from_config
from .layers.base import Shape, check_shape
from .losses import get_loss
from .network import Sequential
from .npz import HEADER, MAX_MEMBERS
from .npz import Archive as _Archive
from .optim import get_optimizer
from .validation import train_state_problem

if TYPE_CHECKING:
    from .model import Model

FORMAT = "layerwise.model"
VERSION = 2
READABLE_VERSIONS = (1, 2)


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
    """Read a model written by ``Model.save`` (or a checkpoint); ``model.train_state`` holds its state.

    Raises:
        ModelFileError: the file is missing, damaged, hostile or not a layerwise model;
            the message names the file and what is wrong.
    """
    from .model import Model

    where = str(path)
    with _Archive(Path(path)) as archive:  # zip directory checked, header read and parsed
        header = archive.header
        try:
            dtype = np.dtype(header["dtype"])
            if dtype not in (np.float32, np.float64):
                raise ModelFileError(f"{where}: unsupported dtype {header['dtype']!r}")
            seed = header.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
                raise ModelFileError(f"{where}: bad seed {seed!r} in the header (expected null or an integer >= 0)")
            layers, input_shape, expected = _plan_network(where, header, dtype, archive.stored_numbers(dtype))
            opt_header = header["optimizer"]
            optimizer = get_optimizer(opt_header["name"], **opt_header["config"])
            loss = get_loss(header["loss"])
        except ModelFileError:
            raise
        except (LayerwiseError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise ModelFileError(f"{where}: the header does not describe a valid model ({e})") from None
        slots = opt_header.get("slots", {})
        if not isinstance(slots, dict) or any(
            not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 16
            for k, v in slots.items()
        ):
            raise ModelFileError(f"{where}: bad optimizer slots in the header: {slots!r}")
        n_params = sum(math.prod(shape) for name, shape in expected.items() if name.startswith("net/"))
        # Model trains on the network's one flat buffer, so each slot is one array of n_params.
        expected |= {f"optimizer/{s}/{k}": (n_params,) for s, count in slots.items() for k in range(count)}
        archive.check_members(expected, dtype)  # names, shapes and sizes, before a byte of data is read
        for slot, count in slots.items():
            if count != 1:
                raise ModelFileError(f"{where}: optimizer slot {slot!r} should hold 1 array, the header says {count}")
        try:
            net = Sequential(layers, input_shape=input_shape, dtype=dtype)
        except LayerwiseError as e:
            raise ModelFileError(f"{where}: the header does not describe a valid network ({e})") from None
        targets = {f"net/{n}": p for n, p in net.named_parameters()}
        targets |= {f"buffers/{n}": b for n, b in net.named_buffers()}
        if set(targets) != {n for n in expected if not n.startswith("optimizer/")}:
            raise ModelFileError(f"{where}: the layers' parameters do not match the shapes they declare")
        for key, target in targets.items():  # one member at a time: memory is the network plus one array
            target[...] = archive.array(key, target.shape, dtype)
        opt_slots = {slot: [archive.array(f"optimizer/{slot}/0", (net.n_params,), dtype)] for slot in slots}
    net.seed = seed
    try:
        optimizer.load_state_dict(
            {
                "name": opt_header["name"],
                "config": opt_header["config"],
                "iterations": opt_header.get("iterations", 0),
                "slots": opt_slots,
            }
        )
    except (LayerwiseError, TypeError, ValueError, OverflowError) as e:
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


def _plan_network(
    where: str, header: dict[str, Any], dtype: np.dtype, stored: int
) -> tuple[list[Layer], Shape, dict[str, Shape]]:
    """The header's layers (unbuilt), the input shape, and every array they will need by member name.

    Nothing is allocated: shapes are inferred without data, and the numbers the layers
    declare, summed over all of them, are checked against the ``stored`` numbers the
    file can hold.  Otherwise a 1 kB header describing Dense(30000, 30000) would
    allocate gigabytes of zeros before the missing arrays are noticed.
    """
    configs = header["layers"]
    if not isinstance(configs, list) or not configs:
        raise ModelFileError(f"{where}: header 'layers' should be a non-empty list, got {type(configs).__name__}")
    if len(configs) > MAX_MEMBERS:
        raise ModelFileError(f"{where}: header lists {len(configs):,} layers; at most {MAX_MEMBERS:,} are allowed")
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
        if first is None:
            raise ModelFileError(f"{where}: no layer of this version-1 file says how many inputs the model takes")
        input_shape = first.input_shape
    else:
        input_shape = check_shape("input_shape", header["input_shape"])
    expected: dict[str, Shape] = {}
    declared, shape = 0, input_shape
    for i, (layer, config) in enumerate(zip(layers, configs, strict=True)):
        # What the layer says it takes: its input_shape, or a version-1 Dense layer's n_in.
        given = config.get("input_shape", layer.input_shape if layer.input_shape is not None else shape)
        if not isinstance(given, (list, tuple)) or tuple(given) != tuple(shape):
            shown = list(given) if isinstance(given, (list, tuple)) else given
            raise ModelFileError(f"{where}: header layers[{i}] takes input {shown!r}, but receives {list(shape)}")
        try:
            params, buffers = layer.param_shapes(shape), layer.buffer_shapes(shape)
            shape = layer.output_shape(shape)
        except LayerwiseError as e:
            raise ModelFileError(f"{where}: header layers[{i}]: {e}") from None
        expected |= {f"net/{i}.{name}": tuple(s) for name, s in params.items()}
        expected |= {f"buffers/{i}.{name}": tuple(s) for name, s in buffers.items()}
        declared += sum(math.prod(s) for s in (*params.values(), *buffers.values()))
        if declared > stored:
            listed = ", ".join(f"{name} {tuple(s)}" for name, s in {**params, **buffers}.items())
            raise ModelFileError(
                f"{where}: header layers[{i}] is a {type(layer).__name__} with {listed}: {declared:,} numbers "
                f"up to there, but the file stores only {stored:,} in all"
            )
    for layer in layers:  # the shapes are checked: Sequential may now build
        layer.input_shape = None
    return layers, input_shape, expected


def load(path: str | Path) -> Model:
    """``layerwise.load(path)``: the Model saved at ``path``."""
    return load_model(path)
