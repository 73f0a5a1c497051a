"""The three renderings: Markdown through a CommonMark renderer with math, LaTeX through pdflatex, plain text."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

from layerwise.explain import Worksheet, cross_entropy, format_number, gradient_descent, jacobian
from layerwise.explain.render_text import matrix_box

from .helpers import math_blocks


def sheets() -> dict[str, Worksheet]:
    x = [[1, 0, 1, 2, 0.5], [0, 1, 1, -1, 2]]
    return {
        "problem3": gradient_descent(),
        "relu-adam-batches": gradient_descent(
            "[(3,ReLU),(2,Sigmoid),(2,Linear)]",
            x,
            [[1, 0, 0, 1, 0], [0, 1, 1, 0, 1]],
            init="he",
            optimizer="adam",
            lr=0.1,
            steps=3,
            batch_size=2,
        ),
        "tanh-mse-momentum-rows": gradient_descent(
            "[(2,Tanh),(1,Linear)]",
            np.array(x).T,
            [[1], [0], [2], [-1], [0.5]],
            loss="mse",
            init="xavier",
            optimizer="momentum",
            lr=0.1,
            steps=2,
            batch_size=3,
            layout="rows",
        ),
        "logistic-softmax-hidden": gradient_descent(
            "[(3,Softmax),(1,Linear)]",
            x,
            [[1, 0, 1, 0, 1]],
            loss="logistic",
            init="uniform",
            steps=2,
        ),
        # 12 samples: wider than amsmath's default of 10 matrix columns
        "wide": gradient_descent("[(2,Linear)]", np.tile(np.eye(2), 6), np.tile(np.eye(2), 6), steps=1),
        "jacobian": jacobian([1, 2, 3]),
        "cross-entropy": cross_entropy([1000, 1001, 1002], [0, 0, 1]),
    }


SHEETS = sheets()


@pytest.mark.parametrize("name", SHEETS)
def test_markdown_renders_with_commonmark_and_dollar_math(name: str) -> None:
    sheet = SHEETS[name]
    text = sheet.to_markdown()
    md = MarkdownIt("commonmark").use(dollarmath_plugin, double_inline=True)
    tokens = md.parse(text)
    blocks = [t for t in tokens if t.type == "math_block"]
    assert len(blocks) == len(sheet.equations())
    assert [b.content.strip() for b in blocks] == [m.strip() for m in math_blocks(text, "markdown")]
    html = md.render(text)
    assert "$" not in html  # every display block and every inline formula was read as math
    headings = [t for t in tokens if t.type == "heading_open"]
    assert len(headings) == 1 + sum(type(b).__name__ == "Heading" for b in sheet.blocks)
    # Paragraph text keeps its characters: no stray emphasis from '*' or '_'.
    assert "<em>" not in html and "<strong>" not in html


def compile_latex(source: str, folder: Path) -> subprocess.CompletedProcess:
    (folder / "sheet.tex").write_text(source)
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "sheet.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def needs_pdflatex() -> None:
    if shutil.which("pdflatex"):
        return
    if os.environ.get("CI"):
        pytest.fail("pdflatex not found: CI installs it (apt-get install texlive-latex-base)")
    pytest.skip("pdflatex not found (apt-get install --no-install-recommends texlive-latex-base)")


@pytest.mark.parametrize("name", SHEETS)
def test_latex_compiles_with_pdflatex(name: str, tmp_path: Path) -> None:
    source = SHEETS[name].to_latex()
    assert source.isascii(), {c for c in source if not c.isascii()}
    assert source.count(r"\begin{bmatrix}") == source.count(r"\end{bmatrix}") > 0
    needs_pdflatex()
    done = compile_latex(source, tmp_path)
    log = (tmp_path / "sheet.log").read_text(errors="replace") if (tmp_path / "sheet.log").exists() else ""
    assert done.returncode == 0, (
        "\n".join(line for line in log.splitlines() if line.startswith("!")) or done.stdout[-3000:]
    )
    assert (tmp_path / "sheet.pdf").stat().st_size > 1000
    assert "Undefined control sequence" not in log and "Missing $ inserted" not in log


def test_a_latex_error_is_caught_by_the_compile_check(tmp_path: Path) -> None:
    """The compile test can fail: a double superscript (a bug the sheets once had) stops pdflatex."""
    needs_pdflatex()
    bad = SHEETS["problem3"].to_latex().replace(r"\mathbf{X}^{T}", r"\mathbf{X}^{T}^{2}", 1)
    assert compile_latex(bad, tmp_path).returncode != 0


def test_text_matrices_are_aligned() -> None:
    text = SHEETS["problem3"].to_text()
    assert "W(2) = W(1) - dW(1) = [  0.25  -0.25 ] - [ -0.1888   0.1888 ] = [  0.4388  -0.4388 ]" in text
    assert "                      [ -0.25   0.25 ]   [  0.1888  -0.1888 ]   [ -0.4388   0.4388 ]" in text
    assert "     = 0.6931" in text and "     = 0.4741" in text
    assert "$" not in text and "\\" not in text
    # Rows of one printed matrix are equally wide, columns right-aligned.
    box = matrix_box([["1", "-0.25"], ["10.5", "0"]], transposed=True)
    assert box == ["[    1  -0.25 ]ᵀ", "[ 10.5      0 ] "]


@pytest.mark.parametrize(
    ("x", "digits", "latex", "text"),
    [
        (0.5, 4, "0.5", "0.5"),
        (-0.25, 4, "-0.25", "-0.25"),
        (0.69314718, 4, "0.6931", "0.6931"),
        (1.0, 4, "1", "1"),
        (-1e-5, 4, r"-1 \times 10^{-5}", "-1e-5"),
        (2.5e-7, 3, r"2.5 \times 10^{-7}", "2.5e-7"),
        (2.7e-17, 4, "0", "0"),  # float64 round-off of an exact 0
        (-0.00004, 4, r"-4 \times 10^{-5}", "-4e-5"),
        (1234567.0, 2, r"1.2 \times 10^{6}", "1.2e6"),
        (0.4999, 0, r"5 \times 10^{-1}", "5e-1"),  # would round to 0: one significant digit
        (2.5, 0, "2", "2"),
    ],
)
def test_format_number(x: float, digits: int, latex: str, text: str) -> None:
    assert format_number(x, digits) == (latex, text)
