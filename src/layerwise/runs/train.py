"""``train_run(config, out_dir)``: one training run, as ``layerwise train``, ``reproduce`` and ``sweep`` do it.

Deterministic from its config, writes only inside its own folder (every file
atomically), holds the folder's lock while it writes, and can be cancelled
cooperatively (``CancelToken``) and resumed from its checkpoint bit-identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..callbacks import Callback, LearningRateScheduler
from ..errors import ConfigError, ModelFileError, RunFolderError
from .config import RunConfig
from .folder import RunFolder
from .outputs import write_outputs

Log = Callable[..., None]


class CancelToken:
    """Ask a running ``train_run`` to stop after its current step (and write a checkpoint).

    Safe to call from a signal handler or another thread: it only sets flags.  A
    request made before the model exists takes effect at the first step.
    """

    def __init__(self) -> None:
        self.requested = False
        self.reason: str | None = None
        self._model: Any = None

    def request(self, reason: str = "cancelled") -> None:
        if not self.requested:
            self.reason = reason
        self.requested = True
        if self._model is not None:
            self._model.interrupt_requested = True

    def attach(self, model: Any) -> None:
        self._model = model
        if self.requested:
            model.interrupt_requested = True


@dataclass
class RunResult:
    """What a run ended with; ``status`` is ``finished`` or ``interrupted`` (a checkpoint holds the rest)."""

    status: str
    out_dir: str
    config: RunConfig
    epochs_run: int = 0
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def report(self, total_seconds: float | None = None) -> str:
        """What ``layerwise train`` prints at the end: the epochs, the time, and loss/accuracy per split."""
        m = self.metrics
        total = f", {total_seconds:.1f} s in all" if total_seconds is not None else ""
        lines = [f"Finished {self.epochs_run} epochs: {self.seconds:.1f} s of training{total}",
                 f"{'':12}{'loss':>9}{'accuracy':>11}"]  # fmt: skip
        for split, label in (("train", "train"), ("val", "validation"), ("test", "test")):
            if f"{split}_loss" in m:
                lines.append(f"{label:12}{m[f'{split}_loss']:9.4f}{100 * m[f'{split}_accuracy']:10.2f}%")
        out = Path(self.out_dir)
        plots = ("learning_curves.png", "confusion_matrix.png", "weights.png", "filters.png")
        written = ["model.npz", "metrics.json", "config.json", *(p for p in plots if (out / p).exists())]
        lines.append(f"Wrote {', '.join(written)} to {out}")
        return "\n".join(lines)

    def as_row(self) -> dict[str, Any]:
        keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
        return {"status": self.status, "epochs": self.epochs_run, "seconds": round(self.seconds, 3)} | {
            k: self.metrics.get(k) for k in keys
        }


def train_run(
    config: RunConfig | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    verbose: int = 1,
    cancel: CancelToken | None = None,
    log: Log = print,
) -> RunResult:
    """Train ``config`` into ``out_dir``; with ``resume``, continue the run there (``config`` may be None).

    A finished run can be extended: ``resume=True`` with a config whose only change
    is a larger ``epochs``.  Refuses (RunFolderError) to write into a folder that
    holds another run, unless ``overwrite``.
    """
    folder = RunFolder(out_dir)
    fresh = None
    if not resume and config is not None:  # a new run: check the data and the network before touching the folder
        data = load_run_data(config, data_dir)
        fresh = build_model(config, data.x_train.shape[1:], data.n_classes)
    with folder.lock():
        config, model, resume_state = _prepare(folder, config, resume, overwrite)
        if model is None:
            model = fresh
            if len(model.net.input_shape) == 3:  # the shapes a CNN string gives are worth seeing
                log(model.net.summary(), flush=True)
                flatten = [i for i, layer in enumerate(model.net.layers) if type(layer).__name__ == "Flatten"]
                if flatten and "flatten" not in config.arch.lower():
                    log(f"Layer {flatten[0]} (Flatten) was put in automatically before the first Dense layer "
                        "after image layers.", flush=True)  # fmt: skip
        else:
            data = load_run_data(config, data_dir)
        run_info = {"run": config.to_dict(), "n_train": len(data.x_train)}
        if cancel is not None:
            cancel.attach(model)
        x, y, xv, yv = data.x_train, data.y_train, data.x_val, data.y_val
        where = f", resuming at epoch {resume_state['epoch'] + 1} step {resume_state['step']}" if resume_state else ""
        val = f" / {len(xv):,} validation" if xv is not None else ""
        log(
            f"Training {config.arch} on {config.dataset}: {len(x):,} train{val} samples, {config.epochs} epochs, "
            f"batch {config.batch_size}, {model.optimizer!r}, seed {config.seed}{where}",
            flush=True,
        )
        callbacks: list[Callback] = [_EpochCheckpoint(folder, checkpoint_every, config.epochs, run_info)]
        if config.schedule != "constant":
            callbacks.append(LearningRateScheduler(_schedule(config)))
        if verbose:
            callbacks.append(_EpochReport(log))
        history = model.fit(
            x,
            y,
            epochs=config.epochs,
            batch_size=config.batch_size,
            validation_data=(xv, yv) if xv is not None else None,
            callbacks=callbacks,
            verbose=1 if verbose > 1 else 0,
            resume=resume_state,
        )
        seconds = float(sum(history.history.get("seconds", [])))
        epochs_run = len(history.history.get("loss", []))
        model.train_config.update(run_info)  # fit starts a fresh train_config
        if model.train_state["epoch"] < config.epochs:  # interrupted: keep what we have
            write_checkpoint(model, folder.checkpoint)
            return RunResult("interrupted", str(folder.path), config, epochs_run, seconds)
        metrics = write_outputs(folder, model, config, data, history, resumed=resume)
        folder.checkpoint.unlink(missing_ok=True)  # the run is complete: model.npz supersedes it
        return RunResult("finished", str(folder.path), config, epochs_run, seconds, metrics)


def _prepare(
    folder: RunFolder, config: RunConfig | None, resume: bool, overwrite: bool
) -> tuple[RunConfig, Any, dict[str, Any] | None]:
    """The config to run, and for a resumed run the model and its training state."""
    from ..io import load_model

    state = folder.state
    if not resume:
        if config is None:
            raise RunFolderError("config: a new run needs a RunConfig")
        if state in ("unfinished", "finished") and not overwrite:
            hint = (
                f"continue it with 'layerwise train --resume {folder.path}'"
                if state == "unfinished"
                else "pass --overwrite to replace it, or pick another --out"
            )
            what = "an unfinished" if state == "unfinished" else "a finished"
            raise RunFolderError(f"{folder.path}: holds {what} run; {hint}")
        folder.checkpoint.unlink(missing_ok=True)
        from ..atomic import atomic_write

        with atomic_write(folder.config) as f:
            f.write((_json(config.to_dict()) + "\n").encode())
        return config, None, None

    if state not in ("unfinished", "finished"):
        raise RunFolderError(f"--resume {folder.path}: no {folder.checkpoint.name} or finished run to continue")
    try:
        saved = RunConfig.from_json(folder.config.read_text(encoding="utf-8", errors="replace"), str(folder.config))
    except FileNotFoundError:
        raise RunFolderError(f"--resume {folder.path}: no {folder.config.name}; not a layerwise run folder") from None
    if config is not None:
        changed = [d for d in config.differences(saved) if not d.startswith("epochs:")]
        if changed:
            raise RunFolderError(
                f"--resume {folder.path}: the options differ from the run's own ({changed[0]}); "
                "--resume continues the run with its configuration (only --epochs may grow)"
            )
        if config.epochs < saved.epochs:
            raise RunFolderError(f"--epochs {config.epochs}: the run already has {saved.epochs}; it can only grow")
    run = config or saved
    source = folder.checkpoint if state == "unfinished" else folder.model
    model = load_model(source)
    stored = model.train_config.get("run")
    try:
        stored_config = RunConfig.from_dict(stored, f"{source} (train_config.run)")
    except Exception as e:  # noqa: BLE001 - any problem with the stored config means: not this run's file
        raise RunFolderError(f"{source}: not a checkpoint of this run ({e})") from None
    differs = [d for d in saved.differences(stored_config)]
    if differs:
        raise RunFolderError(f"{source}: written by a different run than {folder.config.name} says ({differs[0]})")
    resume_state = model.train_state
    if not isinstance(resume_state, dict) or "epoch" not in resume_state:
        raise ModelFileError(f"{source}: holds no training state to resume from")
    if state == "finished" and run.epochs <= resume_state["epoch"]:
        raise RunFolderError(
            f"--resume {folder.path}: the run has finished its {resume_state['epoch']} epochs; "
            "give a larger --epochs to train it further"
        )
    if run.epochs != saved.epochs:
        from ..atomic import atomic_write

        with atomic_write(folder.config) as f:
            f.write((_json(run.to_dict()) + "\n").encode())
    return run, model, resume_state


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2)


def _schedule(config: RunConfig) -> Callable[[int], float]:
    from ..schedules import CosineDecay, StepDecay

    if config.schedule == "cosine":
        return CosineDecay(config.lr, config.epochs, config.lr / 100)
    return StepDecay(config.lr, max(1, math.ceil(config.epochs / 3)), 0.1)


class _EpochReport(Callback):
    """After each epoch: the validation loss/accuracy, below the epoch's progress bar."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        parts = [f"epoch {epoch + 1}: loss {logs.get('loss', math.nan):.4f}"]
        if "val_loss" in logs:
            parts.append(f"validation loss {logs['val_loss']:.4f}")
        if "val_accuracy" in logs:
            parts.append(f"validation accuracy {100 * logs['val_accuracy']:.2f}%")
        self.log("  " + ", ".join(parts), flush=True)


class _EpochCheckpoint(Callback):
    """Write the checkpoint (atomically) every ``every`` epochs, except after the last one."""

    def __init__(self, folder: RunFolder, every: int, epochs: int, run_info: dict[str, Any]) -> None:
        self.folder, self.every, self.epochs, self.run_info = folder, every, epochs, run_info

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.every and (epoch + 1) % self.every == 0 and epoch + 1 < self.epochs:
            self.model.train_config.update(self.run_info)
            write_checkpoint(self.model, self.folder.checkpoint)


def write_checkpoint(model: Any, path: Path) -> None:
    """The model with its training state and history: what ``--resume`` continues from."""
    from ..io import save_model

    history = plain_history(model.history.history) if model.history is not None else {}
    save_model(model, path, train_state={**model.train_state, "history": history})


def plain_history(history: dict[str, list[Any]]) -> dict[str, list[float]]:
    return {k: [float(v) for v in values] for k, values in history.items()}


# -- data and model -------------------------------------------------------------------
@dataclass
class RunData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10


def load_run_data(config: RunConfig, data_dir: str | Path | None) -> RunData:
    """The data set as uint8 images (n, 1, H, W) for image networks or rows (n, H·W) for MLPs; the last
    ``config.validation`` training samples (after ``limit``) held out."""
    from ..arch import input_rank
    from ..data import load

    (x, y), (xt, yt) = load(config.dataset, data_dir)
    if input_rank(config.arch) == 3:
        x, xt = x.reshape(len(x), 1, *x.shape[1:]), xt.reshape(len(xt), 1, *xt.shape[1:])
    else:
        x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    if config.limit is not None:
        x, y = x[: config.limit], y[: config.limit]
    xv = yv = None
    held_out = min(5000, len(x) // 10) if config.validation is None else config.validation
    if held_out:
        if held_out >= len(x):
            raise RunFolderError(
                f"--validation {config.validation}: the training set has only {len(x)} samples; hold out fewer"
            )
        x, xv = x[:-held_out], x[-held_out:]
        y, yv = y[:-held_out], y[-held_out:]
    return RunData(x, y, xv, yv, xt, yt, int(max(y.max(), yt.max())) + 1)


def build_model(config: RunConfig, input_shape: tuple[int, ...], n_classes: int = 10) -> Any:
    """A fresh Model for ``config`` on samples of ``input_shape``; its output must be one logit per class."""
    from ..arch import build_network
    from ..model import Model
    from ..optim import get_optimizer

    kwargs: dict[str, Any] = {"lr": config.lr}
    if config.weight_decay:
        kwargs["weight_decay"] = config.weight_decay
    if config.momentum:
        kwargs["momentum"] = config.momentum
    optimizer = get_optimizer(config.optimizer, **kwargs)
    net = build_network(config.arch, input_shape, seed=config.seed, input_scale=1 / 255, init=config.init)
    if net.output_shape != (n_classes,):
        shown = "x".join(map(str, net.output_shape))
        raise ConfigError(
            f"arch: the network gives {shown} outputs per sample but {config.dataset} has {n_classes} classes; "
            "end with (10,Linear)"
        )
    return Model(net, loss=config.loss, optimizer=optimizer, seed=config.seed)
