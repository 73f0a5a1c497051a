"""The loss equations of a worksheet: p, J and dJ/d(output) for each loss, as in Problems 2 and 3.

A mixin of ``SheetWriter`` (``steps.py``).  p (softmax or sigmoid), J, z − y and the
gradient are what the library's loss saved and returned during the recorded step; the
matrices of formulas (``e^{0.25}/(e^{0.25}+e^{-0.25})``, ``\\log(0.62)``) spell out the
recorded numbers, as the seed does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..losses import CrossEntropyLogit, Logistic
from .notation import DIV, LPAREN, MINUS, ODOT, RPAREN, SQUARED, is_small
from .record import StepRecord
from .worksheet import Scalar, SymbolicMatrix, Tex, format_number

if TYPE_CHECKING:
    from .steps import SheetWriter

LOSS_WORDS = {
    CrossEntropyLogit: "softmax and cross-entropy on the logits, J the mean over the m samples",
    Logistic: "binary cross-entropy on one logit per sample (sigmoid), J the mean over the m samples",
    None: "mean squared error over all m·n entries",
}


def _transpose(s: SymbolicMatrix) -> SymbolicMatrix:
    return SymbolicMatrix([list(c) for c in zip(*s.latex, strict=True)], [list(c) for c in zip(*s.text, strict=True)])


class LossEquations:
    """p, J and dJ/d(output) of one step."""

    def loss_equations(self: SheetWriter, t: int, r: StepRecord, y_batch: np.ndarray) -> None:
        s, v, L = self.sheet, self.n.var, self.L
        m = len(r.loss_z)
        o = v(self.out_name(L), L, t)
        out = self.mat(r.loss_z, f"{self.out_name(L)}:{L}:{t}")
        Y, Ym = v("Y"), self.mat(y_batch, f"Y:0:{t}")
        J = v("J", None, t)
        dout_key = f"d{self.out_name(L)}:{L}:{t}"
        mm = Tex(str(m), str(m))
        if isinstance(self.loss, (CrossEntropyLogit, Logistic)):
            p = v("p", None, t)
            pm = self.mat(r.loss_saved["p"], f"p:0:{t}")
            if isinstance(self.loss, CrossEntropyLogit):
                n_cls = r.loss_z.shape[1]
                chain = [("=", Tex(rf"\frac{{e^{{z_i}}}}{{\sum_{{j=1}}^{{{n_cls}}} e^{{z_j}}}}", "e^z_i / Σ_j e^z_j"))]
                if is_small(r.loss_z.shape):
                    chain.append(("=", self._softmax_fractions(r.loss_z)))
                s.equation(p, *chain, ("=", pm))
                chain = [
                    (
                        "=",
                        [
                            Tex(rf"-\frac{{1}}{{{m}}} \sum", f"-(1/{m}) Σ"),
                            Y,
                            ODOT,
                            Tex(rf"\log({p.latex})", f"log({p.text})"),
                        ],
                    )
                ]
                if is_small(r.loss_z.shape):
                    logs = self._log_entries(r.loss_saved["p"], y_batch)
                    chain.append(("=", [Tex(rf"-\frac{{1}}{{{m}}} \sum", f"-(1/{m}) Σ"), Ym, ODOT, logs[0]]))
                    chain.append(("=", [Tex(rf"-\frac{{1}}{{{m}}} \sum", f"-(1/{m}) Σ"), logs[1]]))
                s.equation(J, *chain, ("=", Scalar(r.J, f"J:0:{t}")))
            else:
                s.equation(
                    p,
                    ("=", Tex(rf"\sigma({o.latex}) = \frac{{1}}{{1 + e^{{-{o.latex}}}}}", f"1/(1 + e^-{o.text})")),
                    ("=", pm),
                )
                formula = (
                    rf"-\frac{{1}}{{{m}}} \sum \left[\mathbf{{Y}} \odot \log {p.latex} + "
                    rf"(1 - \mathbf{{Y}}) \odot \log(1 - {p.latex})\right]"
                )
                text = f"-(1/{m}) Σ [Y ⊙ log {p.text} + (1 - Y) ⊙ log(1 - {p.text})]"
                s.equation(J, ("=", Tex(formula, text)), ("=", Scalar(r.J, f"J:0:{t}")))
            s.equation(
                v(self.out_name(L), L, t, d=True),
                ("=", [LPAREN, p, MINUS, Y, RPAREN, DIV, mm]),
                ("=", [LPAREN, pm, MINUS, Ym, RPAREN, DIV, mm]),
                ("=", self.mat(r.dz, dout_key)),
            )
            return
        # Mean squared error over all m·n entries.
        mn = r.loss_z.size
        diff = self.mat(r.loss_saved["diff"], f"diff:0:{t}")
        mean = Tex(rf"\frac{{1}}{{{mn}}} \sum", f"(1/{mn}) Σ")
        s.equation(
            J,
            ("=", [mean, LPAREN, o, MINUS, Y, RPAREN, SQUARED]),
            ("=", [mean, LPAREN, out, MINUS, Ym, RPAREN, SQUARED]),
            ("=", [mean, diff, SQUARED]),
            ("=", Scalar(r.J, f"J:0:{t}")),
        )
        two = Tex(rf"\frac{{2}}{{{mn}}}", f"(2/{mn})")
        s.equation(
            v(self.out_name(L), L, t, d=True),
            ("=", [two, LPAREN, o, MINUS, Y, RPAREN]),
            ("=", [two, diff]),
            ("=", self.mat(r.dz, dout_key)),
        )

    def _softmax_fractions(self: SheetWriter, z: np.ndarray) -> SymbolicMatrix:
        """The seed's p entries e^{z_ik} / Σ_j e^{z_jk}, from the recorded logits (one row of z per sample)."""
        f = [[format_number(v, self.digits) for v in row] for row in z]
        latex = [
            [rf"\frac{{e^{{{f[k][i][0]}}}}}{{{'+'.join(f'e^{{{e[0]}}}' for e in f[k])}}}" for i in range(len(f[k]))]
            for k in range(len(f))
        ]
        text = [
            [f"e^{f[k][i][1]}/({'+'.join(f'e^{e[1]}' for e in f[k])})" for i in range(len(f[k]))] for k in range(len(f))
        ]
        if self.seed:
            return _transpose(SymbolicMatrix(latex, text))
        return SymbolicMatrix(latex, text)

    def _log_entries(self: SheetWriter, p: np.ndarray, y: np.ndarray) -> tuple[SymbolicMatrix, SymbolicMatrix]:
        """log(p) entries, and Y ⊙ log(p) entries (0 where y = 0), from the recorded p."""
        f = [[format_number(v, self.digits) for v in row] for row in p]
        logs = SymbolicMatrix(
            [[rf"\log({e[0]})" for e in row] for row in f], [[f"log({e[1]})" for e in row] for row in f]
        )
        picked_l = [
            [
                ("0" if yv == 0 else (rf"\log({e[0]})" if yv == 1 else rf"{yv:g}\log({e[0]})"))
                for e, yv in zip(row, yr, strict=True)
            ]
            for row, yr in zip(f, y, strict=True)
        ]
        picked_t = [
            [
                ("0" if yv == 0 else (f"log({e[1]})" if yv == 1 else f"{yv:g}·log({e[1]})"))
                for e, yv in zip(row, yr, strict=True)
            ]
            for row, yr in zip(f, y, strict=True)
        ]
        picked = SymbolicMatrix(picked_l, picked_t)
        if self.seed:
            return _transpose(logs), _transpose(picked)
        return logs, picked
