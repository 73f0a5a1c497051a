"""The update equations of a worksheet: SGD, SGD with momentum and Adam, with their state.

A mixin of ``SheetWriter`` (``steps.py``).  The velocity and Adam's moments printed are
the optimizer's own state arrays, recorded after each step; only Adam's bias-corrected
m̂ = m / (1 − β₁ᵗ) and v̂ = v / (1 − β₂ᵗ) are divided out here for display (the optimizer
folds those divisions into its update instead of storing them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .notation import DIV, LPAREN, MINUS, OSLASH, PLUS, RPAREN, SQUARED, exact
from .record import StepRecord
from .worksheet import Tex

if TYPE_CHECKING:
    from .steps import SheetWriter


class UpdateEquations:
    """W ← W − η dW and its momentum and Adam forms, for every parameter of every layer."""

    def update(self: SheetWriter, t: int, r: StepRecord) -> None:
        o = self.opt
        lr = [] if o["lr"] == 1 else [exact(o["lr"])]
        if o["name"] == "adam":
            k = r.iteration
            c1, c2 = 1 - o["betas"][0] ** k, 1 - o["betas"][1] ** k
            self.sheet.paragraph(
                f"Adam's step {k}: bias corrections ",
                ("math", rf"1 - \beta_1^{{{k}}} = {exact(c1).latex}", f"1 - β₁^{k} = {exact(c1).text}"),
                " and ",
                ("math", rf"1 - \beta_2^{{{k}}} = {exact(c2).latex}", f"1 - β₂^{k} = {exact(c2).text}"),
                "; the square root and ⊘ (division) act element by element.",
            )
        elif o["momentum"] and t == 0:
            self.sheet.paragraph("The velocity starts at the first gradient (torch.optim.SGD's convention).")
        for l, (i, _, _) in enumerate(self.layers, start=1):
            for name in ("W", "b"):
                self._update_param(t, r, l, i, name, lr)

    def _update_param(self: SheetWriter, t: int, r: StepRecord, l: int, i: int, name: str, lr: list[Tex]) -> None:
        s, v, o = self.sheet, self.n.var, self.opt
        p0, p1 = r.params_before[i][name], r.params_after[i][name]
        g = r.grads[i][name]
        P0, P1, G = v(name, l, t), v(name, l, t + 1), v(name, l, t, d=True)
        P0m, Gm = self.mat(p0, f"{name}:{l}:{t}"), self.mat(g, f"d{name}:{l}:{t}")
        new = ("=", self.mat(p1, f"{name}:{l}:{t + 1}"))
        prev = self.records[t - 1].state_after if t > 0 else {}

        def state(slot: str, step: int) -> np.ndarray:
            source = r.state_after if step == t + 1 else prev
            return source[slot][i][name] if slot in source else np.zeros_like(p0)

        if o["name"] == "sgd" and not o["momentum"]:
            s.equation(P1, ("=", [P0, MINUS, *lr, G]), ("=", [P0m, MINUS, *lr, Gm]), new)
            return
        if o["name"] == "sgd":
            mu = exact(o["momentum"])
            V1 = v("v", l, t + 1, of=name)
            V1m = self.mat(state("momentum_buffer", t + 1), f"v{name}:{l}:{t + 1}")
            if t == 0:
                s.equation(V1, ("=", G), ("=", V1m))
            else:
                V0m = self.mat(state("momentum_buffer", t), f"v{name}:{l}:{t}")
                s.equation(V1, ("=", [mu, v("v", l, t, of=name), PLUS, G]), ("=", [mu, V0m, PLUS, Gm]), ("=", V1m))
            s.equation(P1, ("=", [P0, MINUS, *lr, V1]), ("=", [P0m, MINUS, *lr, V1m]), new)
            return
        b1, b2 = o["betas"]
        k = r.iteration
        c1, c2 = 1 - b1**k, 1 - b2**k
        m0, m1 = state("m", t), state("m", t + 1)
        v0, v1 = state("v", t), state("v", t + 1)
        Ms = [v("m", l, t, of=name), v("m", l, t + 1, of=name), v("m", l, t + 1, of=name, hat=True)]
        Vs = [v("v", l, t, of=name), v("v", l, t + 1, of=name), v("v", l, t + 1, of=name, hat=True)]
        M1m, V1m = self.mat(m1, f"m{name}:{l}:{t + 1}"), self.mat(v1, f"v{name}:{l}:{t + 1}")
        Mh, Vh = self.mat(m1 / c1, f"mhat{name}:{l}:{t + 1}"), self.mat(v1 / c2, f"vhat{name}:{l}:{t + 1}")
        s.equation(
            Ms[1],
            ("=", [exact(b1), Ms[0], PLUS, exact(1 - b1), G]),
            ("=", [exact(b1), self.mat(m0, f"m{name}:{l}:{t}"), PLUS, exact(1 - b1), Gm]),
            ("=", M1m),
        )
        s.equation(
            Vs[1],
            ("=", [exact(b2), Vs[0], PLUS, exact(1 - b2), LPAREN, G, RPAREN, SQUARED]),
            ("=", [exact(b2), self.mat(v0, f"v{name}:{l}:{t}"), PLUS, exact(1 - b2), Gm, SQUARED]),
            ("=", V1m),
        )
        s.equation(Ms[2], ("=", [Ms[1], DIV, exact(c1)]), ("=", [M1m, DIV, exact(c1)]), ("=", Mh))
        s.equation(Vs[2], ("=", [Vs[1], DIV, exact(c2)]), ("=", [V1m, DIV, exact(c2)]), ("=", Vh))
        eps = exact(o["eps"])
        sqrt_sym = Tex(rf"\sqrt{{{Vs[2].latex}}}", f"sqrt({Vs[2].text})")
        s.equation(
            P1,
            ("=", [P0, MINUS, *lr, Ms[2], OSLASH, LPAREN, sqrt_sym, PLUS, eps, RPAREN]),
            ("=", [P0m, MINUS, *lr, Mh, OSLASH, LPAREN, Tex(r"\sqrt{", "sqrt("), Vh, Tex("}", ")"), PLUS, eps, RPAREN]),
            new,
        )
