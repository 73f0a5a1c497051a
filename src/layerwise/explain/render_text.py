"""Plain-text rendering of a ``Worksheet`` for a terminal.

Each item of an equation becomes a box of lines (a matrix is as tall as it has rows);
boxes sit side by side, centred on a common middle line::

             [ 0  0 ]   [ 1  0 ]   [ 0 ]                [ 0  0 ]
    z(0)  =  [ 0  0 ] · [ 0  1 ] + [ 0 ] · [ 1  1 ]  =  [ 0  0 ]

An equation wider than the page continues on the next lines, one relation per line.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from .worksheet import RELATIONS, Equation, Heading, Item, Matrix, Paragraph, Scalar, SymbolicMatrix, Tex, format_number

if TYPE_CHECKING:
    from .worksheet import Worksheet

PAGE_WIDTH = 100
Box = list[str]


def matrix_box(entries: list[list[str]], transposed: bool = False) -> Box:
    """``[ a  b ]`` rows with right-aligned columns; ``ᵀ`` after the first row when transposed."""
    widths = [max(len(row[c]) for row in entries) for c in range(len(entries[0]))]
    lines = ["[ " + "  ".join(e.rjust(w) for e, w in zip(row, widths, strict=True)) + " ]" for row in entries]
    if transposed:
        lines = [lines[0] + "ᵀ"] + [line + " " for line in lines[1:]]
    return lines


def item_box(item: Item, digits: int) -> Box:
    if isinstance(item, Tex):
        return [item.text]
    if isinstance(item, Matrix):
        entries = [[format_number(v, digits)[1] for v in row] for row in item.values]
        return matrix_box(entries, item.transposed)
    if isinstance(item, Scalar):
        return [format_number(item.value, digits)[1]]
    if isinstance(item, SymbolicMatrix):
        return matrix_box(item.text)
    raise TypeError(f"not a worksheet item: {item!r}")


def beside(boxes: list[Box], gap: str = " ") -> Box:
    """Boxes side by side, each centred on the tallest one's middle line."""
    boxes = [b for b in boxes if b and any(b)]
    if not boxes:
        return [""]
    middle = max((len(b) - 1) // 2 for b in boxes)
    height = max(middle - (len(b) - 1) // 2 + len(b) for b in boxes)
    lines = [""] * height
    for k, box in enumerate(boxes):
        width = max(len(line) for line in box)
        top = middle - (len(box) - 1) // 2
        for r in range(height):
            cell = box[r - top] if 0 <= r - top < len(box) else ""
            lines[r] += (gap if k else "") + cell.ljust(width)
    return [line.rstrip() for line in lines]


def equation_text(eq: Equation, digits: int, width: int = PAGE_WIDTH) -> str:
    lhs = beside([item_box(i, digits) for i in eq.lhs])
    segments = [(RELATIONS[rel][1], beside([item_box(i, digits) for i in items])) for rel, items in eq.rhs]
    one_line = beside([lhs] + [b for rel, box in segments for b in ([rel], box)], gap=" ")
    if max(len(line) for line in one_line) <= width or len(segments) < 2:
        return "\n".join(one_line)
    # One relation per line, the relations lined up under the first one.
    indent = " " * max(len(line) for line in lhs)
    blocks = [beside([lhs, [segments[0][0]], segments[0][1]])]
    blocks += [beside([[indent], [rel], box]) for rel, box in segments[1:]]
    return "\n".join("\n".join(b) for b in blocks)


def _paragraph_text(block: Paragraph) -> str:
    text = "".join(part[2] if part[0] == "math" else part[1] for part in block.parts)
    return "\n".join(textwrap.fill(p, PAGE_WIDTH) for p in text.split("\n"))


def render_text(sheet: Worksheet, digits: int) -> str:
    out = [sheet.title, "=" * len(sheet.title)]
    for block in sheet.blocks:
        out.append("")
        if isinstance(block, Heading):
            out += [block.text, ("-" if block.level <= 2 else "~") * len(block.text)]
        elif isinstance(block, Paragraph):
            out.append(_paragraph_text(block))
        else:
            out.append(equation_text(block, digits))
    return "\n".join(out) + "\n"
