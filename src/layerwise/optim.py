"""Optimizers: ``opt.step(params, grads)`` updates each parameter array in place.

Semantics follow ``torch.optim`` exactly (the tests compare step for step).
State (momentum, Adam's moments) is allocated once, on the first step, with the
parameters' shapes; every later step works in place through two preallocated
scratch buffers per parameter, so a step allocates no parameter-sized arrays.
A network hands the optimizer its single contiguous ``flat_params`` buffer,
which turns the update into a few whole-buffer NumPy operations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import kernels
from .errors import ConfigError, ModelFileError


class Optimizer:
    """Base class.  Subclasses list their per-parameter state arrays in ``slots``."""

    slots: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        _check_number("lr", lr, low=0.0, low_inclusive=False)
        _check_number("weight_decay", weight_decay, low=0.0)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.iterations = 0  # completed steps; Adam's bias correction uses it
        self.state: dict[str, list[np.ndarray]] = {}
        self._scratch: list[np.ndarray] = []
        # A compiled single-pass kernel (layerwise.kernels) where Numba is installed;
        # set False to force the NumPy reference path.
        self.use_kernels = kernels.numba_enabled()

    def step(
        self,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        backup: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Update every ``params[i]`` in place from ``grads[i]``.

        backup: arrays like params that receive the weights from before the update
        (``Model`` keeps them to undo a step that overflowed).
        """
        if not self._scratch:
            self._allocate(params)
        self.iterations += 1
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            old = None if backup is None else backup[i]
            if self.use_kernels and self._kernel_update(i, p, g, old):
                continue
            if old is not None:
                np.copyto(old, p)
            self._update(i, p, g, *self._scratch[i])

    def _kernel_update(self, i: int, p: np.ndarray, g: np.ndarray, backup: np.ndarray | None) -> bool:
        """Run the compiled kernel for this update if there is one; False means use NumPy."""
        return False

    def _allocate(self, params: Sequence[np.ndarray]) -> None:
        # Two scratch buffers: one may hold the weight-decayed gradient while the other works.
        self._scratch = [(np.empty_like(p), np.empty_like(p)) for p in params]
        for slot in self.slots:
            if slot not in self.state:  # may already hold a loaded state
                self.state[slot] = [np.zeros_like(p) for p in params]

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, tmp2: np.ndarray) -> None:
        raise NotImplementedError

    def _decayed_grad(self, p: np.ndarray, g: np.ndarray, tmp: np.ndarray) -> np.ndarray:
        """g + weight_decay·p (L2 penalty, as torch adds it to the gradient) in ``tmp``; g if no decay."""
        if not self.weight_decay:
            return g
        np.multiply(p, self.weight_decay, out=tmp)
        tmp += g
        return tmp

    # -- saving and resuming ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def state_dict(self) -> dict[str, Any]:
        """``{"name", "config", "iterations", "slots": {slot: [arrays]}}``: all that a resume needs."""
        return {
            "name": type(self).__name__,
            "config": self.config(),
            "iterations": self.iterations,
            "slots": {k: [a.copy() for a in v] for k, v in self.state.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != type(self).__name__:
            raise ModelFileError(f"optimizer state: is for {state.get('name')!r}, not {type(self).__name__}")
        if set(state["slots"]) - set(self.slots):
            raise ModelFileError(f"optimizer state: unexpected slots {sorted(set(state['slots']) - set(self.slots))}")
        for key, value in state["config"].items():
            setattr(self, key, value)
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ModelFileError(f"optimizer state: iterations must be an integer >= 0, got {iterations!r}")
        self.iterations = int(iterations)
        self.state = {k: [np.array(a) for a in v] for k, v in state["slots"].items()}
        self._scratch = []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """p −= lr·g, with optional momentum (v = μv + g) and Nesterov (step along g + μv)."""

    slots = ("momentum_buffer",)

    def __init__(
        self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay)
        _check_number("momentum", momentum, low=0.0, high=1.0, high_inclusive=False)
        if nesterov and momentum == 0:
            raise ConfigError("nesterov: needs momentum > 0, got momentum=0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        if not self.momentum:
            self.slots = ()

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, tmp2: np.ndarray) -> None:
        g = self._decayed_grad(p, g, tmp)
        direction = g
        if self.momentum:
            v = self.state["momentum_buffer"][i]
            if self.iterations == 1:  # torch starts the buffer at g, not at 0
                v[...] = g
            else:
                v *= self.momentum
                v += g
            direction = v
            if self.nesterov:  # look ahead: g + μ·v
                np.multiply(v, self.momentum, out=tmp2)
                tmp2 += g
                direction = tmp2
        np.multiply(direction, self.lr, out=tmp2)
        p -= tmp2

    def _kernel_update(self, i: int, p: np.ndarray, g: np.ndarray, backup: np.ndarray | None) -> bool:
        if not (p.flags.c_contiguous and g.flags.c_contiguous):
            return False
        scalar = p.dtype.type
        buf = self.state["momentum_buffer"][i] if self.momentum else self._scratch[i][1]
        kernels.sgd_kernel(
            p.reshape(-1),
            g.reshape(-1),
            buf.reshape(-1),
            (backup if backup is not None else self._scratch[i][0]).reshape(-1),
            scalar(self.lr),
            scalar(self.momentum),
            self.nesterov,
            scalar(self.weight_decay),
            self.iterations == 1,
            *_momentum_limits(p.dtype, float(self.momentum)),
        )
        return True

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), in torch's arithmetic order.

    m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
    p −= lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
    """

    slots = ("m", "v")
    decoupled = False  # AdamW decays the weights directly instead of the gradient

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        for k, beta in enumerate(betas):
            _check_number(f"betas[{k}]", beta, low=0.0, high=1.0, high_inclusive=False)
        _check_number("eps", eps, low=0.0)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, tmp2: np.ndarray) -> None:
        beta1, beta2 = self.betas
        m, v = self.state["m"][i], self.state["v"][i]
        if self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        else:
            g = self._decayed_grad(p, g, tmp)
        # m += (1 − β1)(g − m) is β1·m + (1 − β1)·g with one scratch buffer (torch's lerp).
        np.subtract(g, m, out=tmp2)
        tmp2 *= 1 - beta1
        m += tmp2
        v *= beta2
        np.multiply(g, g, out=tmp2)
        tmp2 *= 1 - beta2
        v += tmp2
        t = self.iterations
        np.sqrt(v, out=tmp2)
        tmp2 /= math.sqrt(1 - beta2**t)
        tmp2 += self.eps
        np.divide(m, tmp2, out=tmp2)
        tmp2 *= self.lr / (1 - beta1**t)
        p -= tmp2

    def _kernel_update(self, i: int, p: np.ndarray, g: np.ndarray, backup: np.ndarray | None) -> bool:
        if not (p.flags.c_contiguous and g.flags.c_contiguous):
            return False
        beta1, beta2 = self.betas
        t = self.iterations
        scalar = p.dtype.type  # float32 arithmetic for float32 weights, as in NumPy
        l2, decay = (0.0, 1 - self.lr * self.weight_decay) if self.decoupled else (self.weight_decay, 1.0)
        kernels.adam_kernel(
            p.reshape(-1),
            g.reshape(-1),
            self.state["m"][i].reshape(-1),
            self.state["v"][i].reshape(-1),
            (backup if backup is not None else self._scratch[i][0]).reshape(-1),
            scalar(1 - beta1),
            scalar(beta2),
            scalar(1 - beta2),
            scalar(self.lr / (1 - beta1**t)),
            scalar(math.sqrt(1 - beta2**t)),
            scalar(self.eps),
            scalar(l2),
            scalar(decay),
            *_subnormal_limits(p.dtype, float(beta1), float(beta2)),
        )
        return True

    def config(self) -> dict[str, Any]:
        return {**super().config(), "betas": list(self.betas), "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.betas = tuple(self.betas)


@functools.lru_cache(maxsize=32)
def _momentum_limits(dtype: np.dtype, momentum: float) -> tuple[Any, ...]:
    """SGD kernel's tiny_b, zero: below tiny_b, momentum·b would be subnormal."""
    scalar = np.dtype(dtype).type
    return scalar(float(np.finfo(dtype).tiny) / max(momentum, 1e-3)), scalar(0)


@functools.lru_cache(maxsize=32)
def _subnormal_limits(dtype: np.dtype, beta1: float, beta2: float) -> tuple[Any, ...]:
    """Adam kernel's tiny_m, tiny_v, tiny_g, zero: below them the moments' products would be subnormal."""
    tiny, scalar = float(np.finfo(dtype).tiny), np.dtype(dtype).type
    factor_m = max(min(beta1, 1 - beta1), 1e-3)
    return (scalar(tiny / factor_m), scalar(tiny / max(beta2, 1e-3)), scalar(math.sqrt(tiny / max(1 - beta2, 1e-12))),
            scalar(0))  # fmt: skip


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p ·= 1 − lr·wd before the step."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay)


class RMSProp(Optimizer):
    """v = α·v + (1−α)·g²;  p −= lr·g / (sqrt(v) + eps)   (torch.optim.RMSprop, no momentum)."""

    slots = ("square_avg",)

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        _check_number("alpha", alpha, low=0.0, high=1.0)
        _check_number("eps", eps, low=0.0)
        self.alpha = float(alpha)
        self.eps = float(eps)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, tmp2: np.ndarray) -> None:
        g = self._decayed_grad(p, g, tmp)
        v = self.state["square_avg"][i]
        v *= self.alpha
        np.multiply(g, g, out=tmp2)
        tmp2 *= 1 - self.alpha
        v += tmp2
        np.sqrt(v, out=tmp2)
        tmp2 += self.eps
        np.divide(g, tmp2, out=tmp2)
        tmp2 *= self.lr
        p -= tmp2

    def config(self) -> dict[str, Any]:
        return {**super().config(), "alpha": self.alpha, "eps": self.eps}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSProp,
}


def get_optimizer(optimizer: str | Optimizer | type[Optimizer], **kwargs: Any) -> Optimizer:
    """An optimizer from a case-insensitive name (``"SGD"``, ``"ADAM"``...), class or instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    cls = None
    if isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
        cls = optimizer
    elif isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        cls = OPTIMIZERS[optimizer.lower()]
    if cls is not None:
        try:
            return cls(**kwargs)
        except TypeError as e:  # an unknown keyword: name it as a configuration error
            raise ConfigError(f"optimizer {cls.__name__}: {e}") from None
    raise ConfigError(
        f"optimizer: expected one of {sorted(c.__name__ for c in OPTIMIZERS.values())} "
        f"(any case) or an Optimizer, got {optimizer!r}"
    )


def _check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ConfigError unless ``value`` is a finite real number in the given range."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        lo = "" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        hi = "" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        expected = f"a finite number in {lo or '(-inf'}, {hi or 'inf)'}"
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")
