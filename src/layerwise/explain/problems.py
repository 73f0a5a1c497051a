"""Worksheets for the seed's Problem 1 (the softmax Jacobian) and Problem 2 (cross-entropy on logits).

``jacobian(z)`` prints p = softmax(z) and ∂p/∂z = [p_j(δ_ij − p_i)] from the library's
``softmax`` and ``softmax_jacobian``; ``cross_entropy(z, y)`` prints J and dJ/dz = p − y
from the library's ``CrossEntropyLogit`` loss, with the log-sum-exp shift spelled out.
Each sheet ends with checks against a second code path: the ``Softmax`` layer's own
backward pass, and central finite differences of the library's forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ShapeError
from ..layers import Softmax
from ..losses import CrossEntropyLogit, softmax, softmax_jacobian
from .notation import DIV, MINUS, ODOT, exact
from .worksheet import Matrix, Scalar, SymbolicMatrix, Tex, Worksheet, check_digits, format_number

#: Finite differences of the library's forward pass must match its gradient this closely.
FD_TOLERANCE = 1e-7
FD_STEP = 1e-5


def _vector(name: str, value: Any) -> np.ndarray:
    try:
        v = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name}: expected a vector of numbers, got {value!r} ({e})") from None
    if v.ndim == 2 and 1 in v.shape:
        v = v.reshape(-1)
    if v.ndim != 1 or v.size == 0:
        raise ShapeError(f"{name}: expected a vector (one row or one column of numbers), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise InputError(f"{name}: expected finite numbers, got {v.tolist()}")
    return v


def _column(v: np.ndarray, key: str) -> Matrix:
    return Matrix(v[:, None], key)


def _fmt(x: float, digits: int) -> tuple[str, str]:
    return format_number(x, digits)


def jacobian(z: Any, digits: int = 4, title: str | None = None) -> Worksheet:
    """Problem 1: p = softmax(z) and its Jacobian J[i, j] = ∂p_j/∂z_i = p_j(δ_ij − p_i).

    z: a vector (n,).  Returns a ``Worksheet`` whose matrices are z and p (columns) and the (n, n) Jacobian.
    """
    digits = check_digits(digits)
    z = _vector("z", z)
    n = z.size
    p = softmax(z)
    jac = softmax_jacobian(z)
    sheet = Worksheet(title or "Problem 1: the Jacobian of the softmax", digits=digits)
    sheet.paragraph(
        ("math", r"\mathbf{p} = \operatorname{softmax}(\mathbf{z})", "p = softmax(z)"),
        ": ",
        ("math", r"p_j = e^{z_j} / \sum_k e^{z_k}", "p_j = e^z_j / Σ_k e^z_k"),
        ". Row i, column j of the Jacobian is ",
        ("math", r"\partial p_j / \partial z_i", "∂p_j/∂z_i"),
        " (the homework's convention): ",
        ("math", r"p_j(1 - p_j)", "p_j(1 − p_j)"),
        " on the diagonal and ",
        ("math", r"-p_i p_j", "−p_i p_j"),
        " off it.",
    )
    sheet.equation(
        Tex(r"\frac{\partial p_j}{\partial z_i}", "∂p_j/∂z_i"),
        ("=", Tex(r"\frac{\partial}{\partial z_i} \frac{e^{z_j}}{\sum_{k=1}^n e^{z_k}}", "∂/∂z_i (e^z_j / Σ_k e^z_k)")),
        (
            "=",
            Tex(
                r"\frac{\delta_{ij} e^{z_j} \sum_{k=1}^n e^{z_k} - e^{z_i} e^{z_j}}{(\sum_{k=1}^n e^{z_k})^2}",
                "(δ_ij e^z_j Σ_k e^z_k − e^z_i e^z_j) / (Σ_k e^z_k)²",
            ),
        ),
        ("=", Tex(r"p_j(\delta_{ij} - p_i)", "p_j(δ_ij − p_i)")),
    )
    sheet.heading(f"At z = ({', '.join(_fmt(v, digits)[1] for v in z)}):", 2)
    sheet.equation(Tex(r"\mathbf{z}", "z"), ("=", _column(z, "z")))
    chain: list[tuple[str, Any]] = [
        ("=", Tex(r"\frac{e^{z_i}}{\sum_{k=1}^{" + str(n) + r"} e^{z_k}}", "e^z_i / Σ_k e^z_k"))
    ]
    if n <= 4:
        f = [_fmt(v, digits) for v in z]
        total_l, total_t = "+".join(f"e^{{{e[0]}}}" for e in f), "+".join(f"e^{e[1]}" for e in f)
        chain.append(
            (
                "=",
                SymbolicMatrix(
                    [[rf"\frac{{e^{{{e[0]}}}}}{{{total_l}}}"] for e in f], [[f"e^{e[1]}/({total_t})"] for e in f]
                ),
            )
        )
    sheet.equation(Tex(r"\mathbf{p}", "p"), *chain, ("=", _column(p, "p")))
    pf = [_fmt(v, digits) for v in p]
    entries_l = [
        [rf"{pf[j][0]}(1 - {pf[i][0]})" if i == j else rf"-{pf[i][0]} \cdot {pf[j][0]}" for j in range(n)]
        for i in range(n)
    ]
    entries_t = [
        [f"{pf[j][1]}(1 - {pf[i][1]})" if i == j else f"-{pf[i][1]}·{pf[j][1]}" for j in range(n)] for i in range(n)
    ]
    chain = [("=", Tex(r"\left[p_j(\delta_{ij} - p_i)\right]_{i,j=1,1}^{n,n}", "[p_j(δ_ij − p_i)]"))]
    if n <= 4:
        chain.append(("=", SymbolicMatrix(entries_l, entries_t)))
    sheet.equation(
        Tex(r"\frac{\partial \mathbf{p}}{\partial \mathbf{z}}", "∂p/∂z"), *chain, ("=", Matrix(jac, "jacobian"))
    )

    # Checks: the Softmax layer's backward pass (dy = e_j gives column j), and finite differences.
    layer = Softmax()
    layer.forward(np.tile(z, (n, 1)))
    by_layer = layer.backward(np.eye(n)).T
    fd = np.stack([(softmax(z + FD_STEP * e) - softmax(z - FD_STEP * e)) / (2 * FD_STEP) for e in np.eye(n)])
    _checks(
        sheet,
        [
            ("the Softmax layer's backward pass, run with dy = e_1 … e_n, gives the same matrix", by_layer, jac, 1e-12),
            ("central finite differences of the library's softmax agree", fd, jac, FD_TOLERANCE),
        ],
    )
    return sheet


def cross_entropy(z: Any, y: Any, digits: int = 4, title: str | None = None) -> Worksheet:
    """Problem 2: J = −Σ_j y_j log p_j with p = softmax(z), and dJ/dz = p − y.

    z: logits (n,); y: a probability vector (n,) summing to 1 (one-hot, typically), or one
    class label 0 … n−1.  J and dJ/dz come from the library's ``CrossEntropyLogit``.
    """
    digits = check_digits(digits)
    z = _vector("z", z)
    n = z.size
    y = _vector("y", y)
    if y.size == 1 and n > 1:  # a class label
        if y[0] != round(y[0]) or not 0 <= y[0] < n:
            raise InputError(f"y: expected a class label 0 to {n - 1} or {n} probabilities, got {y[0]:g}")
        y = np.eye(n)[int(y[0])]
    if y.size != n:
        raise ShapeError(f"y: expected {n} entries (one per logit in z), got {y.size}")
    if (y < 0).any() or abs(y.sum() - 1) > 1e-9:
        raise InputError(f"y: expected probabilities (>= 0, summing to 1), got {y.tolist()} (sum {y.sum():g})")
    loss = CrossEntropyLogit()
    J = loss.forward(z[None, :], y[None, :])
    p = loss.p[0].copy()
    dz = loss.backward()[0]
    # The log-sum-exp steps, spelled out as the loss computes them internally (it keeps only p).
    c = float(z.max())
    shifted = z - c
    total = float(np.exp(shifted).sum())
    log_p = shifted - np.log(total)

    sheet = Worksheet(title or "Problem 2: cross-entropy on logits and its gradient", digits=digits)
    sheet.paragraph(
        ("math", r"\mathbf{p} = \operatorname{softmax}(\mathbf{z})", "p = softmax(z)"),
        " and ",
        ("math", r"J = -\sum_j y_j \log p_j", "J = −Σ_j y_j log p_j"),
        ". ",
        ("math", "e^{z}", "e^z"),
        " overflows float64 for z above about 709.8, but the softmax does not change when the same c is "
        "subtracted from every ",
        ("math", "z_j", "z_j"),
        "; with ",
        ("math", r"c = \max_j z_j", "c = max_j z_j"),
        " every exponent is at most 0, so p and ",
        (
            "math",
            r"\log \mathbf{p} = (\mathbf{z} - c) - \log \sum_k e^{z_k - c}",
            "log p = (z − c) − log Σ_k e^(z_k − c)",
        ),
        " stay finite (the log-sum-exp shift).",
    )
    zs, ys, ps = Tex(r"\mathbf{z}", "z"), Tex(r"\mathbf{y}", "y"), Tex(r"\mathbf{p}", "p")
    shift_s = Tex(r"(\mathbf{z} - c)", "(z − c)")
    sheet.equation(zs, ("=", _column(z, "z")))
    sheet.equation(ys, ("=", _column(y, "y")))
    sheet.equation(Tex("c", "c"), ("=", Tex(r"\max_j z_j", "max_j z_j")), ("=", Scalar(c, "c")))
    sheet.equation(Tex(r"\mathbf{z} - c", "z − c"), ("=", _column(shifted, "shifted")))
    sheet.equation(
        Tex(r"\sum_{k=1}^{" + str(n) + r"} e^{z_k - c}", "Σ_k e^(z_k − c)"),
        (
            "=",
            Tex(
                " + ".join(f"e^{{{_fmt(v, digits)[0]}}}" for v in shifted),
                " + ".join(f"e^{_fmt(v, digits)[1]}" for v in shifted),
            ),
        ),
        ("=", Scalar(total, "total")),
    )
    sheet.equation(
        ps, ("=", [Tex(r"e^{\mathbf{z} - c}", "e^(z − c)"), DIV, Scalar(total, "total")]), ("=", _column(p, "p"))
    )
    log_total = Scalar(float(np.log(total)), "log_total")
    sheet.equation(
        Tex(r"\log \mathbf{p}", "log p"),
        ("=", [shift_s, MINUS, Tex(r"\log \sum_k e^{z_k - c}", "log Σ_k e^(z_k − c)")]),
        ("=", [_column(shifted, "shifted"), MINUS, log_total]),
        ("=", _column(log_p, "log_p")),
    )
    sheet.equation(
        Tex("J", "J"),
        ("=", Tex(r"-\sum_{j=1}^{" + str(n) + r"} y_j \log p_j", "−Σ_j y_j log p_j")),
        ("=", [Tex(r"-\sum", "−Σ"), _column(y, "y"), ODOT, _column(log_p, "log_p")]),
        ("=", Scalar(J, "J")),
    )
    sheet.heading("The gradient (Problem 2):", 2)
    sheet.equation(
        Tex(r"\frac{\partial J}{\partial z_j}", "∂J/∂z_j"),
        ("=", Tex(r"-\sum_{i=1}^n \frac{y_i}{p_i} \frac{\partial p_i}{\partial z_j}", "−Σ_i (y_i/p_i) ∂p_i/∂z_j")),
        ("=", Tex(r"-\sum_{i=1}^n \frac{y_i}{p_i} p_i(\delta_{ij} - p_j)", "−Σ_i (y_i/p_i) p_i(δ_ij − p_j)")),
        ("=", Tex(r"-y_j + p_j \sum_{i=1}^n y_i", "−y_j + p_j Σ_i y_i")),
        ("=", Tex(r"p_j - y_j", "p_j − y_j")),
    )
    sheet.equation(
        Tex(r"\frac{\partial J}{\partial \mathbf{z}}", "∂J/∂z"),
        ("=", [ps, MINUS, ys]),
        ("=", [_column(p, "p"), MINUS, _column(y, "y")]),
        ("=", _column(dz, "dz")),
    )

    def library_loss(v: np.ndarray) -> float:
        return CrossEntropyLogit().forward(v[None, :], y[None, :])

    fd = np.array([(library_loss(z + FD_STEP * e) - library_loss(z - FD_STEP * e)) / (2 * FD_STEP) for e in np.eye(n)])
    _checks(
        sheet,
        [
            ("the steps above give the library's J", np.array([-(y * log_p).sum()]), np.array([J]), 1e-12),
            ("central finite differences of the library's J agree with dJ/dz", fd, dz, FD_TOLERANCE),
        ],
    )
    sheet.paragraph(f"(Finite differences with step h = {exact(FD_STEP).text}.)")
    return sheet


def _checks(sheet: Worksheet, checks: list[tuple[str, np.ndarray, np.ndarray, float]]) -> None:
    sheet.heading("Check", 2)
    ok = True
    for words, got, expected, tolerance in checks:
        difference = float(np.max(np.abs(np.asarray(got) - np.asarray(expected)), initial=0.0))
        passed = difference <= tolerance
        ok = ok and passed
        verdict = "Verified" if passed else "NOT VERIFIED"
        sheet.paragraph(f"{verdict}: {words} to {tolerance:g} (largest difference {difference:.3g}).")
    sheet.verified = ok
