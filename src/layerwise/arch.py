"""Parse architecture strings: the seed's ``"[(140,ReLU),(10,Linear)]"`` or the short ``"140:relu,10"``.

A small hand-written parser (never ``eval``): it returns ``[(140, "relu"), (10, "linear")]``
and reports the character position of the first thing it cannot read.

Grammar (spaces allowed between tokens)::

    seed   := "[" item ("," item)* ","? "]"   |   item ("," item)*
    item   := "(" units "," name ")"
    short  := units (":" name)? ("," units (":" name)?)*      # no name means linear
    name   := identifier, optionally in '...' or "..."
"""

from __future__ import annotations

from .errors import ArchitectureParseError
from .layers import ACTIVATIONS

Architecture = list[tuple[int, str]]
MAX_UNITS_DIGITS = 9


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> ArchitectureParseError:
        return ArchitectureParseError(message, self.text, self.pos if pos is None else pos)

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_spaces()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise self.fail(f"expected {char!r}, found {found!r}" if found else f"expected {char!r}, found the end")
        self.pos += 1

    def units(self) -> int:
        self.skip_spaces()
        start = self.pos
        # ASCII digits only: str.isdigit() also accepts '²' or '١', which int() rejects or reads oddly.
        while self.pos < len(self.text) and self.text[self.pos] in "0123456789":
            self.pos += 1
        if start == self.pos:
            found = self.text[start] if start < len(self.text) else "the end"
            raise self.fail(f"expected a number of units, found {found!r}", start)
        if self.pos - start > MAX_UNITS_DIGITS:  # int() refuses > 4300 digits; no layer is that wide
            raise self.fail(f"the number of units has {self.pos - start} digits, too many", start)
        units = int(self.text[start : self.pos])
        if units < 1:
            raise self.fail("the number of units must be at least 1", start)
        return units

    def name(self) -> str:
        self.skip_spaces()
        start = self.pos
        quote = self.peek()
        if quote in ("'", '"'):
            self.pos += 1
        word_start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        word = self.text[word_start : self.pos]
        if not word:
            raise self.fail("expected an activation name such as ReLU or Linear", start)
        if quote in ("'", '"'):
            if self.pos >= len(self.text) or self.text[self.pos] != quote:
                raise self.fail(f"unclosed quote {quote}", start)
            self.pos += 1
        if word.lower() not in ACTIVATIONS:
            raise self.fail(f"unknown activation {word!r} (known: {', '.join(sorted(ACTIVATIONS))})", word_start)
        return word.lower()

    def item(self) -> tuple[int, str]:
        self.expect("(")
        units = self.units()
        self.expect(",")
        name = self.name()
        self.expect(")")
        return units, name

    def seed_form(self) -> Architecture:
        bracketed = self.peek() == "["
        if bracketed:
            self.pos += 1
        layers = [self.item()]
        while self.peek() == ",":
            self.pos += 1
            if bracketed and self.peek() == "]":  # trailing comma, as Python allows
                break
            layers.append(self.item())
        if bracketed:
            self.expect("]")
        return layers

    def short_form(self) -> Architecture:
        layers = []
        while True:
            units = self.units()
            name = "linear"
            if self.peek() == ":":
                self.pos += 1
                name = self.name()
            layers.append((units, name))
            if self.peek() != ",":
                return layers
            self.pos += 1

    def parse(self) -> Architecture:
        first = self.peek()
        if not first:
            raise self.fail("empty architecture; expected e.g. [(140,ReLU),(10,Linear)] or 140:relu,10")
        layers = self.seed_form() if first in "[(" else self.short_form()
        if self.peek():
            raise self.fail(f"unexpected {self.peek()!r} after the architecture")
        return layers


def parse_architecture(text: str) -> Architecture:
    """``"[(140,ReLU),(10,Linear)]"`` or ``"140:relu,10"`` -> ``[(140, "relu"), (10, "linear")]``.

    Raises ``ArchitectureParseError`` (a ``ValueError``) naming the position of the problem.
    """
    if not isinstance(text, str):
        raise ArchitectureParseError(f"architecture must be a string, got {type(text).__name__}", "", 0)
    return _Parser(text).parse()


def format_architecture(layers: Architecture) -> str:
    """The seed's notation for a list of (units, activation name) pairs."""
    names = {cls: cls.__name__ for cls in ACTIVATIONS.values()}
    return "[" + ",".join(f"({u},{names[ACTIVATIONS[a.lower()]]})" for u, a in layers) + "]"
