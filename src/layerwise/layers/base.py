"""The layer protocol, and the registry that rebuilds layers by name.

Every layer, built-in or user-written, follows one contract (containers never ask
which concrete class a layer is):

- ``build(input_shape, rng)`` creates the parameters from the per-sample input
  shape, e.g. ``(784,)`` or ``(1, 28, 28)``; ``output_shape(input_shape)`` says what
  comes out without touching data (Keras' ``compute_output_shape``), and
  ``param_shapes(input_shape)`` which parameters ``build`` would create.
- ``forward(x, training=False)`` and ``backward(dy, need_dx=True)``: the two passes.
  ``forward`` remembers what ``backward`` needs; ``backward`` takes dJ/dy, writes
  dJ/dθ into ``grads`` (overwriting, not adding) and returns dJ/dx (None when
  ``need_dx`` is False: nobody needs the gradient of the data).
- ``params`` / ``grads``: trainable arrays by name (a network keeps them in one flat
  buffer, updated by the optimizer); ``buffers``: state that is saved but never
  trained, such as BatchNorm's running statistics.
- ``get_config()`` / ``from_config()``: the constructor's arguments as JSON, so that
  ``layer_from_config`` can rebuild any registered layer (``@register_layer``).
- In-place work: a layer with ``can_work_in_place`` may overwrite its input in
  ``forward`` and its dy in ``backward`` when ``inplace`` is set; a network sets it
  only where it owns both arrays, so a public call never changes the caller's arrays.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..errors import ConfigError, ShapeError

Shape = tuple[int, ...]


def float_dtype(dtype: Any) -> np.dtype:
    """``np.dtype(dtype)`` if it is float32 or float64, else ConfigError: the only dtypes layers compute in."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        result = None
    if result not in (np.float32, np.float64):
        raise ConfigError(f"dtype: expected float32 or float64, got {dtype!r}")
    return result


def positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def pair(owner: str, name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= 1."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ConfigError(f"{owner}: {name} must be an int or a pair (height, width), got {value!r}")
    return positive_int(owner, name, values[0]), positive_int(owner, name, values[1])


class Layer:
    """Base class of every layer; see the module docstring for the contract."""

    #: May overwrite x in forward and dy in backward when ``self.inplace`` is set.
    can_work_in_place: ClassVar[bool] = False
    #: forward and backward always return newly allocated arrays (never views of their input).
    returns_new_arrays: ClassVar[bool] = False
    #: backward reads the output forward returned (activations keep y): nobody may overwrite it.
    keeps_output: ClassVar[bool] = False
    #: Takes raw input of any numeric dtype (Rescale); others get the network's dtype.
    casts_input: ClassVar[bool] = False
    #: Draws random numbers in training (Dropout): the network hands it ``rng``.
    uses_rng: ClassVar[bool] = False
    #: Cuts a training batch between threads itself and wants BLAS on one thread (see
    #: ``layerwise.kernels.one_blas_thread``); compiled Conv2D layers that multiply patches.
    splits_batch: bool = False
    #: The name under which ``register_layer`` put the class (set by the decorator).
    registered_name: ClassVar[str | None] = None

    def __init__(self, dtype: Any = None) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.dtype: np.dtype | None = None if dtype is None else float_dtype(dtype)
        self.input_shape: Shape | None = None
        self.built = False
        self.inplace = False
        self.rng: np.random.Generator | None = None

    # -- shapes and building ----------------------------------------------------------
    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (default: unchanged)."""
        return tuple(input_shape)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """Shapes of the parameters ``build(input_shape)`` creates (default: none)."""
        return {}

    def buffer_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """Shapes of the non-trained buffers ``build(input_shape)`` creates (default: none)."""
        return {}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        """Create parameters for ``input_shape``; layers with weights extend this."""
        self.output_shape(input_shape)  # validates the shape
        self.input_shape = tuple(int(d) for d in input_shape)
        if self.dtype is None:
            self.dtype = np.dtype(np.float32)
        self.built = True

    def _set_params(self, **arrays: np.ndarray) -> None:
        """Install parameters (cast to the layer's dtype) and zeroed gradients of the same shapes."""
        self.params = {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in arrays.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    # -- the two passes ---------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def fuse_previous(self, previous: Layer) -> Layer | None:
        """A layer that does ``previous`` and then this one in one pass, or None (the default).

        A network runs it in place of the two (same results, fewer passes over memory);
        hooks and traces still see the two layers one by one.
        """
        return None

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``forward``, building the layer from ``x.shape[1:]`` first if needed (as Keras does)."""
        if not self.built:
            self.build(np.shape(x)[1:])
        return self.forward(x, training=training)

    def doForward(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.forward(x)

    def doBackward(self, dy: np.ndarray) -> np.ndarray:  # noqa: N802 (the seed's name)
        return self.backward(dy)

    # -- configuration ----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-able (default: none)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A new, unbuilt layer from ``get_config()``'s output."""
        return cls(**config)

    def config(self) -> dict[str, Any]:
        """``{"type": registered name, **get_config()}``, plus ``input_shape`` once built."""
        name = type(self).registered_name
        if name is None or LAYERS.get(name) is not type(self):
            raise ConfigError(
                f"{type(self).__name__}: not a registered layer, so it cannot be saved; "
                "decorate the class with @layerwise.register_layer"
            )
        config = {"type": name, **self.get_config()}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# -- the registry ---------------------------------------------------------------------
LAYERS: dict[str, type[Layer]] = {}
L = TypeVar("L", bound=type[Layer])


def register_layer(cls_or_name: L | str | None = None) -> Any:
    """Class decorator: ``@register_layer`` or ``@register_layer("Name")``.

    A registered layer can be saved with a model and rebuilt by ``layerwise.load``.
    """

    def register(cls: L, name: str | None = None) -> L:
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise ConfigError(f"register_layer: expected a Layer subclass, got {cls!r}")
        name = name or cls.__name__
        if name in LAYERS and LAYERS[name] is not cls and LAYERS[name].__qualname__ != cls.__qualname__:
            raise ConfigError(f"register_layer: the name {name!r} is taken by {LAYERS[name].__qualname__}")
        LAYERS[name] = cls
        cls.registered_name = name
        return cls

    if isinstance(cls_or_name, str):
        name = cls_or_name
        return lambda cls: register(cls, name)
    if cls_or_name is None:
        return register
    return register(cls_or_name)


def get_layer_class(name: Any) -> type[Layer]:
    if not isinstance(name, str) or name not in LAYERS:
        raise ConfigError(f"layer config: unknown layer type {name!r} (known: {', '.join(sorted(LAYERS))})")
    return LAYERS[name]


def layer_from_config(config: dict[str, Any], dtype: Any = None, build: bool = True) -> Layer:
    """Rebuild a layer from ``Layer.config()``; with an ``input_shape`` it is built, parameters zeroed."""
    if not isinstance(config, dict):
        raise ConfigError(f"layer config: expected an object, got {config!r}")
    cls = get_layer_class(config.get("type"))
    kwargs = {k: v for k, v in config.items() if k not in ("type", "input_shape")}
    try:
        layer = cls.from_config(kwargs)
    except TypeError as e:  # an unexpected or missing keyword
        raise ConfigError(f"layer config {config!r}: {e}") from None
    if dtype is not None and layer.dtype is None:
        layer.dtype = float_dtype(dtype)
    shape = config.get("input_shape", layer.input_shape)
    if build and shape is not None and not layer.built:
        layer.build(check_shape("input_shape", shape))
    for p in layer.params.values():
        p[...] = 0
    return layer


def check_shape(name: str, shape: Any) -> Shape:
    """A per-sample shape: a non-empty tuple of positive ints."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ConfigError(f"{name}: expected a per-sample shape such as (784,) or (1, 28, 28), got {shape!r}")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ConfigError(f"{name}: dimensions must be positive integers, got {shape!r}")
    if math.prod(int(d) for d in shape) > 2**40:
        raise ConfigError(f"{name}: {shape!r} is too large")
    return tuple(int(d) for d in shape)


def expect_rank(layer: Layer, input_shape: Shape, ranks: tuple[int, ...], hint: str = "") -> None:
    """ShapeError unless the per-sample input has one of ``ranks`` dimensions."""
    if len(input_shape) not in ranks:
        expected = " or ".join({1: "(features,)", 3: "(channels, height, width)"}.get(r, f"{r}-D") for r in ranks)
        raise ShapeError(f"{type(layer).__name__}: expects per-sample input {expected}, got {tuple(input_shape)}{hint}")
