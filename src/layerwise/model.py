"""``Model``: a network, a loss and an optimizer, with Keras' ``fit`` / ``evaluate`` / ``predict``.

One training step is the seed's recipe, in four lines of ``_train_step``:
forward, loss, backward, update.  Everything else here is bookkeeping.

Keras habits that work: ``fit(validation_split=0.1)`` (the last 10%, see
``layerwise.training``), ``class_weight`` / ``sample_weight`` (weighted mean loss,
see ``layerwise.losses``), per-batch callback hooks, ``train_on_batch``,
``evaluate(..., return_dict=True)``.  ``fit`` refuses a Softmax output under the
cross-entropy on logits and warns about input that looks scaled twice or not at all
(``layerwise.guards``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import training
from .callbacks import Callback, History, check_callbacks
from .errors import ConfigError, DivergenceError, printable
from .guards import check_input_scale, check_output_for_loss
from .inference import Inference, result
from .kernels import one_blas_thread
from .losses import get_loss
from .network import Sequential
from .optim import Optimizer, get_optimizer
from .validation import check_features, check_positive_int, check_targets, combined_weights, train_state_problem


class Model(Inference):
    """``Model(net, loss="crossEntropyLogit", optimizer="adam")``.

    loss: a name (``"crossEntropyLogit"``, ``"logistic"``, ``"mse"``) or a Loss.
    optimizer: a name (``"SGD"``, ``"ADAM"``, ...) or an Optimizer such as ``optim.Adam(1e-3)``.
    seed: seeds batch shuffling; defaults to the network's seed, so that the same
    seed gives bit-identical weights.
    """

    def __init__(
        self,
        net: Sequential,
        loss: Any = "crossEntropyLogit",
        optimizer: Any = "adam",
        seed: int | None = None,
    ) -> None:
        if not isinstance(net, Sequential):
            raise ConfigError(f"net: expected a layerwise Sequential/NeuralNetwork, got {type(net).__name__}")
        self.net = net
        self.loss = get_loss(loss)
        self.optimizer: Optimizer = get_optimizer(optimizer)
        self.seed = seed if seed is not None else net.seed
        self.rng = np.random.default_rng(self.seed)  # shuffles the batches
        # Dropout's masks: a stream of its own, so the shuffle does not depend on the layers.
        self.noise_rng = np.random.default_rng(None if self.seed is None else [self.seed, 1])
        net.set_rng(self.noise_rng)
        self.stop_training = False
        self._previous_step: np.ndarray | None = None  # train_on_batch's last starting weights
        self.history: History | None = None
        self.train_config: dict[str, Any] = {}
        # Set by a signal handler (see cli): fit stops cleanly after the current step.
        self.interrupt_requested = False
        self.train_state: dict[str, Any] | None = None

    # -- training ---------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        callbacks: Iterable[Callback] = (),
        verbose: int = 1,
        resume: dict[str, Any] | None = None,
        *,
        validation_split: float = 0.0,
        class_weight: dict[int, float] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> History:
        """Train for ``epochs`` passes over x: (n, *input_shape) with targets y (labels (n,) or one-hot rows).

        The epoch's ``loss`` and ``accuracy`` are the means over its batches weighted by
        batch size, each computed before that batch's update (as Keras reports them).
        validation_data: (x_val, y_val) or (x_val, y_val, sample_weight_val), evaluated
        after every epoch (``val_loss``, ``val_accuracy``).  validation_split: instead,
        hold out the last fraction of x and y (Keras' split, before shuffling).
        sample_weight: (n,) weights >= 0; class_weight: {class: weight} (others weigh 1);
        both given, they multiply.  A batch's loss is then Σ wᵢℓᵢ / Σ wᵢ (as PyTorch's
        ``CrossEntropyLoss(weight=...)``); accuracy stays unweighted.
        ``resume`` takes ``model.train_state`` from a checkpoint and continues exactly
        where it stopped.  Returns the ``History`` (also kept as ``model.history``).
        """
        data = training.prepare(self, x, y, validation_data, validation_split, sample_weight, class_weight)
        x, y, weights = data.x, data.y, data.weights
        callbacks = check_callbacks(callbacks)
        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        check_output_for_loss(self.net, self.loss)
        if resume is not None and (problem := train_state_problem(resume)):
            raise ConfigError(f"resume: not a training state from a checkpoint: {problem}")
        check_input_scale(x, self.net)
        x = self._as_input(x)
        history = History()
        if resume is not None:
            history.history = {k: list(v) for k, v in resume.get("history", {}).items()}
            history.epoch = list(range(len(next(iter(history.history.values()), []))))
        history.params = {"epochs": epochs, "batch_size": batch_size, "samples": len(x)}
        self.history = history  # callbacks (checkpoints) may read it during training
        callbacks = [history, *callbacks]
        self._batch_callbacks = training.batch_callbacks(callbacks)
        for cb in callbacks:
            cb.set_model(self)
        self.train_config = {"epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle)}
        self.stop_training = False
        # interrupt_requested is not reset here: a stop asked for while training starts up
        # (a signal before the first step) is honoured at the first step.
        # Two snapshots, so that a divergence can be undone (see _diverged): the weights
        # before each update (the optimizer fills it), and those the current epoch started from.
        self._backup = [self.net.flat_params.copy()]
        self._epoch_start = self.net.flat_params.copy()
        self._epoch_start_is = "the weights this fit started from"
        self._previous_step = None
        for cb in callbacks:
            cb.on_train_begin()
        start_epoch = resume["epoch"] if resume else 0
        for epoch in range(start_epoch, epochs):
            if epoch > start_epoch:
                np.copyto(self._epoch_start, self.net.flat_params)
                self._epoch_start_is = f"the weights of epoch {epoch} (the last completed one)"
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            # Overflow is handled by the divergence check (a clear error, finite weights kept),
            # so NumPy's RuntimeWarnings would only be noise in front of it.
            self._bar = None
            try:
                with np.errstate(over="ignore", invalid="ignore"), one_blas_thread(self.net.splits_batch):
                    logs = self._train_epoch(x, y, weights, epoch, epochs, batch_size, shuffle, verbose, resume)
                    self._check_last_update(epoch)
                resume = None
                if logs is None:  # interrupted: train_state holds where we are
                    break
                if data.validation is not None:
                    xv, yv, wv = data.validation
                    val_loss, val_acc = self.evaluate(
                        xv, yv, sample_weight=wv, _checked=True, _name=data.validation_name
                    )
                    logs["val_loss"] = val_loss
                    if not math.isnan(val_acc):
                        logs["val_accuracy"] = val_acc
                if self._bar is not None:  # the epoch's line ends with its validation metrics
                    training.show_epoch(self._bar, logs)
            finally:
                if self._bar is not None:
                    self._bar.close()
                    self._bar = None
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        self.interrupt_requested = False  # answered: the next fit starts afresh
        return history

    def _train_epoch(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray | None,
        epoch: int,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        verbose: int,
        resume: dict[str, Any] | None,
    ) -> dict[str, float] | None:
        """One pass over the data; returns the epoch's logs, or None when interrupted.

        With verbose=1 its progress bar is left open in ``self._bar`` for fit to finish.
        """
        n = len(x)
        if resume:  # replay the epoch's shuffle from the RNG state it started with
            self.rng.bit_generator.state = resume["rng_state"]
            if "noise_rng_state" in resume:
                self.noise_rng.bit_generator.state = resume["noise_rng_state"]
            first_step, totals = resume["step"], dict(resume["totals"])
        else:
            first_step, totals = 0, {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
        rng_state = self.rng.bit_generator.state
        order = self.rng.permutation(n) if shuffle else None
        n_steps = -(-n // batch_size)
        bar = self._bar = training.progress_bar(n, epoch, epochs, totals["seen"]) if verbose == 1 else None
        refresh = max(1, n_steps // 50)
        started = time.perf_counter()
        params, grads = [self.net.flat_params], [self.net.flat_grads]
        batch_callbacks, wb = self._batch_callbacks, None
        for step in range(first_step, n_steps):
            lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
            if order is None:
                xb, yb = x[lo:hi], y[lo:hi]
                if weights is not None:
                    wb = weights[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = x[idx], y[idx]
                if weights is not None:
                    wb = weights[idx]
            if batch_callbacks:
                for cb in batch_callbacks:
                    cb.on_train_batch_begin(step, {"size": hi - lo})
            batch_loss, batch_correct = self._train_step(xb, yb, params, grads, (epoch, step), wb)
            if batch_callbacks:
                batch_logs = training.batch_logs(hi - lo, batch_loss, batch_correct)
                for cb in batch_callbacks:
                    cb.on_train_batch_end(step, batch_logs)
            totals["loss"] += batch_loss * (hi - lo)
            totals["correct"] += batch_correct
            totals["seen"] += hi - lo
            if bar is not None and (step % refresh == 0 or step == n_steps - 1):
                bar.update(totals["seen"] - bar.n)
                bar.set_postfix(
                    loss=f"{totals['loss'] / totals['seen']:.4f}",
                    acc=f"{totals['correct'] / totals['seen']:.4f}",
                    refresh=False,
                )
            if self.interrupt_requested and step < n_steps - 1:
                totals["seconds"] += time.perf_counter() - started
                self.train_state = {
                    "epoch": epoch,
                    "step": step + 1,
                    "rng_state": rng_state,
                    "noise_rng_state": self.noise_rng.bit_generator.state,
                    "totals": totals,
                }
                return None  # fit closes the bar
        totals["seconds"] += time.perf_counter() - started
        self.train_state = {
            "epoch": epoch + 1,
            "step": 0,
            "rng_state": self.rng.bit_generator.state,
            "noise_rng_state": self.noise_rng.bit_generator.state,
            "totals": {"loss": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0},
        }
        logs = {"loss": totals["loss"] / totals["seen"]}
        accuracy = totals["correct"] / totals["seen"]
        if not math.isnan(accuracy):
            logs["accuracy"] = accuracy
        logs["seconds"] = totals["seconds"]
        return logs

    def _train_step(
        self,
        xb: np.ndarray,
        yb: np.ndarray,
        params: list,
        grads: list,
        where: tuple[int, int] | None,
        wb: np.ndarray | None = None,
    ) -> tuple[float, float]:
        """forward, loss, backward, update: returns (batch loss, correct predictions).

        where: (epoch, step) for messages, None in ``train_on_batch``.  wb: the batch's sample weights.
        """
        self._last_batch = (xb, yb)
        z = self.net.forward(xb, training=True)
        # Unweighted, the loss is called exactly as always (explain's recorder wraps that call).
        J = self.loss.forward(z, yb) if wb is None else self.loss.forward(z, yb, sample_weight=wb)
        if not math.isfinite(J):
            at = "in train_on_batch" if where is None else f"at epoch {where[0] + 1}, step {where[1] + 1}"
            raise self._diverged(f"the loss became {J} {at}", xb, yb)
        correct = float(self.loss.correct(z, yb))
        self.net.backward(self.loss.backward(), need_input_grad=False)
        self.optimizer.step(params, grads, backup=self._backup)
        return J, correct

    def _check_last_update(self, epoch: int) -> None:
        """Once per epoch: the epoch's last update may have diverged with no later loss to notice.

        Its weights must be finite and give finite outputs on the epoch's last batch.
        """
        if getattr(self, "_last_batch", None) is None:  # interrupted before a step
            return
        xb, yb = self._last_batch
        self._last_batch = None  # not kept alive after fit
        if np.isfinite(self.net.flat_params).all() and self._outputs_finite(xb, yb):
            return
        raise self._diverged(f"the last update of epoch {epoch + 1} made the weights or outputs NaN or inf", xb, yb)

    def _diverged(self, what: str, xb: np.ndarray, yb: np.ndarray) -> DivergenceError:
        """Put back weights whose outputs on the batch that diverged are finite; the error to raise.

        Finite weights are not enough: weights of 1e29 are finite, yet every output
        they give is NaN.  Tried in turn: the weights from before the last update, then
        those the epoch started from (the last completed epoch's, or fit's start).
        """
        candidates = [(self._backup[0], "the weights from before the last update"),
                      (self._epoch_start, self._epoch_start_is)]  # fmt: skip
        for weights, label in candidates:
            if np.isfinite(weights).all():
                self.net.flat_params[...] = weights
                if self._outputs_finite(xb, yb):
                    kept = f"the model keeps {label}, whose outputs on that batch are finite"
                    break
        else:
            self.net.flat_params[...] = self._epoch_start
            kept = (
                f"the model keeps {self._epoch_start_is}, but even they give NaN or inf on that batch: "
                "are the inputs scaled (e.g. pixels / 255)?"
            )
        self._last_batch = None
        return DivergenceError(f"training diverged: {what}; {kept} (try a smaller learning rate)")

    def _outputs_finite(self, xb: np.ndarray, yb: np.ndarray) -> bool:
        """Does the network (in inference mode) give finite outputs and loss on this batch?"""
        hooks, self.net._hooks = self.net._hooks, None  # an internal check: hooks and traces do not see it
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                z = self.net.forward(xb)
                return bool(np.isfinite(z).all()) and math.isfinite(self.loss.forward(z, yb))
        finally:
            self.net._hooks = hooks

    def train_on_batch(
        self,
        x: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        class_weight: dict[int, float] | None = None,
        return_dict: bool = False,
    ) -> tuple[float, float] | dict[str, float]:
        """One training step on exactly this batch: the step ``fit`` takes (bit for bit), nothing else.

        x: (m, *input_shape), y: (m,) labels or one-hot rows.  Returns (loss, accuracy)
        of the batch as computed before the update (accuracy NaN for regression), or
        ``{"loss": ..., "accuracy": ...}`` with ``return_dict=True``.  Raises
        DivergenceError (keeping the weights from before the step) when the loss or the
        updated weights are NaN or inf.
        """
        x, y = self._check_xy(x, y)
        weights = combined_weights(sample_weight, class_weight, y, self.net.n_outputs, self.loss)
        check_output_for_loss(self.net, self.loss)
        check_input_scale(x, self.net)
        x = self._as_input(x)
        # What a divergence falls back on (see _diverged): the weights from before this step,
        # else those from before the previous train_on_batch (a series of calls has no epochs).
        self._backup = [self.net.flat_params.copy()]
        previous = self._previous_step
        if previous is not None and previous.shape == self._backup[0].shape:
            self._epoch_start, self._epoch_start_is = previous, "the weights from before the previous train_on_batch"
        else:
            self._epoch_start, self._epoch_start_is = self._backup[0], "the weights from before this train_on_batch"
        params, grads = [self.net.flat_params], [self.net.flat_grads]
        with np.errstate(over="ignore", invalid="ignore"):
            loss, correct = self._train_step(x, y, params, grads, None, weights)
            if not np.isfinite(self.net.flat_params).all():
                raise self._diverged("the update made the weights NaN or inf in train_on_batch", x, y)
        self._last_batch = None  # not kept alive after the step
        self._previous_step = self._backup[0]
        return result(loss, correct / len(x), return_dict)

    def trace(self) -> Any:
        """``with model.trace() as t:`` records one step's per-layer arrays (see ``layerwise.trace``)."""
        return self.net.trace()

    # -- helpers ----------------------------------------------------------------------
    def _check_xy(self, x: Any, y: Any, names: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, np.ndarray]:
        x = check_features(x, self.net.input_shape, names[0])
        y = check_targets(y, len(x), self.net.n_outputs, self.loss, names[1])
        return x, y

    def _as_input(self, x: np.ndarray) -> np.ndarray:
        """Cast x to the network's dtype once, unless its first layer rescales raw data itself."""
        if x.dtype == self.net.dtype or self.net.layers[0].casts_input:
            return x
        return x.astype(self.net.dtype)

    def save(self, path: str | Path) -> None:
        """Write weights, architecture, loss, optimizer state and training config to one .npz (atomic)."""
        from .io import save_model

        save_model(self, path)

    def summary(self) -> str:
        """The network's table, loss and optimizer; printable (names from a file cannot reach the terminal raw)."""
        text = self.net.summary() + f"\nLoss: {type(self.loss).__name__}   Optimizer: {self.optimizer!r}"
        return printable(text)

    def __repr__(self) -> str:
        return printable(f"Model({self.net!r}, loss={type(self.loss).__name__}, optimizer={self.optimizer!r})")
