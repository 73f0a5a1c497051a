"""Networks: a list of layers run forward in order and backward in reverse.

All parameters live in one contiguous buffer (``net.flat_params``) and all
gradients in another (``net.flat_grads``); each layer's ``W`` and ``b`` are
views into them.  An optimizer then updates every parameter with a handful of
whole-buffer operations per step instead of a few per array.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .arch import Architecture, parse_architecture
from .errors import ConfigError, ShapeError
from .layers import Dense, Layer, ReLU, Rescale, float_dtype, get_activation


class Sequential:
    """A stack of layers.  x: (batch, n_in) -> forward -> (batch, n_out)."""

    def __init__(self, layers: Iterable[Layer], dtype: Any = None) -> None:
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise ConfigError("layers: expected at least one layer, got none")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"layers[{i}]: expected a Layer, got {type(layer).__name__}")
        dtypes = {p.dtype for layer in self.layers for p in layer.params.values()}
        if dtype is None:
            dtype = dtypes.pop() if len(dtypes) == 1 else np.float32
        elif dtypes - {float_dtype(dtype)}:
            raise ConfigError(f"dtype: layers hold {sorted(map(str, dtypes))}, but dtype={dtype}")
        if len(dtypes) > 1:
            raise ConfigError(f"dtype: layers mix parameter dtypes {sorted(map(str, dtypes))}")
        self.dtype = np.dtype(dtype)
        self.seed: int | None = None
        self._pack()
        # Layers before the first one with parameters need no backward pass in training.
        with_params = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = with_params[0] if with_params else len(self.layers)

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

    # -- the two passes ---------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (batch, n_in) -> (batch, n_out); each layer keeps what its backward needs."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dy = dJ/d(output): (batch, n_out) -> dJ/dx: (batch, n_in); fills every layer's grads.

        With ``need_input_grad=False`` (training) layers below the first parameter
        are skipped and the first Dense does not compute its dx.
        """
        stop = 0 if need_input_grad else self._first_trainable
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            if isinstance(layer, Dense):
                dy = layer.backward(dy, need_dx=need_input_grad or i > stop)
            else:
                dy = layer.backward(dy)
        return dy

    __call__ = forward

    def doForward(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.forward(x)

    def doBackward(self, dy: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.backward(dy)

    # -- parameters -------------------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``[("0.W", W0), ("0.b", b0), ("2.W", ...)...]``: layer index and parameter name."""
        return [(f"{i}.{n}", p) for i, layer in enumerate(self.layers) for n, p in layer.params.items()]

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
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        return dense[0].n_in if dense else None

    @property
    def n_outputs(self) -> int | None:
        n = self.n_inputs
        for layer in self.layers:
            n = layer.output_features(n)
        return n

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters by name."""
        return {name: p.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters in by name; names and shapes must match exactly."""
        mine = dict(self.named_parameters())
        if set(state) != set(mine):
            raise ShapeError(f"state: expected parameters {sorted(mine)}, got {sorted(state)}")
        for name, value in state.items():
            value = np.asarray(value)
            if value.shape != mine[name].shape:
                raise ShapeError(f"state[{name!r}]: expected shape {mine[name].shape}, got {value.shape}")
            mine[name][...] = value

    def config(self) -> dict[str, Any]:
        return {"layers": [layer.config() for layer in self.layers], "dtype": self.dtype.name}

    def summary(self) -> str:
        """A table: layer, output shape, parameter count."""
        rows = [("#", "layer", "output shape", "params")]
        n = self.n_inputs
        for i, layer in enumerate(self.layers):
            n = layer.output_features(n)
            count = sum(p.size for p in layer.params.values())
            rows.append((str(i), repr(layer), f"(batch, {n})", f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        fmt = lambda r: f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}"  # noqa: E731
        body = [fmt(rows[0]), line, *map(fmt, rows[1:]), line]
        body.append(f"Total parameters: {self.n_params:,} ({self.dtype.name})")
        return "\n".join(body)

    def __repr__(self) -> str:
        return f"{type(self).__name__}([{', '.join(map(repr, self.layers))}])"


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
            # Dense returns a fresh array, so the activation may overwrite it.
            layers.append(act_cls(inplace=True))
            n_in = units
        super().__init__(layers, dtype=dtype)
        self.seed = seed


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
