"""Finite-difference gradient checks: trust, but verify, every backward pass.

``gradcheck(target, x, y)`` perturbs each input and parameter entry by ±eps,
takes central differences (f(θ+eps) − f(θ−eps)) / 2eps in float64, and compares
them with the analytic gradients from ``backward``.  The error reported per
array is  max|analytic − numeric| / max(max|analytic|, max|numeric|): the worst
entry's error relative to the gradient's scale, so that tiny entries cannot blow it up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import DTypeError, InputError
from .layers import Layer
from .losses import Loss
from .network import Sequential


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every entry of ``array`` (in place)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = f()
        flat[i] = saved - eps
        f_minus = f()
        flat[i] = saved
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(np.abs(analytic).max(initial=0), np.abs(numeric).max(initial=0))
    return 0.0 if scale == 0 else float(np.abs(analytic - numeric).max() / scale)


def gradcheck(
    target: Layer | Loss | Sequential,
    x: np.ndarray,
    y: np.ndarray | None = None,
    loss: Loss | None = None,
    eps: float = 1e-6,
    seed: int = 0,
    training: bool = False,
) -> dict[str, float]:
    """Max relative error of each analytic gradient: ``{"x": ..., "0.W": ..., "3.gamma": ...}``.

    target: a layer, a loss (x are its logits z and y its targets), or a network.
    For a layer or network the scalar checked is ``loss(out, y)`` when ``loss`` is
    given, else ``sum(out * R)`` for a fixed random R (any dJ/dout then works).
    Every trainable parameter is checked (Dense/Conv2D ``W``, ``b``; BatchNorm ``gamma``, ``beta``).
    Parameters must be float64 (build with ``dtype=np.float64``).

    training: run every forward pass in training mode (Dropout drops, BatchNorm uses
    batch statistics).  Random layers then draw the same mask in every pass: each
    one's ``rng`` is put back to the same state before each forward, so the function
    differentiated is deterministic.  Buffers (running statistics) and generator
    states are restored afterwards, so a check leaves the target as it found it.
    """
    x = np.array(x, dtype=np.float64)
    if isinstance(target, Loss):
        if y is None:
            raise InputError("y: a loss needs targets to check against, got None")

        def f() -> float:
            return target.forward(x, y)

        f()
        return {"x": relative_error(target.backward(), numerical_gradient(f, x, eps))}

    if not isinstance(target, (Layer, Sequential)):
        raise DTypeError(f"target: expected a Layer, Loss or Sequential, got {type(target).__name__}")
    if isinstance(target, Layer) and not target.built:  # as Keras builds on the first call; float64 to check
        if target.dtype is None:
            target.dtype = np.dtype(np.float64)
        target.build(x.shape[1:])
    layers = target.layers if isinstance(target, Sequential) else [target]
    params = dict(target.named_parameters()) if isinstance(target, Sequential) else dict(target.params)
    grads = dict(zip(params, target.gradients(), strict=True)) if isinstance(target, Sequential) else dict(target.grads)
    for name, p in params.items():
        if p.dtype != np.float64:
            raise DTypeError(f"{name}: gradcheck needs float64 parameters, got {p.dtype} (use dtype=np.float64)")
    # Training mode with random layers: one fixed generator state per layer, restored before every pass.
    for layer in layers:
        if training and layer.uses_rng and layer.rng is None:
            layer.rng = np.random.default_rng(seed)
    rngs = [layer.rng for layer in layers if layer.uses_rng and layer.rng is not None]
    rng_states = [rng.bit_generator.state for rng in rngs]
    # Training-mode passes move BatchNorm's running statistics; keep them to put back.
    saved_buffers = [{k: b.copy() for k, b in layer.buffers.items()} for layer in layers]

    def run() -> np.ndarray:
        for rng, state in zip(rngs, rng_states, strict=True):
            rng.bit_generator.state = state
        return target.forward(x.copy(), training=training)  # copy: in-place layers may overwrite their input

    try:
        probe = np.random.default_rng(seed).standard_normal(np.shape(run()))

        def f() -> float:
            out = run()
            return loss.forward(out, y) if loss is not None else float(np.sum(out * probe))

        out = run()
        if loss is not None:
            loss.forward(out, y)
            dout = loss.backward()
        else:
            dout = probe.copy()
        dx = np.array(target.backward(dout))  # a copy: a layer may reuse its buffers in the next pass
        analytic = {name: g.copy() for name, g in grads.items()}
        errors = {"x": relative_error(dx, numerical_gradient(f, x, eps))}
        for name, p in params.items():
            errors[name] = relative_error(analytic[name], numerical_gradient(f, p, eps))
    finally:
        for rng, state in zip(rngs, rng_states, strict=True):
            rng.bit_generator.state = state
        for layer, saved in zip(layers, saved_buffers, strict=True):
            for k, b in saved.items():
                layer.buffers[k][...] = b
    return errors
