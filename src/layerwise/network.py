"""Networks: a list of layers run forward in order and backward in reverse.

``Sequential(layers, input_shape=(1, 28, 28))`` infers every layer's input shape
at construction (``layer.output_shape``), builds the layers, and moves all
parameters into one contiguous buffer (``net.flat_params``) and all gradients
into another (``net.flat_grads``); each layer's ``W`` and ``b`` are views into
them.  An optimizer then updates every parameter with a handful of whole-buffer
operations per step instead of a few per array.  The network never asks what
kind of layer it holds: it only uses the layer contract of ``layers/base.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .arch import Architecture, parse_architecture
from .errors import ConfigError, DTypeError, InputError, ShapeError, printable
from .guards import check_linear_stacks
from .layers import Dense, Layer, ReLU, Rescale, float_dtype, get_activation
from .layers.base import Shape, check_shape


class Sequential:
    """A stack of layers.  x: (batch, *input_shape) -> forward -> (batch, *output_shape).

    input_shape: the shape of one sample, e.g. ``(784,)`` or ``(1, 28, 28)`` (NCHW
    images).  It may be left out when the first layer with weights is already
    built (``Dense(784, 140)``).  seed: seeds the initial weights of layers built here.
    """

    def __init__(
        self,
        layers: Iterable[Layer],
        input_shape: Sequence[int] | int | None = None,
        dtype: Any = None,
        seed: int | None = None,
    ) -> None:
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise ConfigError("layers: expected at least one layer, got none")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"layers[{i}]: expected a Layer, got {type(layer).__name__}")
        self.dtype = self._resolve_dtype(dtype)
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.input_shape = self._resolve_input_shape(input_shape)
        self.shapes: list[Shape | None] = []  # the input shape of each layer
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            if layer.dtype is None:
                layer.dtype = self.dtype
            self.shapes.append(shape)
            if shape is None:  # a shape-agnostic stack of weightless layers
                continue
            if layer.input_shape is not None and tuple(layer.input_shape) != shape:
                raise ShapeError(
                    f"layers[{i}] {layer!r}: takes input of shape {tuple(layer.input_shape)}, "
                    f"but the layer before gives {shape}"
                )
            try:
                if not layer.built:
                    layer.build(shape, rng)
                shape = layer.output_shape(shape)
            except (ShapeError, ConfigError) as e:
                raise type(e)(f"layers[{i}]: {e}") from None
        self.output_shape: Shape | None = shape
        check_linear_stacks(self.layers)
        self._pack()
        self._plan_in_place()
        self._plan_steps()
        # Layers before the first one with parameters need no backward pass in training.
        with_params = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = with_params[0] if with_params else len(self.layers)
        self.set_rng(np.random.default_rng(rng.integers(2**63)))

    def _resolve_dtype(self, dtype: Any) -> np.dtype:
        dtypes = {p.dtype for layer in self.layers for p in layer.params.values()}
        # A dtype given to a layer with weights counts even before it is built: Conv2D(..., dtype=np.float64)
        # in a float32 network would otherwise be cast into the float32 buffer while its buffers stay float64.
        dtypes |= {layer.dtype for layer in self.layers if layer.dtype is not None and _has_weights(layer)}
        if len(dtypes) > 1:
            raise ConfigError(f"dtype: layers mix parameter dtypes {sorted(map(str, dtypes))}")
        if dtype is None:
            return dtypes.pop() if dtypes else np.dtype(np.float32)
        dtype = float_dtype(dtype)
        if dtypes - {dtype}:
            raise ConfigError(f"dtype: layers hold {sorted(map(str, dtypes))}, but dtype={dtype}")
        return dtype

    def _resolve_input_shape(self, input_shape: Any) -> Shape | None:
        if input_shape is not None:
            return check_shape("input_shape", input_shape)
        for i, layer in enumerate(self.layers):
            if layer.input_shape is not None:
                shape = tuple(layer.input_shape)
                # Layers before it (Rescale, activations) must keep the shape.
                if all(before.output_shape(shape) == shape for before in self.layers[:i]):
                    return shape
                break
            if _has_weights(layer):
                break
        unbuilt = [layer for layer in self.layers if _has_weights(layer) and not layer.built]
        if unbuilt:
            raise ConfigError(
                f"input_shape: needed to build {unbuilt[0]!r}; pass e.g. Sequential(layers, input_shape=(1, 28, 28))"
            )
        return None

    def _pack(self) -> None:
        """Move every parameter and gradient into two contiguous buffers and keep views."""
        total = sum(p.size for layer in self.layers for p in layer.params.values())
        self.flat_params = np.empty(total, self.dtype)
        self.flat_grads = np.zeros(total, self.dtype)
        offset = 0
        for layer in self.layers:
            for name, value in layer.params.items():
                end = offset + value.size
                view = self.flat_params[offset:end].reshape(value.shape)
                view[...] = value
                layer.params[name] = view
                layer.grads[name] = self.flat_grads[offset:end].reshape(value.shape)
                offset = end

    def _plan_in_place(self) -> None:
        """Let a layer overwrite its x and dy only where the network owns both and nobody reads them later.

        The caller's x and dy are never ours; a layer's new output is, unless the
        layer keeps it for its own backward pass (an activation keeps y).
        """
        n = len(self.layers)
        owned_x, owned = [False] * n, False
        for i, layer in enumerate(self.layers):
            owned_x[i] = owned
            owned = (layer.returns_new_arrays or owned) and not layer.keeps_output
        owned_dy, owned = [False] * n, False
        for i in range(n - 1, -1, -1):
            owned_dy[i] = owned
            owned = self.layers[i].returns_new_arrays or owned
        for i, layer in enumerate(self.layers):
            layer.inplace = layer.can_work_in_place and owned_x[i] and owned_dy[i]
        # The array forward returns is the caller's to edit; if a layer keeps it for its
        # backward pass (an activation's y, maybe seen through a Flatten), return a copy.
        self._copy_output = False
        for layer in reversed(self.layers):
            if layer.keeps_output or layer.returns_new_arrays:
                self._copy_output = layer.keeps_output
                break

    def _plan_steps(self) -> None:
        """What forward and backward run: each layer, or a layer and the next one fused (``fuse_previous``).

        ``_steps`` holds (index of the step's first layer, the step).  Only layers without
        parameters are fused, so the first trainable layer is always a step of its own.
        """
        self._steps: list[tuple[int, Layer]] = []
        i, layers = 0, self.layers
        while i < len(layers):
            pair = layers[i : i + 2]
            fusable = len(pair) == 2 and not pair[0].params and not pair[1].params
            fused = pair[1].fuse_previous(pair[0]) if fusable else None
            self._steps.append((i, fused or layers[i]))
            i += 2 if fused else 1

    @property
    def splits_batch(self) -> bool:
        """Does a layer share the batch between threads itself?  Then training holds BLAS at one
        thread (``layerwise.kernels.one_blas_thread``)."""
        return any(layer.splits_batch for layer in self.layers)

    def set_rng(self, rng: np.random.Generator) -> None:
        """The generator that layers drawing random numbers in training (Dropout) use."""
        for layer in self.layers:
            if layer.uses_rng:
                layer.rng = rng

    # -- the two passes ---------------------------------------------------------------
    #: Registered hooks (``trace.Hooks``), or None: then the passes below run with no observation at all.
    _hooks: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x: (batch, *input_shape) -> (batch, *output_shape); each layer keeps what its backward needs."""
        if self._hooks is not None and self._hooks.forward:
            from .trace import observed_forward

            return observed_forward(self, x, training)
        for _, step in self._steps:
            x = step.forward(x, training)
        return x.copy() if self._copy_output else x

    def backward(self, dy: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dy = dJ/d(output) -> dJ/dx; fills every layer's grads.

        With ``need_input_grad=False`` (training) layers below the first parameter
        are skipped and the first layer with parameters does not compute its dx.
        """
        if self._hooks is not None and self._hooks.backward:
            from .trace import observed_backward

            return observed_backward(self, dy)
        stop = 0 if need_input_grad else self._first_trainable
        for i, step in reversed(self._steps):
            if i < stop:
                break
            dy = step.backward(dy, need_dx=need_input_grad or i > stop)
        return dy

    __call__ = forward

    # -- looking inside (see layerwise.trace) ---------------------------------------------
    def register_forward_hook(self, fn: Any) -> Any:
        """Call ``fn(layer, input, output)`` after every layer's forward pass; returns a handle with ``remove()``."""
        from .trace import register

        return register(self, "forward", fn)

    def register_backward_hook(self, fn: Any) -> Any:
        """Call ``fn(layer, grad_input, grad_output)`` after every layer's backward pass; a handle with ``remove()``."""
        from .trace import register

        return register(self, "backward", fn)

    def trace(self) -> Any:
        """``with net.trace() as t:`` records each layer's input, output and gradients (``layerwise.trace``)."""
        from .trace import Trace

        return Trace(self)

    def doForward(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.forward(x)

    def doBackward(self, dy: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.backward(dy)

    # -- parameters and buffers ---------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``[("0.W", W0), ("0.b", b0), ("2.W", ...)...]``: layer index and parameter name."""
        return [(f"{i}.{n}", p) for i, layer in enumerate(self.layers) for n, p in layer.params.items()]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        """Non-trained state by name, e.g. ``("1.running_mean", ...)``: saved, never touched by the optimizer."""
        return [(f"{i}.{n}", b) for i, layer in enumerate(self.layers) for n, b in layer.buffers.items()]

    def parameters(self) -> list[np.ndarray]:
        """Every parameter array (views into ``flat_params``), in layer order."""
        return [p for _, p in self.named_parameters()]

    def gradients(self) -> list[np.ndarray]:
        """Every gradient array, matching ``parameters()``."""
        return [g for layer in self.layers for g in layer.grads.values()]

    @property
    def n_params(self) -> int:
        return int(self.flat_params.size)

    @property
    def n_inputs(self) -> int | None:
        """Numbers per sample: prod(input_shape)."""
        return None if self.input_shape is None else math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int | None:
        return None if self.output_shape is None else math.prod(self.output_shape)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters and buffers by name."""
        return {name: p.copy() for name, p in self.named_parameters() + self.named_buffers()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters and buffers in by name; names and shapes must match exactly, values be finite.

        Everything is checked before anything is copied: a refused state leaves the network as it was.
        """
        mine = dict(self.named_parameters() + self.named_buffers())
        if not isinstance(state, dict) or set(state) != set(mine):
            given = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise ShapeError(f"state: expected arrays {sorted(mine)}, got {given}")
        values = {}
        for name, value in state.items():
            try:
                value = np.asarray(value)
            except (ValueError, TypeError) as e:
                raise ShapeError(
                    f"state[{name!r}]: expected a numeric array, got {type(value).__name__} ({e})"
                ) from None
            if value.dtype == bool or value.dtype.kind not in "iuf":
                raise DTypeError(f"state[{name!r}]: expected a numeric array, got dtype {value.dtype}")
            if value.shape != mine[name].shape:
                raise ShapeError(f"state[{name!r}]: expected shape {mine[name].shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise InputError(f"state[{name!r}]: expected finite values, got NaN or inf")
            values[name] = value
        for name, value in values.items():
            mine[name][...] = value

    def config(self) -> dict[str, Any]:
        return {
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [layer.config() for layer in self.layers],
            "dtype": self.dtype.name,
        }

    def summary(self) -> str:
        """A table: layer, output shape (per batch), parameter count."""
        rows = [("#", "layer", "output shape", "params")]
        shapes = [*self.shapes[1:], self.output_shape]
        for i, (layer, shape) in enumerate(zip(self.layers, shapes, strict=True)):
            count = sum(p.size for p in layer.params.values())
            shown = "?" if shape is None else "(batch, " + ", ".join(map(str, shape)) + ")"
            rows.append((str(i), repr(layer), shown, f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        fmt = lambda r: f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}"  # noqa: E731
        body = [fmt(rows[0]), line, *map(fmt, rows[1:]), line]
        shown_input = "?" if self.input_shape is None else "(batch, " + ", ".join(map(str, self.input_shape)) + ")"
        body.append(f"Input: {shown_input}   Total parameters: {self.n_params:,} ({self.dtype.name})")
        return printable("\n".join(body))  # reprs of layers from a file: no raw control characters

    def __repr__(self) -> str:
        return f"{type(self).__name__}([{', '.join(map(repr, self.layers))}])"


def _has_weights(layer: Layer) -> bool:
    """Does the layer's class create parameters or buffers when built (Dense, Conv2D, BatchNorm)?"""
    cls = type(layer)
    return cls.param_shapes is not Layer.param_shapes or cls.buffer_shapes is not Layer.buffer_shapes


class NeuralNetwork(Sequential):
    """A multi-layer perceptron from the seed's notation.

    ``NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")])`` builds
    Dense(784→140), ReLU, Dense(140→10), Linear.  Each tuple is (units,
    nonlinearity); names are case-insensitive and classes work too.  The
    architecture may also be a string: ``"[(140,ReLU),(10,Linear)]"`` or ``"140:relu,10"``.

    init: ``"auto"`` (He for ReLU layers, Xavier otherwise), ``"he"``, ``"xavier"``,
    ``"uniform"`` (U(0, init_scale)), ``"zeros"`` or a callable ``(n_in, n_out, rng) -> W``.
    input_scale: if given, a ``Rescale(input_scale)`` layer goes first, so the
    network accepts raw uint8 pixels (``1/255`` for images).
    """

    def __init__(
        self,
        n_inputs: int,
        architecture: Sequence[tuple[int, Any]] | str,
        init: Any = "auto",
        seed: int | None = None,
        dtype: Any = np.float32,
        init_scale: float | None = None,
        input_scale: float | None = None,
    ) -> None:
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
            raise ConfigError(f"n_inputs: expected a positive integer, got {n_inputs!r}")
        dtype = float_dtype(dtype)
        self.architecture = _normalise_architecture(architecture)
        rng = np.random.default_rng(seed)
        layers: list[Layer] = []
        if input_scale is not None:
            layers.append(Rescale(input_scale, dtype=dtype))
        n_in = int(n_inputs)
        for units, activation in self.architecture:
            act_cls = get_activation(activation)
            layer_init = init
            if isinstance(init, str) and init.lower() == "auto":
                layer_init = "he" if act_cls is ReLU else "xavier"
            layers.append(Dense(n_in, units, init=layer_init, rng=rng, dtype=dtype, init_scale=init_scale))
            layers.append(act_cls())
            n_in = units
        super().__init__(layers, dtype=dtype, seed=seed)


def _normalise_architecture(architecture: Sequence[tuple[int, Any]] | str) -> Architecture:
    """Check and canonicalise the architecture argument to [(units, lower-case name)...]."""
    if isinstance(architecture, str):
        return parse_architecture(architecture)
    if not isinstance(architecture, Sequence) or len(architecture) == 0:
        raise ConfigError(
            f"architecture: expected a non-empty list of (units, activation) tuples such as "
            f"[(140, 'ReLU'), (10, 'Linear')], got {architecture!r}"
        )
    result = []
    for i, item in enumerate(architecture):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ConfigError(f"architecture[{i}]: expected a (units, activation) pair, got {item!r}")
        units, activation = item
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ConfigError(f"architecture[{i}]: units must be a positive integer, got {units!r}")
        act_cls = get_activation(activation)
        result.append((int(units), act_cls.__name__.lower()))
    return result
