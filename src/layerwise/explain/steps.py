"""``SheetWriter``: recorded training steps laid out as the homework's equations.

Every matrix printed is an array recorded from the real run (``record.py``), shown in
the sheet's layout (``Notation.display``); nothing here recomputes a forward or
backward pass.  The setup, forward pass and backward pass are here; the loss
equations are in ``loss_steps.py`` and the updates in ``updates.py`` (mixins).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import Dense, Linear, ReLU, Sigmoid, Softmax, Tanh
from ..losses import Loss
from ..network import Sequential
from .loss_steps import LOSS_WORDS, LossEquations
from .notation import (
    DOT,
    ODOT,
    PLUS,
    Notation,
    exact,
    iteration_title,
)
from .record import StepRecord
from .updates import UpdateEquations
from .worksheet import Matrix, Tex, Worksheet


class SheetWriter(LossEquations, UpdateEquations):
    """Writes one worksheet from the records of ``len(records)`` steps of one network."""

    def __init__(
        self,
        net: Sequential,
        loss: Loss,
        optimizer: dict[str, Any],
        records: list[StepRecord],
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        layout: str,
        digits: int,
        arch: Any,
        init: str,
        problem3: bool = False,
    ) -> None:
        self.net, self.loss, self.opt, self.records = net, loss, optimizer, records
        self.x, self.y, self.batch_size, self.layout, self.digits = x, y, batch_size, layout, digits
        self.arch, self.init, self.problem3 = arch, init, problem3
        # (index of the Dense layer, index of its activation, the activation) per layer 1..L.
        self.layers: list[tuple[int, int, Any]] = []
        for i, layer in enumerate(net.layers):
            if isinstance(layer, Dense):
                self.layers.append((i, i + 1, net.layers[i + 1]))
        self.L = len(self.layers)
        self.n = Notation(self.L, layout)
        self.seed = layout == "seed"

    # -- small helpers ----------------------------------------------------------------
    def mat(self, array: np.ndarray, key: str, T: bool = False) -> Matrix:
        return Matrix(self.n.display(array), key, T)

    def linear(self, l: int) -> bool:
        return isinstance(self.layers[l - 1][2], Linear)

    def out_name(self, l: int) -> str:
        """What layer l hands on: z_l when its activation is Linear, else a_l."""
        return "z" if self.linear(l) else "a"

    def input_sym(self, l: int, t: int, T: bool = False) -> Tex:
        return self.n.var("X", T=T) if l == 1 else self.n.var(self.out_name(l - 1), l - 1, t, T=T)

    def input_key(self, l: int, t: int) -> str:
        return f"X:0:{t}" if l == 1 else f"{self.out_name(l - 1)}:{l - 1}:{t}"

    def ones(self, m: int, column: bool) -> Matrix:
        return Matrix(np.ones((m, 1)) if column else np.ones((1, m)), "ones")

    # -- the sheet --------------------------------------------------------------------
    def write(self, title: str | None = None) -> Worksheet:
        opt = self.opt["name"].upper() if self.opt["name"] == "sgd" else "Adam"
        if self.opt.get("momentum"):
            opt += " with momentum"
        sheet = Worksheet(title or f"Gradient descent, step by step: {opt} on {self._arch_text()}", digits=self.digits)
        self.sheet = sheet
        self.setup()
        for t in range(len(self.records)):
            self.iteration(t)
        return sheet

    def _arch_text(self) -> str:
        """The architecture in the seed's notation, whatever notation it was given in."""
        return "[" + ",".join(f"({self.net.layers[i].units},{type(act).__name__})" for i, _, act in self.layers) + "]"

    def setup(self) -> None:
        s, m = self.sheet, len(self.x)
        names = {ReLU: "ReLU", Sigmoid: "sigmoid", Tanh: "tanh", Softmax: "softmax", Linear: "linear"}
        parts = [
            f"layer {k + 1}: {_count(layer.units, 'unit')}, {names.get(type(act), type(act).__name__)}"
            for k, (i, _, act) in enumerate(self.layers)
            for layer in [self.net.layers[i]]
        ]
        s.paragraph(
            "Network ",
            ("code", self._arch_text()),
            f" on {_count(self.x.shape[1], 'input')} ({'; '.join(parts)}), float64, initial weights: {self.init}. ",
            f"Loss: {type(self.loss).__name__} ({LOSS_WORDS.get(type(self.loss), LOSS_WORDS[None])}). ",
            f"Optimizer: {self._optimizer_words()}; {_count(len(self.records), 'iteration')}, "
            + (f"on the full batch of m = {m} samples." if self.batch_size == m else self._batch_words(m)),
        )
        if self.seed:
            s.paragraph(
                "Columns are samples and W is (outputs × inputs), as in the homework. layerwise keeps samples "
                "as rows and W as (inputs × outputs), so each matrix here is the transpose of the library's "
                "array (",
                ("code", "--layout rows"),
                " prints the library's own).",
            )
        else:
            s.paragraph("Rows are samples and W is (inputs × outputs): layerwise's own layout, z = X W + 1 b.")
        if self.problem3:
            s.paragraph("The data are those of the homework's Problem 3: X = Y = I₂.")
        s.paragraph("⊙ multiplies element by element; the derivative of a layer is applied the same way.")
        s.equation(self.n.var("X"), ("=", self.mat(self.x, "X:all")))
        s.equation(self.n.var("Y"), ("=", self.mat(self.y, "Y:all")))
        for l, (i, _, _) in enumerate(self.layers, start=1):
            before = self.records[0].params_before[i]
            s.equation(self.n.var("W", l, 0), ("=", self.mat(before["W"], f"W:{l}:0")))
            s.equation(self.n.var("b", l, 0), ("=", self.mat(before["b"], f"b:{l}:0")))

    def _optimizer_words(self) -> str:
        o = self.opt
        lr = exact(o["lr"]).text
        if o["name"] == "adam":
            b1, b2, eps = (exact(v).text for v in (*o["betas"], o["eps"]))
            return f"Adam, learning rate η = {lr}, β₁ = {b1}, β₂ = {b2}, ε = {eps}"
        if o["momentum"]:
            return f"SGD with momentum μ = {o['momentum']:g} (v ← μ v + dW, W ← W − η v, as torch.optim.SGD), η = {lr}"
        return f"SGD (W ← W − η dW), learning rate η = {lr}"

    def _batch_words(self, m: int) -> str:
        k = -(-m // self.batch_size)
        last = m - (k - 1) * self.batch_size
        extra = f", the last one {last}" if last != self.batch_size else ""
        return f"in {k} batches of {_count(self.batch_size, 'sample')} in order{extra} (m = {m} samples in all)."

    # -- one iteration ------------------------------------------------------------------
    def iteration(self, t: int) -> None:
        r = self.records[t]
        m = len(r.inputs[0])
        title = iteration_title(t)
        n_batches = -(-len(self.x) // self.batch_size)
        if n_batches > 1:
            k = t % n_batches
            lo = k * self.batch_size
            where = f"sample {lo + 1}" if m == 1 else f"samples {lo + 1}–{lo + m}"
            title += f" (batch {k + 1} of {n_batches}: {where})"
        self.sheet.heading(title + ":", 2)
        if n_batches > 1:
            self.sheet.paragraph(f"X and Y below are this batch's {_count(m, 'sample')}; m = {m}.")
            y_batch = self.y[k * self.batch_size : k * self.batch_size + m]
            self.sheet.equation(self.n.var("X"), ("=", self.mat(r.inputs[0], f"X:0:{t}")))
            self.sheet.equation(self.n.var("Y"), ("=", self.mat(y_batch, f"Y:0:{t}")))
        else:
            y_batch = self.y
        self.forward(t, r)
        self.loss_equations(t, r, y_batch)
        self.backward(t, r)
        self.update(t, r)

    def forward(self, t: int, r: StepRecord) -> None:
        s, v = self.sheet, self.n.var
        m = len(r.inputs[0])
        for l, (i, ai, act) in enumerate(self.layers, start=1):
            W, b = r.params_before[i]["W"], r.params_before[i]["b"]
            A, z = self.mat(r.inputs[i], self.input_key(l, t)), self.mat(r.outputs[i], f"z:{l}:{t}")
            Wm, bm = self.mat(W, f"W:{l}:{t}"), self.mat(b, f"b:{l}:{t}")
            if self.seed:  # z = W X + b·1ᵀ (b added to every column)
                symbolic = [v("W", l, t), self.input_sym(l, t), PLUS, v("b", l, t)]
                numeric = [Wm, DOT, A, PLUS, bm, DOT, self.ones(m, column=False)]
            else:  # z = X W + 1·b (b added to every row)
                symbolic = [self.input_sym(l, t), v("W", l, t), PLUS, Tex(r"\mathbf{1}", "1"), v("b", l, t)]
                numeric = [A, DOT, Wm, PLUS, self.ones(m, column=True), DOT, bm]
            s.equation(v("z", l, t), ("=", symbolic), ("=", numeric), ("=", z))
            if not isinstance(act, Linear):
                zs = v("z", l, t)
                formula = {
                    ReLU: [Tex(rf"\max\left({zs.latex}, 0\right)", f"max({zs.text}, 0)")],
                    Sigmoid: [
                        Tex(rf"\sigma({zs.latex}) = \frac{{1}}{{1 + e^{{-{zs.latex}}}}}", f"1/(1 + e^-{zs.text})")
                    ],
                    Tanh: [Tex(rf"\tanh({zs.latex})", f"tanh({zs.text})")],
                    Softmax: [Tex(rf"\operatorname{{softmax}}({zs.latex})", f"softmax({zs.text})")],
                }.get(type(act), [Tex(rf"f({zs.latex})", f"f({zs.text})")])
                s.equation(v("a", l, t), ("=", formula), ("=", self.mat(r.outputs[ai], f"a:{l}:{t}")))

    def backward(self, t: int, r: StepRecord) -> None:
        s, v = self.sheet, self.n.var
        m = len(r.inputs[0])
        for l in range(self.L, 0, -1):
            i, ai, act = self.layers[l - 1]
            dz = self.mat(r.dy[i], f"dz:{l}:{t}")
            dzs = v("z", l, t, d=True)
            if not isinstance(act, Linear):
                das, da = v("a", l, t, d=True), self.mat(r.dy[ai], f"da:{l}:{t}")
                zs, a_s = v("z", l, t), v("a", l, t)
                if isinstance(act, Softmax):
                    rule = Tex(
                        rf"{a_s.latex} \odot \left({das.latex} - \langle {a_s.latex}, {das.latex} \rangle\right)",
                        f"{a_s.text} ⊙ ({das.text} - <{a_s.text}, {das.text}>)",
                    )
                    s.paragraph("Softmax's backward pass, for each sample: dz = a ⊙ (da − ⟨a, da⟩).")
                    s.equation(dzs, ("=", rule), ("=", dz))
                else:
                    derivative = {
                        ReLU: Tex(rf"\mathbf{{1}}[{zs.latex} > 0]", f"1[{zs.text} > 0]"),
                        Sigmoid: Tex(rf"{a_s.latex} \odot (1 - {a_s.latex})", f"{a_s.text} ⊙ (1 - {a_s.text})"),
                        Tanh: Tex(rf"(1 - {{{a_s.latex}}}^{{\odot 2}})", f"(1 - {a_s.text}^2)"),
                    }.get(type(act), Tex(rf"f'({zs.latex})", f"f'({zs.text})"))
                    s.equation(
                        dzs,
                        ("=", [das, ODOT, derivative]),
                        ("=", [da, ODOT, self.mat(r.derivative[ai], f"dact:{l}:{t}")]),
                        ("=", dz),
                    )
            A = self.mat(r.inputs[i], self.input_key(l, t), T=True)
            if self.seed:  # dW = dz Xᵀ, db = dz·1, da_below = Wᵀ dz
                dW_chain = [("=", [dzs, DOT, self.input_sym(l, t, T=True)]), ("=", [dz, DOT, A])]
                db_chain = [("=", [dzs, DOT, self.ones(m, column=True)]), ("=", [dz, DOT, self.ones(m, column=True)])]
            else:  # dW = Xᵀ dz, db = 1ᵀ dz, da_below = dz Wᵀ
                dW_chain = [("=", [self.input_sym(l, t, T=True), DOT, dzs]), ("=", [A, DOT, dz])]
                db_chain = [("=", [self.ones(m, column=False), DOT, dzs]), ("=", [self.ones(m, column=False), DOT, dz])]
            s.equation(v("W", l, t, d=True), *dW_chain, ("=", self.mat(r.grads[i]["W"], f"dW:{l}:{t}")))
            s.equation(v("b", l, t, d=True), *db_chain, ("=", self.mat(r.grads[i]["b"], f"db:{l}:{t}")))
            if l > 1:
                below = self.out_name(l - 1)
                Wt = self.mat(r.params_before[i]["W"], f"W:{l}:{t}", T=True)
                WsT = v("W", l, t, T=True)
                chain = (
                    [("=", [WsT, DOT, dzs]), ("=", [Wt, DOT, dz])]
                    if self.seed
                    else [("=", [dzs, DOT, WsT]), ("=", [dz, DOT, Wt])]
                )
                s.equation(v(below, l - 1, t, d=True), *chain, ("=", self.mat(r.dx[i], f"d{below}:{l - 1}:{t}")))

    # -- the check ----------------------------------------------------------------------
    def verification(self, sheet: Worksheet, difference: float, tolerance: float, steps: int) -> None:
        sheet.verified = difference <= tolerance
        how = (
            f"an independent run of Model.fit (a fresh float64 network with the same initial weights, "
            f"the same loss and optimizer, {_count(steps, 'step')} with batch size {self.batch_size}, no shuffling, "
            "nothing recorded)"
        )
        sheet.heading("Check", 2)
        if sheet.verified:
            sheet.paragraph(
                f"Verified: {how} ends with the same W and b as this sheet to {tolerance:g} "
                f"(largest difference {difference:.3g})."
            )
        else:
            sheet.paragraph(
                f"NOT VERIFIED: {how} ends with W and b that differ from this sheet by {difference:.3g} "
                f"(more than {tolerance:g})."
            )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
