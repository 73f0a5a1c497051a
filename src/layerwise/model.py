"""``Model``: a network, a loss and an optimizer, with Keras' ``fit`` / ``evaluate`` / ``predict``.

One training step is the seed's recipe, in four lines of ``_train_step``:
forward, loss, backward, update.  Everything else here is bookkeeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .callbacks import Callback, History, check_callbacks
from .errors import ConfigError, DivergenceError, NonFiniteError, printable
from .losses import CrossEntropyLogit, Logistic, get_loss, softmax
from .network import Sequential
from .optim import Optimizer, get_optimizer
from .validation import check_features, check_positive_int, check_targets, train_state_problem


class Model:
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
    ) -> History:
        """Train for ``epochs`` passes over x: (n, *input_shape) with targets y (labels (n,) or one-hot rows).

        The epoch's ``loss`` and ``accuracy`` are the sample-weighted means over its
        batches, each computed before that batch's update (as Keras reports them).
        ``resume`` takes ``model.train_state`` from a checkpoint and continues exactly
        where it stopped.  Returns the ``History`` (also kept as ``model.history``).
        """
        x, y = self._check_xy(x, y)
        callbacks = check_callbacks(callbacks)
        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ConfigError("validation_data: expected a pair (x_val, y_val)")
            validation_data = self._check_xy(*validation_data, names=("validation_data[0]", "validation_data[1]"))
        if resume is not None and (problem := train_state_problem(resume)):
            raise ConfigError(f"resume: not a training state from a checkpoint: {problem}")
        x = self._as_input(x)
        history = History()
        if resume is not None:
            history.history = {k: list(v) for k, v in resume.get("history", {}).items()}
            history.epoch = list(range(len(next(iter(history.history.values()), []))))
        history.params = {"epochs": epochs, "batch_size": batch_size, "samples": len(x)}
        self.history = history  # callbacks (checkpoints) may read it during training
        callbacks = [history, *callbacks]
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
            with np.errstate(over="ignore", invalid="ignore"):
                logs = self._train_epoch(x, y, epoch, epochs, batch_size, shuffle, verbose, resume)
                self._check_last_update(epoch)
            resume = None
            if logs is None:  # interrupted: train_state holds where we are
                break
            if validation_data is not None:
                val_loss, val_acc = self.evaluate(*validation_data, _checked=True, _name="validation_data[0]")
                logs["val_loss"] = val_loss
                if not math.isnan(val_acc):
                    logs["val_accuracy"] = val_acc
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
        epoch: int,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        verbose: int,
        resume: dict[str, Any] | None,
    ) -> dict[str, float] | None:
        """One pass over the data; returns the epoch's logs, or None when interrupted."""
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
        bar = _progress_bar(n, epoch, epochs, totals["seen"]) if verbose == 1 else None
        refresh = max(1, n_steps // 50)
        started = time.perf_counter()
        params, grads = [self.net.flat_params], [self.net.flat_grads]
        for step in range(first_step, n_steps):
            lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
            if order is None:
                xb, yb = x[lo:hi], y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = x[idx], y[idx]
            batch_loss, batch_correct = self._train_step(xb, yb, params, grads, epoch, step)
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
                if bar is not None:
                    bar.close()
                return None
        if bar is not None:
            bar.close()
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
        self, xb: np.ndarray, yb: np.ndarray, params: list, grads: list, epoch: int, step: int
    ) -> tuple[float, float]:
        """forward, loss, backward, update: returns (batch loss, correct predictions)."""
        self._last_batch = (xb, yb)
        z = self.net.forward(xb, training=True)
        J = self.loss.forward(z, yb)
        if not math.isfinite(J):
            raise self._diverged(f"the loss became {J} at epoch {epoch + 1}, step {step + 1}", xb, yb)
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
        with np.errstate(over="ignore", invalid="ignore"):
            z = self.net.forward(xb)
            return bool(np.isfinite(z).all()) and math.isfinite(self.loss.forward(z, yb))

    # -- inference --------------------------------------------------------------------
    def evaluate(
        self, x: np.ndarray, y: np.ndarray, batch_size: int = 4096, _checked: bool = False, _name: str = "x"
    ) -> tuple[float, float]:
        """(mean loss, accuracy) over x, y; accuracy is NaN where it means nothing (regression).

        Raises NonFiniteError (naming the first sample) when the network's outputs are NaN or inf.
        """
        name = _name
        if not _checked:
            x, y = self._check_xy(x, y)
        batch_size = check_positive_int("batch_size", batch_size)
        total_loss, correct = 0.0, 0.0
        for lo in range(0, len(x), batch_size):
            z = self._forward(x[lo : lo + batch_size], lo, name)
            yb = y[lo : lo + batch_size]
            total_loss += self.loss.forward(z, yb) * len(yb)
            correct += self.loss.correct(z, yb)
        return float(total_loss / len(x)), float(correct / len(x))

    def predict_logits(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Raw network outputs: (n, *output_shape), in inference mode.

        Raises NonFiniteError (naming the first sample) when an output is NaN or inf,
        e.g. for float64 input of 1e300 that overflows a float32 network.
        """
        x = check_features(x, self.net.input_shape)
        batch_size = check_positive_int("batch_size", batch_size)
        return np.concatenate([self._forward(x[lo : lo + batch_size], lo) for lo in range(0, len(x), batch_size)])

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Class probabilities: softmax of the logits (n, classes); for the logistic loss P(y=1): (n,)."""
        z = self.predict_logits(x, batch_size)
        if isinstance(self.loss, CrossEntropyLogit):
            return softmax(z, axis=1)
        if isinstance(self.loss, Logistic):
            return 0.5 * (1 + np.tanh(0.5 * z[:, 0]))
        return z

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Predicted labels (n,) for classification losses, raw outputs for regression."""
        z = self.predict_logits(x, batch_size)
        if isinstance(self.loss, CrossEntropyLogit):
            return z.argmax(axis=1)
        if isinstance(self.loss, Logistic):
            return (z[:, 0] > 0).astype(np.intp)
        return z

    def _forward(self, xb: np.ndarray, offset: int = 0, name: str = "x") -> np.ndarray:
        """Inference on one batch (samples offset.. of ``name``); never a NaN or inf result."""
        with np.errstate(over="ignore", invalid="ignore"):  # overflow gets the clear error below
            z = self.net.forward(self._as_input(xb))
        if np.isfinite(z).all():
            return z
        row = int(np.flatnonzero(~np.isfinite(z.reshape(len(z), -1)).all(axis=1))[0])
        largest = float(np.abs(xb[row]).max())
        limit = float(np.finfo(self.net.dtype).max)
        why = (
            f"its values (up to {largest:.3g}) do not fit the network's {self.net.dtype.name} (max {limit:.3g})"
            if largest > limit
            else f"the network overflows on it (its largest |value| is {largest:.3g}; are the inputs scaled "
            "as in training, and are the weights finite?)"
        )
        raise NonFiniteError(f"{name}: the network's output for sample {offset + row} is NaN or inf: {why}")

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


def _progress_bar(total: int, epoch: int, epochs: int, initial: int) -> Any:
    """A tqdm bar counting samples (so it shows samples/s), or None without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but the core does not need it
        return None
    return tqdm(
        total=total,
        initial=initial,
        unit="samples",
        unit_scale=True,
        desc=f"Epoch {epoch + 1}/{epochs}",
        leave=True,
        dynamic_ncols=True,
    )
