"""Record every intermediate array of real training steps: the numbers a worksheet prints.

``record_training`` runs ``Model.fit`` itself — the same layers, loss and optimizer
that train any network — with thin wrappers around each layer's ``forward`` and
``backward``, the loss's ``forward`` and ``backward`` and the optimizer's ``step``.
A wrapper copies what goes in and what comes out at the moment of the call (layers
may later overwrite those arrays in place) and changes nothing else, so the
recorded run takes exactly the path of an unrecorded one; ``train_plain`` runs that
unrecorded one, and a sheet compares the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layers import Activation, Linear, Softmax
from ..model import Model
from ..network import Sequential


@dataclass
class StepRecord:
    """Everything one training step computed.  Arrays are copies, in the library's layout (samples as rows)."""

    #: Per layer index: the input x and the output y of ``forward``.
    inputs: dict[int, np.ndarray] = field(default_factory=dict)
    outputs: dict[int, np.ndarray] = field(default_factory=dict)
    #: Per layer index: dJ/dy handed to ``backward``, dJ/dx it returned (None for the first layer),
    #: its parameter gradients, and for element-wise activations f'(input) (its backward of ones).
    dy: dict[int, np.ndarray] = field(default_factory=dict)
    dx: dict[int, np.ndarray | None] = field(default_factory=dict)
    grads: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    derivative: dict[int, np.ndarray] = field(default_factory=dict)
    #: The loss: its inputs z (network output) and y (targets as the loss saw them), J,
    #: the saved p (softmax or sigmoid) or diff (z − y, MSE), and dJ/dz from ``backward``.
    loss_z: np.ndarray | None = None
    loss_y: np.ndarray | None = None
    J: float = math.nan
    loss_saved: dict[str, np.ndarray] = field(default_factory=dict)
    dz: np.ndarray | None = None
    #: Per layer index: parameters before and after the optimizer's step, and its state after it
    #: (``{"momentum_buffer": {i: {"W": …}}}``, or Adam's ``m`` and ``v``).
    params_before: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    params_after: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    state_after: dict[str, dict[int, dict[str, np.ndarray]]] = field(default_factory=dict)
    #: The optimizer's step counter after this step (Adam's t).
    iteration: int = 0


def _copy(a: Any) -> Any:
    return None if a is None else np.array(a, copy=True)


class Recorder:
    """Installs the recording wrappers on ``model`` (instance attributes, so the classes stay untouched)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.steps: list[StepRecord] = []
        # On from a training step's first forward call to the end of its optimizer step:
        # Model.fit also runs inference passes (its divergence checks), which are not recorded.
        self.active = False
        net = model.net
        # Where each parameter lives in the optimizer's flat buffers (the order Sequential packs them in).
        self.slices: dict[int, dict[str, tuple[slice, tuple[int, ...]]]] = {}
        offset = 0
        for i, layer in enumerate(net.layers):
            for name, p in layer.params.items():
                self.slices.setdefault(i, {})[name] = (slice(offset, offset + p.size), p.shape)
                offset += p.size
        for i, layer in enumerate(net.layers):
            layer.forward = self._forward(i, layer.forward)
            layer.backward = self._backward(i, layer, layer.backward)
        loss = model.loss
        loss.forward = self._loss_forward(loss.forward)
        loss.backward = self._loss_backward(loss.backward)
        model.optimizer.step = self._step(model.optimizer.step)

    @property
    def current(self) -> StepRecord:
        return self.steps[-1]

    def _layer_params(self) -> dict[int, dict[str, np.ndarray]]:
        return {
            i: {k: v.copy() for k, v in layer.params.items()}
            for i, layer in enumerate(self.model.net.layers)
            if layer.params
        }

    def _forward(self, i: int, original: Callable) -> Callable:
        def forward(x: np.ndarray, training: bool = False) -> np.ndarray:
            if training and i == 0:  # a training step starts with the first layer's forward pass
                self.steps.append(StepRecord())
                self.active = True
            if not (training and self.active):
                return original(x, training)
            self.current.inputs[i] = _copy(x)
            y = original(x, training)
            self.current.outputs[i] = _copy(y)
            return y

        return forward

    def _backward(self, i: int, layer: Any, original: Callable) -> Callable:
        elementwise = isinstance(layer, Activation) and not isinstance(layer, (Linear, Softmax))

        def backward(dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
            if not self.active:
                return original(dy, need_dx)
            step = self.current
            step.dy[i] = _copy(dy)
            dx = original(dy, need_dx)
            step.dx[i] = _copy(dx)
            step.grads[i] = {k: v.copy() for k, v in layer.grads.items()}
            if elementwise:
                # f'(x), as this layer's own backward computes it: its backward of dy = 1.
                # It only reads the saved output, so calling it again changes nothing.
                step.derivative[i] = np.array(original(np.ones_like(step.dy[i]), True), copy=True)
            return dx

        return backward

    def _loss_forward(self, original: Callable) -> Callable:
        def forward(z: np.ndarray, y: np.ndarray) -> float:
            if not self.active:
                return original(z, y)
            step = self.current
            step.loss_z, step.loss_y = _copy(z), _copy(y)
            J = original(z, y)
            step.J = float(J)
            for name in ("p", "diff"):
                if hasattr(self.model.loss, name):
                    step.loss_saved[name] = _copy(getattr(self.model.loss, name))
            return J

        return forward

    def _loss_backward(self, original: Callable) -> Callable:
        def backward() -> np.ndarray:
            dz = original()
            if self.active:
                self.current.dz = _copy(dz)
            return dz

        return backward

    def _step(self, original: Callable) -> Callable:
        def step(params: Any, grads: Any, backup: Any = None) -> None:
            if not self.active:
                return original(params, grads, backup)
            record = self.current
            record.params_before = self._layer_params()
            original(params, grads, backup)
            record.params_after = self._layer_params()
            optimizer = self.model.optimizer
            record.iteration = optimizer.iterations
            for slot, flat in optimizer.state.items():
                record.state_after[slot] = {
                    i: {name: flat[0][s].reshape(shape).copy() for name, (s, shape) in names.items()}
                    for i, names in self.slices.items()
                }
            self.active = False

        return step


def fit_steps(model: Model, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int) -> None:
    """Exactly ``steps`` optimizer steps of ``Model.fit`` over x in order (no shuffling).

    fit runs whole epochs; the steps of a last, partial epoch are a second ``fit`` on
    the first batches (the optimizer keeps its state between the two calls).
    """
    n_batches = -(-len(x) // batch_size)
    epochs, rest = divmod(steps, n_batches)
    if epochs:
        model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    if rest:
        end = rest * batch_size
        model.fit(x[:end], y[:end], epochs=1, batch_size=batch_size, shuffle=False, verbose=0)


def record_training(
    make_model: Callable[[], Model], x: np.ndarray, y: np.ndarray, steps: int, batch_size: int
) -> tuple[list[StepRecord], Model]:
    """Train a fresh ``make_model()`` for ``steps`` steps while recording; returns the records and the model."""
    model = make_model()
    recorder = Recorder(model)
    fit_steps(model, x, y, steps, batch_size)
    return recorder.steps, model


def train_plain(make_model: Callable[[], Model], x: np.ndarray, y: np.ndarray, steps: int, batch_size: int) -> Model:
    """The same training with nothing recorded: the independent run a sheet is checked against."""
    model = make_model()
    fit_steps(model, x, y, steps, batch_size)
    return model


def max_difference(a: Sequential, b: Sequential) -> float:
    """The largest |difference| between two networks' parameters."""
    return float(np.max(np.abs(a.flat_params - b.flat_params), initial=0.0))
