"""Look inside a training step: forward/backward hooks and ``trace()``, for teaching and debugging.

``with net.trace() as t:`` (or ``model.trace()``) records, for every layer, what went
in and what came out of the last forward pass run inside the block, and the
gradients of the backward pass that followed it::

    import numpy as np
    import layerwise as lw
    from layerwise.data import load

    net = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0, input_scale=1 / 255)
    model = lw.Model(net, optimizer=lw.optim.SGD(0.1))
    (x, y), _ = load("mnist")
    with model.trace() as t:
        model.train_on_batch(x[:32], y[:32])
    for rec in t.layers:
        grads = ", ".join(f"|d{k}| {np.linalg.norm(g):.3g}" for k, g in rec.grads.items())
        print(f"{rec.index} {rec.name:<28} in {rec.input.shape} out {rec.output.shape} "
              f"|y| {np.linalg.norm(rec.output):8.3g} |dy| {np.linalg.norm(rec.grad_output):.3g} {grads}")
    print(t.summary())   # the same as a table

``t.layers[i]`` (a ``LayerRecord``) holds copies, taken at the moment of the call:
``input`` x and ``output`` y of layer i (a Dense layer's output is the
pre-activation, the next layer's output the post-activation), ``grad_output`` dJ/dy
and ``grad_input`` dJ/dx (inside a trace every layer's dx is computed, down to
dJ/d(input data) of layer 0), ``grads`` {name: dJ/dθ} and ``params`` {name: θ as
the forward pass used it}; ``training`` says which mode the forward pass ran in.
Arrays keep the network's layout: (batch, features) or (batch, C, H, W).

Hooks, PyTorch style: ``h = net.register_forward_hook(fn)`` calls
``fn(layer, input, output)`` after every layer's forward pass, and
``net.register_backward_hook(fn)`` calls ``fn(layer, grad_input, grad_output)``
after every layer's backward pass (grads filled); ``h.remove()`` takes a hook off.
The arrays are the live ones, valid during the call: layers may overwrite them
later (copy what you keep), and a hook must not modify them.

Cost: with no hook registered a forward or backward pass checks one attribute and
runs exactly as before, in-place optimisations included.  While hooks are on, an
in-place layer's input is copied before it is overwritten, so that hooks see it; the
values computed, and so the weights after a step, are bit for bit those of an
unobserved step.  A model's own checks (its divergence guard) are not observed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Sequential

ForwardHook = Callable[[Any, np.ndarray, np.ndarray], None]
BackwardHook = Callable[[Any, "np.ndarray | None", np.ndarray], None]
_ids = itertools.count()


class Hooks:
    """A network's registered hooks, in registration order."""

    def __init__(self) -> None:
        self.forward: dict[int, ForwardHook] = {}
        self.backward: dict[int, BackwardHook] = {}
        self.training = False  # the mode of the forward pass being observed


class HookHandle:
    """Returned by ``register_*_hook``: ``remove()`` takes the hook off (twice is harmless)."""

    def __init__(self, net: Sequential, kind: str, key: int) -> None:
        self._net, self._kind, self._key = net, kind, key

    def remove(self) -> None:
        hooks = self._net._hooks
        if hooks is None:
            return
        getattr(hooks, self._kind).pop(self._key, None)
        if not hooks.forward and not hooks.backward:
            self._net._hooks = None  # back to the plain passes

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def register(net: Sequential, kind: str, fn: Callable) -> HookHandle:
    if not callable(fn):
        raise ConfigError(f"register_{kind}_hook: expected a function, got {type(fn).__name__}")
    if net._hooks is None:
        net._hooks = Hooks()
    key = next(_ids)
    getattr(net._hooks, kind)[key] = fn
    return HookHandle(net, kind, key)


def observed_forward(net: Sequential, x: np.ndarray, training: bool) -> np.ndarray:
    """``Sequential.forward`` with the forward hooks called after each layer."""
    hooks = list(net._hooks.forward.values())
    net._hooks.training = bool(training)
    for layer in net.layers:
        # An in-place layer overwrites x: the hooks get a copy taken before.
        x_in = x.copy() if hooks and layer.inplace else x
        x = layer.forward(x, training)
        for hook in hooks:
            hook(layer, x_in, x)
    return x.copy() if net._copy_output else x


def observed_backward(net: Sequential, dy: np.ndarray) -> np.ndarray:
    """``Sequential.backward`` computing every layer's dx, with the backward hooks called after each layer."""
    hooks = list(net._hooks.backward.values())
    for layer in reversed(net.layers):
        dy_in = dy.copy() if hooks and layer.inplace else dy
        dy = layer.backward(dy, need_dx=True)
        for hook in hooks:
            hook(layer, dy, dy_in)
    return dy


@dataclass
class LayerRecord:
    """One layer's arrays from a traced step (copies); None where that pass did not run."""

    index: int
    name: str
    input: np.ndarray | None = None
    output: np.ndarray | None = None
    grad_output: np.ndarray | None = None
    grad_input: np.ndarray | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    training: bool | None = None


class Trace:
    """Records the last forward pass (and the backward pass after it) run while it is active.

    Use as ``with net.trace() as t: ...``; ``t.layers`` is a list of ``LayerRecord``,
    one per layer, filled once the block has run a forward pass.
    """

    def __init__(self, net: Sequential) -> None:
        self.net = net
        self.layers: list[LayerRecord] = []
        self._index = {id(layer): i for i, layer in enumerate(net.layers)}
        self._handles: list[HookHandle] = []
        self._pass_done = True  # the next forward call starts a new record

    def __enter__(self) -> Trace:
        self._handles = [
            self.net.register_forward_hook(self._on_forward),
            self.net.register_backward_hook(self._on_backward),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _on_forward(self, layer: Layer, x: np.ndarray, y: np.ndarray) -> None:
        i = self._index[id(layer)]
        if i == 0:  # a new forward pass replaces the record
            self.layers = [LayerRecord(j, repr(layer)) for j, layer in enumerate(self.net.layers)]
        if not self.layers:
            return
        record = self.layers[i]
        record.input, record.output = np.array(x, copy=True), np.array(y, copy=True)
        record.params = {k: v.copy() for k, v in layer.params.items()}
        record.training = self.net._hooks.training if self.net._hooks is not None else None

    def _on_backward(self, layer: Layer, dx: np.ndarray | None, dy: np.ndarray) -> None:
        if not self.layers:
            return
        record = self.layers[self._index[id(layer)]]
        record.grad_output = np.array(dy, copy=True)
        record.grad_input = None if dx is None else np.array(dx, copy=True)
        record.grads = {k: v.copy() for k, v in layer.grads.items()}

    def summary(self) -> str:
        """One line per layer: output shape, ‖y‖, ‖dJ/dy‖ and each ‖dJ/dθ‖ (Frobenius norms)."""
        if not self.layers:
            return "(nothing traced: run a forward pass inside the `with` block)"
        norm = lambda a: "-" if a is None else f"{np.linalg.norm(a.astype(np.float64)):.4g}"  # noqa: E731
        rows = [("#", "layer", "output", "|y|", "|dJ/dy|", "|dJ/dθ|")]
        for r in self.layers:
            shape = "-" if r.output is None else "×".join(map(str, r.output.shape))
            grads = ", ".join(f"{k} {norm(g)}" for k, g in r.grads.items()) or "-"
            rows.append((str(r.index), r.name, shape, norm(r.output), norm(r.grad_output), grads))
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        return "\n".join("  ".join(f"{v:<{w}}" for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)

    def __repr__(self) -> str:
        return f"Trace({len(self.layers)} layers recorded)"
