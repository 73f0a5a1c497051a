"""The ``Worksheet``: a worked solution as headings, paragraphs and equations of matrices.

A sheet is built once from recorded numbers and rendered three ways:

- ``to_markdown()``: Markdown whose equations are ``$$ … $$`` blocks with ``bmatrix``
  matrices, as in the seed's homework;
- ``to_latex()``: a standalone LaTeX document (``amsmath``, ``amssymb``);
- ``to_text()``: plain text for a terminal, matrices drawn with aligned columns.

An equation is a left-hand side and a chain of ``(relation, items)`` segments, each
item a symbol (``Tex``: LaTeX and a plain-text spelling), a numeric ``Matrix``, a
``Scalar`` or a ``SymbolicMatrix`` (entries such as ``\\log(0.62)``).  Every numeric
``Matrix`` carries a ``key`` naming the library quantity it shows (``"W:1:0"``: layer
1's W before step 0), so a test can check each printed matrix against its own reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

#: An equation wider than this many characters (estimated from its plain-text form)
#: is broken into aligned lines, one relation per line.
MAX_WIDTH = 110
#: Printed as 0 (see ``format_number``).
ROUNDOFF = 1e-12


# ----------------------------------------------------------------------------- items
@dataclass(frozen=True)
class Tex:
    """A symbol or operator: its LaTeX and its plain-text spelling."""

    latex: str
    text: str


@dataclass
class Matrix:
    """A numeric matrix (2-D, as displayed); ``key`` names the library quantity it shows."""

    values: np.ndarray
    key: str | None = None
    transposed: bool = False  # printed with a ᵀ after it

    def __post_init__(self) -> None:
        self.values = np.atleast_2d(np.asarray(self.values, dtype=np.float64))


@dataclass
class Scalar:
    value: float
    key: str | None = None


@dataclass
class SymbolicMatrix:
    """A matrix of formulas, e.g. the seed's ``\\frac{e^0}{e^0+e^0}`` entries: LaTeX and text per entry."""

    latex: list[list[str]]
    text: list[list[str]]


Item = Tex | Matrix | Scalar | SymbolicMatrix

RELATIONS = {"=": ("=", "="), "approx": (r"\approx", "≈"), "implies": (r"\Rightarrow", "=>")}


@dataclass
class Equation:
    """``lhs rel₁ items₁ rel₂ items₂ …``; relations are ``"="``, ``"approx"`` or ``"implies"``."""

    lhs: list[Item]
    rhs: list[tuple[str, list[Item]]]

    def __post_init__(self) -> None:
        for rel, _ in self.rhs:
            if rel not in RELATIONS:
                raise ConfigError(f"relation: expected one of {sorted(RELATIONS)}, got {rel!r}")

    def items(self) -> Iterator[Item]:
        yield from self.lhs
        for _, items in self.rhs:
            yield from items


@dataclass
class Paragraph:
    """Text with inline pieces: ``("text", s)``, ``("math", latex, text)`` or ``("code", s)``."""

    parts: list[tuple[str, ...]]


@dataclass
class Heading:
    text: str
    level: int = 2


Block = Heading | Paragraph | Equation


# ----------------------------------------------------------------------------- numbers
def check_digits(digits: object) -> int:
    """The number of decimals printed: an integer from 0 to 15."""
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or not 0 <= digits <= 15:
        raise ConfigError(f"digits: expected an integer from 0 to 15, got {digits!r}")
    return int(digits)


def format_number(x: float, digits: int) -> tuple[str, str]:
    """(LaTeX, text) for ``x`` rounded to ``digits`` decimals, trailing zeros dropped (0.50 -> 0.5).

    A non-zero value that would round to 0 (or one of a million or more) is written in
    scientific notation with ``digits`` significant digits instead: ``2.5 \\times 10^{-7}``.
    Below ``ROUNDOFF`` it is 0: float64 round-off of a sum that is 0 exactly (db in Problem 3
    is 2.8e-17), not a number worth a line of digits.
    """
    x = float(x)
    if not math.isfinite(x):
        return (r"\infty" if x > 0 else r"-\infty", "inf" if x > 0 else "-inf") if x == x else ("\\text{NaN}", "nan")
    if abs(x) < ROUNDOFF:
        return "0", "0"
    fixed = f"{x:.{digits}f}"
    if abs(x) >= 1e6 or float(fixed) == 0:
        mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
        mantissa = _strip(mantissa)
        power = int(exponent)
        return f"{mantissa} \\times 10^{{{power}}}", f"{mantissa}e{power}"
    text = _strip(fixed)
    return text, text


def _strip(number: str) -> str:
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return "0" if number in ("-0", "") else number


# ----------------------------------------------------------------------------- the sheet
@dataclass
class Worksheet:
    """A worked solution.  ``blocks``: headings, paragraphs, equations in reading order."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    digits: int = 4
    #: True when the sheet's final check passed, False when it failed, None for no check.
    verified: bool | None = None

    # -- building ---------------------------------------------------------------------
    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Heading(text, level))

    def paragraph(self, *parts: str | tuple[str, ...]) -> None:
        """Plain strings are text; tuples are ``("math", latex, text)`` or ``("code", s)``."""
        self.blocks.append(Paragraph([("text", p) if isinstance(p, str) else p for p in parts]))

    def equation(self, lhs: Sequence[Item] | Item, *rhs: tuple[str, Sequence[Item] | Item]) -> None:
        as_list = lambda v: [v] if isinstance(v, (Tex, Matrix, Scalar, SymbolicMatrix)) else list(v)  # noqa: E731
        self.blocks.append(Equation(as_list(lhs), [(rel, as_list(items)) for rel, items in rhs]))

    # -- inspecting -------------------------------------------------------------------
    def equations(self) -> list[Equation]:
        return [b for b in self.blocks if isinstance(b, Equation)]

    def matrices(self) -> list[Matrix]:
        """Every numeric matrix, in the order the renderers print them."""
        return [item for eq in self.equations() for item in eq.items() if isinstance(item, Matrix)]

    # -- rendering --------------------------------------------------------------------
    def render(self, fmt: str = "markdown", digits: int | None = None) -> str:
        """``fmt``: ``"markdown"``, ``"latex"`` or ``"text"``."""
        renderers = {"markdown": self.to_markdown, "latex": self.to_latex, "text": self.to_text}
        if fmt not in renderers:
            raise ConfigError(f"format: expected one of {sorted(renderers)}, got {fmt!r}")
        return renderers[fmt](digits)

    def to_markdown(self, digits: int | None = None) -> str:
        """Markdown: ``#`` headings, paragraphs with ``$…$`` math, ``$$ … $$`` equation blocks."""
        digits = self.digits if digits is None else digits
        out = [f"# {_markdown_escape(self.title)}"]
        for block in self.blocks:
            if isinstance(block, Heading):
                out.append("#" * min(block.level, 6) + " " + _markdown_escape(block.text))
            elif isinstance(block, Paragraph):
                out.append(_paragraph(block, "markdown"))
            else:
                out.append(f"$${equation_latex(block, digits)}$$")
        return "\n\n".join(out) + "\n"

    def to_latex(self, digits: int | None = None) -> str:
        """A standalone document: ``pdflatex`` compiles it with amsmath and amssymb only."""
        digits = self.digits if digits is None else digits
        widest = max(
            [m.values.shape[1] for m in self.matrices()]
            + [len(s.latex[0]) for eq in self.equations() for s in eq.items() if isinstance(s, SymbolicMatrix)],
            default=1,
        )
        body = []
        for block in self.blocks:
            if isinstance(block, Heading):
                command = {1: "section*", 2: "subsection*"}.get(block.level, "subsubsection*")
                body.append(f"\\{command}{{{latex_escape(block.text)}}}")
            elif isinstance(block, Paragraph):
                body.append(_paragraph(block, "latex"))
            else:
                body.append(f"\\[ {equation_latex(block, digits)} \\]")
        preamble = [
            r"\documentclass[10pt]{article}",
            r"\usepackage[margin=2cm]{geometry}",
            r"\usepackage{amsmath}",
            r"\usepackage{amssymb}",
            # amsmath's matrices hold 10 columns unless told more.
            f"\\setcounter{{MaxMatrixCols}}{{{max(10, widest)}}}",
            r"\allowdisplaybreaks",
            r"\setlength{\parindent}{0pt}",
            r"\setlength{\parskip}{0.6em}",
            f"\\title{{{latex_escape(self.title)}}}",
            r"\date{}",
            r"\begin{document}",
            r"\maketitle",
        ]
        return "\n".join(preamble) + "\n\n" + "\n\n".join(body) + "\n\n\\end{document}\n"

    def to_text(self, digits: int | None = None) -> str:
        """Plain text: matrices in aligned columns between brackets."""
        from .render_text import render_text

        return render_text(self, self.digits if digits is None else digits)


# ----------------------------------------------------------------------------- LaTeX pieces
def matrix_latex(values: np.ndarray, digits: int) -> str:
    rows = [" & ".join(format_number(v, digits)[0] for v in row) for row in values]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def item_latex(item: Item, digits: int) -> str:
    if isinstance(item, Tex):
        return item.latex
    if isinstance(item, Matrix):
        return matrix_latex(item.values, digits) + ("^T" if item.transposed else "")
    if isinstance(item, Scalar):
        return format_number(item.value, digits)[0]
    rows = [" & ".join(row) for row in item.latex]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def _join(parts: list[str]) -> str:
    return " ".join(p for p in parts if p)


def equation_latex(eq: Equation, digits: int) -> str:
    """One line ``lhs = … = …``, or an ``aligned`` block with one relation per line when it is wide."""
    lhs = _join([item_latex(i, digits) for i in eq.lhs])
    segments = [(RELATIONS[rel][0], _join([item_latex(i, digits) for i in items])) for rel, items in eq.rhs]
    if equation_width(eq, digits) <= MAX_WIDTH or len(segments) < 2:
        return _join([lhs] + [f"{rel} {text}" for rel, text in segments])
    lines = [f"{lhs} &{segments[0][0]} {segments[0][1]}"] + [f"&{rel} {text}" for rel, text in segments[1:]]
    return r"\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}"


def equation_width(eq: Equation, digits: int) -> int:
    """Estimated width in characters of the equation on one line (its plain-text form)."""
    from .render_text import item_box

    width = sum(len(item_box(i, digits)[0]) + 1 for i in eq.lhs)
    for _, items in eq.rhs:
        width += 3 + sum(len(item_box(i, digits)[0]) + 1 for i in items)
    return width


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
# Characters the sheets use in plain text, spelled for pdflatex (whose default fonts lack them).
_LATEX_UNICODE = {
    "–": "--",
    "—": "---",
    "’": "'",
    "…": r"\ldots{}",
    "×": r"$\times$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "≈": r"$\approx$",
    "·": r"$\cdot$",
    "←": r"$\leftarrow$",
    "−": r"$-$",
    "⊙": r"$\odot$",
    "⊘": r"$\oslash$",
    "⟨": r"$\langle$",
    "⟩": r"$\rangle$",
    "Σ": r"$\Sigma$",
    "∂": r"$\partial$",
    "η": r"$\eta$",
    "β": r"$\beta$",
    "ε": r"$\varepsilon$",
    "μ": r"$\mu$",
    "δ": r"$\delta$",
    "₁": r"$_1$",
    "₂": r"$_2$",
    "²": r"$^2$",
    "ᵀ": r"$^T$",
}


def latex_escape(text: str) -> str:
    """Plain text made safe for a LaTeX paragraph."""
    out = "".join(_LATEX_SPECIAL.get(c, c) for c in text)
    for char, spelled in _LATEX_UNICODE.items():
        out = out.replace(char, spelled)
    return out


def _paragraph(block: Paragraph, fmt: str) -> str:
    pieces = []
    for kind, *rest in block.parts:
        if kind == "math":
            pieces.append(f"${rest[0]}$")
        elif kind == "code":
            pieces.append(f"`{rest[0]}`" if fmt == "markdown" else f"\\texttt{{{latex_escape(rest[0])}}}")
        else:
            pieces.append(_markdown_escape(rest[0]) if fmt == "markdown" else latex_escape(rest[0]))
    return "".join(pieces)


def _markdown_escape(text: str) -> str:
    """Keep Markdown from reading *, _, $, [ or a leading # in plain text as markup."""
    for char in "\\*_$[]`":
        text = text.replace(char, "\\" + char)
    return text
