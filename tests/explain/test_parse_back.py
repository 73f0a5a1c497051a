"""Every matrix on a sheet, read back out of its Markdown and LaTeX, equals PyTorch's value to the printed precision.

Random small networks (hidden ReLU, Sigmoid, Tanh and Linear layers), the three losses,
SGD, SGD with momentum and Adam, batch sizes that do not divide the data, both layouts
and several precisions.  The reference is torch autograd and torch.optim in float64,
which shares no code with the library.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerwise.explain import gradient_descent

from .helpers import Problem, check_rendered, lhs, math_blocks, scalar_after_last_equals, torch_reference


@st.composite
def problems(draw: st.DrawFn) -> tuple[Problem, str, int]:
    loss = draw(st.sampled_from(["crossEntropyLogit", "logistic", "mse"]))
    n_in = draw(st.integers(1, 3))
    hidden = draw(
        st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["relu", "sigmoid", "tanh", "linear"])), max_size=2)
    )
    n_out = {"crossEntropyLogit": draw(st.integers(2, 3)), "logistic": 1, "mse": draw(st.integers(1, 2))}[loss]
    last = draw(st.sampled_from(["linear", "sigmoid"])) if loss == "mse" else "linear"
    arch = [*hidden, (n_out, last)]
    n = draw(st.integers(1, 5))
    batch_size = draw(st.integers(1, n))
    steps = draw(st.integers(1, 4))
    optimizer = draw(st.sampled_from(["sgd", "momentum", "adam"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = np.round(rng.uniform(-2, 2, (n, n_in)), 2)
    if loss == "crossEntropyLogit":
        y = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif loss == "logistic":
        y = np.round(rng.uniform(0, 1, (n, 1)), 1)
    else:
        y = np.round(rng.uniform(-1, 1, (n, n_out)), 2)
    sizes = [n_in] + [u for u, _ in arch]
    W = [np.round(rng.uniform(-1, 1, (a, b)), 3) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    b = [np.round(rng.uniform(-0.5, 0.5, u), 3) for u in sizes[1:]]
    lr = draw(st.sampled_from([0.05, 0.3, 1.0]))
    problem = Problem(
        arch, x, y, W, b, loss, "adam" if optimizer == "adam" else "sgd", lr, steps=steps, batch_size=batch_size
    )
    if optimizer == "momentum":
        problem.momentum = draw(st.sampled_from([0.5, 0.9]))
    return problem, draw(st.sampled_from(["seed", "rows"])), draw(st.integers(2, 6))


def sheet_for(pr: Problem, layout: str, digits: int):
    shown = (lambda a: a.T) if layout == "seed" else (lambda a: a)
    return gradient_descent(
        [(u, a) for u, a in pr.arch],
        shown(pr.x),
        shown(pr.y),
        W=[shown(w) for w in pr.W],
        b=list(pr.b),
        loss=pr.loss,
        optimizer="adam" if pr.optimizer == "adam" else ("momentum" if pr.momentum else "sgd"),
        momentum=pr.momentum if pr.momentum else None,
        lr=pr.lr,
        steps=pr.steps,
        batch_size=pr.batch_size,
        layout=layout,
        digits=digits,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_markdown_and_latex_matrices_match_pytorch(case: tuple[Problem, str, int]) -> None:
    pr, layout, digits = case
    sheet = sheet_for(pr, layout, digits)
    expected = torch_reference(pr, layout)
    for fmt in ("markdown", "latex"):
        text = sheet.render(fmt)
        checked = check_rendered(sheet, text, fmt, expected, digits)
        # setup (X, Y, W, b per layer) + per step at least X, W, b, z, dz, dW, db and the new W, b
        assert checked >= 2 + 2 * len(pr.arch) + pr.steps * 7 * len(pr.arch)
        losses = {lhs(b): b for b in math_blocks(text, fmt) if lhs(b).startswith(r"\mathbf{J}^{(")}
        assert len(losses) == pr.steps
        for t in range(pr.steps):
            printed = scalar_after_last_equals(losses[rf"\mathbf{{J}}^{{({t})}}"])
            assert abs(printed - float(expected[f"J:0:{t}"])) <= 0.5 * 10.0**-digits + 1e-9
    assert sheet.verified is True
