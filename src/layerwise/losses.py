"""Losses: ``forward(z, y) -> J`` (mean over the batch) and ``backward() -> dJ/dz``.

z: (batch, n_out) network outputs (logits, not probabilities).  ``backward``
reuses what ``forward`` computed, as in the seed's ``crossEntropyLogit``.

Weighted losses: ``forward(z, y, sample_weight=w)`` with w: (batch,) non-negative
gives the weighted mean of the per-sample losses, J = Σ wᵢ·ℓᵢ / Σ wᵢ, and
``backward`` its gradient (wᵢ / Σ w)·∂ℓᵢ/∂z.  For cross-entropy with wᵢ = weight of
yᵢ's class this is exactly ``torch.nn.CrossEntropyLoss(weight=...)`` (reduction
"mean"); scaling every weight by the same factor changes nothing.  A batch whose
weights are all zero has J = 0 and a zero gradient.  (Keras divides by the batch
size instead of Σ w; the two agree when the weights average 1.)  ℓᵢ is the
per-sample loss of the unweighted form: for MSE the mean over the sample's outputs.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """p_j = e^{z_j} / Σ_k e^{z_k} along ``axis``; shifting by max(z) keeps e^z finite."""
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_jacobian(z: np.ndarray) -> np.ndarray:
    """The seed's Problem 1: J[i, j] = ∂p_j/∂z_i = p_j (δ_ij − p_i).

    z: (n,) -> (n, n), or z: (batch, n) -> (batch, n, n).
    """
    p = softmax(z, axis=-1)
    eye = np.eye(p.shape[-1], dtype=p.dtype)
    return p[..., None, :] * (eye - p[..., :, None])


def normalised_weights(sample_weight: np.ndarray, m: int, dtype: np.dtype) -> np.ndarray:
    """wᵢ / Σ w as (m,) in ``dtype`` (zeros when Σ w = 0): the factor of each sample's loss and gradient."""
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape != (m,):
        raise ConfigError(f"sample_weight: expected {m} weights (one per sample of the batch), got shape {w.shape}")
    total = w.sum()
    return (w / total if total > 0 else np.zeros(m)).astype(dtype, copy=False)


class Loss:
    """Base class.  ``doForward`` / ``doBackward`` are the seed's names for the same calls.

    A loss that supports weights takes ``forward(z, y, sample_weight=None)`` (see the module docstring).
    """

    def forward(self, z: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, z: np.ndarray, y: np.ndarray) -> float:
        return self.forward(z, y)

    def doForward(self, z: np.ndarray, y: np.ndarray) -> float:  # noqa: N802 (the seed's name)
        return self.forward(z, y)

    def doBackward(self, y: np.ndarray | None = None) -> np.ndarray:  # noqa: N802
        return self.backward()

    def correct(self, z: np.ndarray, y: np.ndarray) -> float:
        """How many rows of z predict their y (NaN where that means nothing, e.g. regression)."""
        return float("nan")

    def accuracy(self, z: np.ndarray, y: np.ndarray) -> float:
        """Fraction of rows of z whose prediction matches y (NaN where that means nothing)."""
        return self.correct(z, y) / len(z)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropyLogit(Loss):
    """Softmax + cross-entropy on logits: J = −(1/m) Σ_samples Σ_j y_j ln p_j, p = softmax(z).

    y: integer labels (batch,) or one-hot / probability rows (batch, n).
    dJ/dz = (p − y) / m: the seed's Problem 2, no Jacobian needed.
    ln p is computed as (z − max z) − ln Σ e^(z − max z), so huge logits stay finite.
    """

    def forward(self, z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        m = z.shape[0]
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        self.p = e
        self.p /= total
        self.y = y
        log_total = np.log(total)
        self.w = None if sample_weight is None else normalised_weights(sample_weight, m, z.dtype)
        if self.w is not None:  # Σ wᵢ ℓᵢ / Σ w
            per_sample = (
                log_total[:, 0] - shifted[np.arange(m), y]
                if y.ndim == 1
                else -np.sum(y * (shifted - log_total), axis=1)
            )
            return float(per_sample @ self.w)
        if y.ndim == 1:  # integer labels: pick ln p of the true class
            picked = shifted[np.arange(m), y]
            return float(np.sum(log_total[:, 0] - picked) / m)
        return float(-np.sum(y * (shifted - log_total)) / m)

    def backward(self) -> np.ndarray:
        m = self.p.shape[0]
        if self.y.ndim == 1:
            dz = self.p.copy()
            dz[np.arange(m), self.y] -= 1
        else:
            dz = self.p - self.y
        if getattr(self, "w", None) is not None:
            dz *= self.w[:, None]
        else:
            dz /= m
        return dz

    def correct(self, z: np.ndarray, y: np.ndarray) -> float:
        labels = y if y.ndim == 1 else y.argmax(axis=1)
        return np.count_nonzero(z.argmax(axis=1) == labels)


class Logistic(Loss):
    """Binary cross-entropy on one logit per sample: J = mean(softplus(z) − y·z).

    z, y: (batch,) or (batch, 1), y in [0, 1].  dJ/dz = (sigmoid(z) − y) / m.
    softplus(z) = max(z, 0) + ln(1 + e^−|z|) never overflows.
    """

    def forward(self, z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        y = y.reshape(z.shape)
        self.y = y
        self.p = 0.5 * (1 + np.tanh(0.5 * z))  # sigmoid without overflow
        softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
        self.w = None if sample_weight is None else _per_sample(normalised_weights(sample_weight, len(z), z.dtype), z)
        if self.w is not None:
            return float(np.sum((softplus - y * z) * self.w))
        return float(np.mean(softplus - y * z))

    def backward(self) -> np.ndarray:
        if getattr(self, "w", None) is not None:
            return (self.p - self.y) * self.w
        return (self.p - self.y) / self.p.shape[0]

    def correct(self, z: np.ndarray, y: np.ndarray) -> float:
        return np.count_nonzero((z.reshape(-1) > 0) == (y.reshape(-1) > 0.5))


class MSE(Loss):
    """Mean squared error over all elements (PyTorch's and Keras' convention): J = mean((z − y)²)."""

    def forward(self, z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        self.diff = z - y.reshape(z.shape)
        self.w = None
        if sample_weight is not None:  # ℓᵢ = the mean over sample i's outputs
            per_output = z.size // max(len(z), 1)
            self.w = _per_sample(normalised_weights(sample_weight, len(z), z.dtype), z) / z.dtype.type(per_output)
            return float(np.sum(self.diff * self.diff * self.w))
        return float(np.mean(self.diff * self.diff))

    def backward(self) -> np.ndarray:
        if getattr(self, "w", None) is not None:
            return self.diff * (2 * self.w)
        return self.diff * (2.0 / self.diff.size)

    def correct(self, z: np.ndarray, y: np.ndarray) -> float:
        if z.ndim == 2 and z.shape[1] > 1:  # regression onto one-hot targets: argmax agreement
            labels = y if y.ndim == 1 else y.argmax(axis=1)
            return np.count_nonzero(z.argmax(axis=1) == labels)
        return float("nan")


def _per_sample(w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(m,) weights shaped to broadcast over z's (m, ...) samples."""
    return w.reshape(len(z), *([1] * (z.ndim - 1)))


def takes_sample_weight(loss: Loss) -> bool:
    """Does ``loss.forward`` accept ``sample_weight=`` (the built-in losses do; a user's may not)?"""
    import inspect

    try:
        parameters = inspect.signature(loss.forward).parameters
    except (TypeError, ValueError):
        return False
    return "sample_weight" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


LOSSES: dict[str, type[Loss]] = {
    "crossentropylogit": CrossEntropyLogit,
    "crossentropy": CrossEntropyLogit,
    "categoricalcrossentropy": CrossEntropyLogit,
    "softmaxcrossentropy": CrossEntropyLogit,
    "logistic": Logistic,
    "binarycrossentropy": Logistic,
    "bce": Logistic,
    "mse": MSE,
    "meansquarederror": MSE,
}


def get_loss(loss: str | Loss | type[Loss]) -> Loss:
    """A loss instance from a name (case, '_' and '-' ignored), a class, or an instance."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str):
        key = loss.lower().replace("_", "").replace("-", "").replace(" ", "")
        if key in LOSSES:
            return LOSSES[key]()
    raise ConfigError(f"loss: expected one of 'crossEntropyLogit', 'logistic', 'mse' (or a Loss), got {loss!r}")
