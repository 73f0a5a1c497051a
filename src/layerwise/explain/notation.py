"""Symbols of the homework's notation: bold matrices, layer subscripts, iteration superscripts.

``\\mathbf{W}^{(1)}`` is W after the first iteration (the seed's Problem 3).  A network
with several layers adds the layer as a subscript: ``\\mathbf{z}_{2}^{(0)}``.  Each
symbol also has a plain-text spelling for the terminal: ``W(1)``, ``z2(0)``.
"""

from __future__ import annotations

import math

import numpy as np

from .worksheet import Tex

PLUS = Tex("+", "+")
MINUS = Tex("-", "-")
DOT = Tex(r"\cdot", "·")
ODOT = Tex(r"\odot", "⊙")
OSLASH = Tex(r"\oslash", "⊘")
DIV = Tex(r"\div", "÷")
LPAREN = Tex(r"\left(", "(")
RPAREN = Tex(r"\right)", ")")
SQUARED = Tex(r"^{\odot 2}", "^2")

ORDINALS = ["First", "Second", "Third", "Fourth", "Fifth", "Sixth", "Seventh", "Eighth", "Ninth", "Tenth"]


def iteration_title(t: int) -> str:
    """``"First iteration"`` … ``"Tenth iteration"``, then ``"Iteration 11"``."""
    return f"{ORDINALS[t]} iteration" if t < len(ORDINALS) else f"Iteration {t + 1}"


def exact(x: float) -> Tex:
    """A hyper-parameter as typed (0.999, 10^{-8}): the shortest decimal that reads back as ``x``."""
    x = float(f"{float(x):.12g}")
    if x == int(x) and abs(x) < 1e15:
        text = str(int(x))
        return Tex(text, text)
    text = repr(x)
    if "e" in text:
        mantissa, power = text.split("e")
        power = int(power)
        latex = f"10^{{{power}}}" if mantissa in ("1", "1.0") else f"{mantissa} \\times 10^{{{power}}}"
        return Tex(latex, f"{mantissa}e{power}")
    return Tex(text, text)


class Notation:
    """Symbol names for a network of ``n_layers`` Dense layers in the ``layout`` (``seed`` or ``rows``)."""

    def __init__(self, n_layers: int, layout: str) -> None:
        self.multi = n_layers > 1
        self.seed = layout == "seed"

    def var(
        self,
        name: str,
        layer: int | None = None,
        step: int | None = None,
        d: bool = False,
        T: bool = False,
        hat: bool = False,
        of: str | None = None,
    ) -> Tex:
        """``d\\mathbf{z}_{l}^{(t)}``; ``of``: the parameter of an optimizer state (``\\mathbf{m}_{\\mathbf{W}}``)."""
        latex = rf"\mathbf{{{name}}}"
        text = name
        if hat:
            latex, text = rf"\hat{{{latex}}}", text + "hat"
        sub = str(layer) if (layer is not None and self.multi) else ""
        if of is not None:
            latex += rf"_{{\mathbf{{{of}}}{('_' + sub) if sub else ''}}}"
            text += f"[{of}{sub}]"
        elif sub:
            latex += f"_{{{sub}}}"
            text += sub
        sup = "" if step is None else f"({step})"
        if sup or T:
            latex += "^{" + sup + ("T" if T else "") + "}"
            text += sup + ("ᵀ" if T else "")
        if d:
            latex, text = "d" + latex, "d" + text
        return Tex(latex, text)

    def display(self, array: np.ndarray) -> np.ndarray:
        """A library array as printed: the seed's layout transposes (samples become columns, W is out × in).

        1-D arrays (biases) are columns in the seed's layout and rows in layerwise's own.
        """
        a = np.asarray(array, dtype=np.float64)
        if a.ndim == 1:
            return a[:, None] if self.seed else a[None, :]
        return a.T if self.seed else a


def is_small(shape: tuple[int, ...], limit: int = 16) -> bool:
    """Matrices of formulas are shown only for small ones (they are wide)."""
    return math.prod(shape) <= limit
