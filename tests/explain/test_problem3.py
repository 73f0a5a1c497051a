"""``layerwise explain`` with no arguments: the seed's Problem 3, at the seed's rounding, in the seed's LaTeX."""

from __future__ import annotations

import numpy as np
import pytest

from layerwise.cli import main
from layerwise.explain import gradient_descent

from .helpers import Problem, all_bmatrices, check_rendered, lhs, math_blocks, scalar_after_last_equals, torch_reference

I2 = np.eye(2)


@pytest.fixture(scope="module")
def default_markdown() -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["explain"])
    assert code == 0
    return out.getvalue()


def equations_by_lhs(text: str) -> dict[str, str]:
    return {lhs(block): block for block in math_blocks(text, "markdown")}


def result(block: str) -> np.ndarray:
    """The last matrix of an equation: its result."""
    rows = all_bmatrices(f"$${block}$$", "markdown")[-1]
    return np.array([[v for v, _ in row] for row in rows])


def test_no_arguments_reproduce_the_seeds_numbers_at_its_rounding(default_markdown: str) -> None:
    eq = equations_by_lhs(default_markdown)
    seed = {  # Problem 3 of the seed, as its author rounded them
        r"\mathbf{z}^{(0)}": (np.zeros((2, 2)), 4),
        r"\mathbf{p}^{(0)}": (np.full((2, 2), 0.5), 4),
        r"d\mathbf{z}^{(0)}": (np.array([[-0.25, 0.25], [0.25, -0.25]]), 4),
        r"d\mathbf{W}^{(0)}": (np.array([[-0.25, 0.25], [0.25, -0.25]]), 4),
        r"d\mathbf{b}^{(0)}": (np.zeros((2, 1)), 4),
        r"\mathbf{W}^{(1)}": (np.array([[0.25, -0.25], [-0.25, 0.25]]), 4),
        r"\mathbf{b}^{(1)}": (np.zeros((2, 1)), 4),
        r"\mathbf{z}^{(1)}": (np.array([[0.25, -0.25], [-0.25, 0.25]]), 4),
        r"\mathbf{p}^{(1)}": (np.array([[0.62, 0.38], [0.38, 0.62]]), 2),
        r"d\mathbf{z}^{(1)}": (np.array([[-0.19, 0.19], [0.19, -0.19]]), 2),
        r"d\mathbf{W}^{(1)}": (np.array([[-0.19, 0.19], [0.19, -0.19]]), 2),
        r"d\mathbf{b}^{(1)}": (np.zeros((2, 1)), 2),
        r"\mathbf{W}^{(2)}": (np.array([[0.44, -0.44], [-0.44, 0.44]]), 2),
        r"\mathbf{b}^{(2)}": (np.zeros((2, 1)), 2),
    }
    for name, (want, decimals) in seed.items():
        assert name in eq, f"no equation for {name}"
        np.testing.assert_array_equal(np.round(result(eq[name]), decimals), want, err_msg=name)
    assert scalar_after_last_equals(eq[r"\mathbf{J}^{(0)}"]) == 0.6931
    assert scalar_after_last_equals(eq[r"\mathbf{J}^{(1)}"]) == 0.4741


def test_the_equations_come_in_the_seeds_order_with_its_kind_of_latex(default_markdown: str) -> None:
    names = [lhs(b) for b in math_blocks(default_markdown, "markdown")]
    per_iteration = ["z", "p", "J", "dz", "dW", "db", "W", "b"]
    seed_order = []
    for t in range(2):
        for n in per_iteration:
            bold = ("d" if n.startswith("d") else "") + rf"\mathbf{{{n.lstrip('d')}}}"
            seed_order.append(f"{bold}^{{({t + 1 if n in ('W', 'b') else t})}}")
    setup = [r"\mathbf{X}", r"\mathbf{Y}", r"\mathbf{W}^{(0)}", r"\mathbf{b}^{(0)}"]
    assert names == setup + seed_order
    # The seed's constructions: $$ … $$ blocks with bmatrix, W X + b·[1 1], (p − Y) ÷ 2, dz·Xᵀ, dz·[1;1].
    text = default_markdown
    z0 = r"$$\mathbf{z}^{(0)} = \mathbf{W}^{(0)} \mathbf{X} + \mathbf{b}^{(0)} = "
    assert z0 + r"\begin{bmatrix} 0 & 0 \\ 0 & 0 \end{bmatrix} \cdot" in text
    assert r"\cdot \begin{bmatrix} 1 & 1 \end{bmatrix} = \begin{bmatrix} 0 & 0 \\ 0 & 0 \end{bmatrix}$$" in text
    assert r"\right) \div 2 = \begin{bmatrix} -0.25 & 0.25 \\ 0.25 & -0.25 \end{bmatrix}$$" in text
    assert r"d\mathbf{W}^{(0)} = d\mathbf{z}^{(0)} \cdot \mathbf{X}^{T} =" in text
    assert r"d\mathbf{b}^{(0)} = d\mathbf{z}^{(0)} \cdot \begin{bmatrix} 1 \\ 1 \end{bmatrix} =" in text
    assert r"\mathbf{W}^{(1)} = \mathbf{W}^{(0)} - d\mathbf{W}^{(0)} =" in text
    assert r"\frac{e^{0.25}}{e^{0.25}+e^{-0.25}}" in text  # the seed's p entries
    assert "## First iteration:" in text and "## Second iteration:" in text
    assert "Verified: an independent run of Model.fit" in text


def test_with_two_digits_the_matrices_read_as_in_the_seed() -> None:
    text = gradient_descent(digits=2).to_markdown()
    for matrix in (
        r"\begin{bmatrix} 0.25 & -0.25 \\ -0.25 & 0.25 \end{bmatrix}",
        r"\begin{bmatrix} 0.62 & 0.38 \\ 0.38 & 0.62 \end{bmatrix}",
        r"\begin{bmatrix} -0.19 & 0.19 \\ 0.19 & -0.19 \end{bmatrix}",
        r"\begin{bmatrix} 0.44 & -0.44 \\ -0.44 & 0.44 \end{bmatrix}",
        r"\begin{bmatrix} 0 \\ 0 \end{bmatrix}",
    ):
        assert matrix in text


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
@pytest.mark.parametrize("layout", ["seed", "rows"])
def test_every_printed_matrix_of_problem3_matches_pytorch(fmt: str, layout: str) -> None:
    sheet = gradient_descent(layout=layout, digits=6)
    expected = torch_reference(
        Problem(
            [(2, "linear")],
            I2,
            I2,
            [np.zeros((2, 2))],
            [np.zeros(2)],
            "crossEntropyLogit",
            "sgd",
            1.0,
            steps=2,
            batch_size=2,
        ),
        layout,
    )
    assert check_rendered(sheet, sheet.render(fmt), fmt, expected, 6) > 20
    assert sheet.verified is True
