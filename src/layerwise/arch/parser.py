"""The parser and formatter of architecture strings; the grammar is in ``layerwise.arch``'s docstring."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArchitectureParseError
from ..layers import ACTIVATIONS

Architecture = list[tuple[int, str]]
MAX_UNITS_DIGITS = 9

#: Layer words of the grammar (aliases included) -> the LayerSpec kind.
LAYER_WORDS = {
    "conv": "conv",
    "conv2d": "conv",
    "maxpool": "maxpool",
    "maxpool2d": "maxpool",
    "avgpool": "avgpool",
    "avgpool2d": "avgpool",
    "dense": "dense",
    "dropout": "dropout",
    "flatten": "flatten",
    "batchnorm": "batchnorm",
    "bn": "batchnorm",
}
#: Kinds that work on images (channels, height, width): a network using one takes images.
IMAGE_KINDS = frozenset({"conv", "maxpool", "avgpool", "flatten"})
_DIGITS = tuple("0123456789")
# ASCII digits only: in a str pattern \d would also match '٣' or '𝟎'.
_NUMBER = re.compile(r"(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class LayerSpec:
    """One item of an architecture string.

    kind: ``dense`` (``units``, ``activation``), ``conv`` (``filters``, ``kernel``,
    ``stride``, ``pad``), ``maxpool``/``avgpool`` (``size``, ``stride`` or None),
    ``dropout`` (``rate``), ``flatten``, ``batchnorm`` or ``activation`` (``name``).
    position: where the item starts in the text (for error messages).
    """

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    position: int = 0

    def __str__(self) -> str:
        return _format_item(self)


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

    def found(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        return repr(self.text[pos]) if pos < len(self.text) else "the end"

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise self.fail(f"expected {char!r}, found {found!r}" if found else f"expected {char!r}, found the end")
        self.pos += 1

    def integer(self, what: str = "a number of units") -> int:
        self.skip_spaces()
        start = self.pos
        # ASCII digits only: str.isdigit() also accepts '²' or '١', which int() rejects or reads oddly.
        while self.pos < len(self.text) and self.text[self.pos] in "0123456789":
            self.pos += 1
        if start == self.pos:
            raise self.fail(f"expected {what}, found {self.found(start)}", start)
        if self.pos - start > MAX_UNITS_DIGITS:  # int() refuses > 4300 digits; no layer is that wide
            raise self.fail(f"the number has {self.pos - start} digits, too many", start)
        return int(self.text[start : self.pos])

    def units(self, what: str = "the number of units") -> int:
        start = self.pos
        value = self.integer()
        if value < 1:
            raise self.fail(f"{what} must be at least 1", start)
        return value

    def word(self) -> str:
        """An identifier (letters, digits, _) at the current position, after spaces; '' if there is none."""
        self.skip_spaces()
        return self.raw_word()

    def raw_word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def name(self) -> str:
        self.skip_spaces()
        start = self.pos
        quote = self.peek()
        if quote in ("'", '"'):
            self.pos += 1
        word_start = self.pos
        word = self.raw_word()
        if not word:
            raise self.fail("expected an activation name such as ReLU or Linear", start)
        if quote in ("'", '"'):
            if self.pos >= len(self.text) or self.text[self.pos] != quote:
                raise self.fail(f"unclosed quote {quote}", start)
            self.pos += 1
        if word.lower() not in ACTIVATIONS:
            raise self.fail(f"unknown activation {word!r} (known: {', '.join(sorted(ACTIVATIONS))})", word_start)
        return word.lower()

    # -- items ----------------------------------------------------------------------
    def tuple_item(self) -> LayerSpec:
        start = self.pos
        self.expect("(")
        units = self.units()
        self.expect(",")
        name = self.name()
        self.expect(")")
        return LayerSpec("dense", {"units": units, "activation": name}, start)

    def short_item(self) -> LayerSpec:
        start = self.pos
        units = self.units()
        name = "linear"
        if self.peek() == ":":
            self.pos += 1
            name = self.name()
        return LayerSpec("dense", {"units": units, "activation": name}, start)

    def word_item(self) -> LayerSpec:
        start = self.pos
        word = self.word()
        key = word.lower()
        if key in ACTIVATIONS:
            if self.peek() == "(":  # relu() is fine; relu(3) is not
                self.pos += 1
                self.expect(")")
            return LayerSpec("activation", {"name": key}, start)
        if key not in LAYER_WORDS:
            known = ", ".join(dict.fromkeys(LAYER_WORDS.values()))
            raise self.fail(f"unknown layer {word!r} (known: {known}; activations {', '.join(ACTIVATIONS)})", start)
        kind = LAYER_WORDS[key]
        args = self.arguments() if self.peek() == "(" else []
        return LayerSpec(kind, _check_arguments(self, kind, word, args, start), start)

    def arguments(self) -> list[tuple[str | None, Any, int, int]]:
        """``( arg ("," arg)* )``, ``arg := [key "="] value``: (key or None, value, key's and value's position)."""
        self.expect("(")
        args: list[tuple[str | None, Any, int, int]] = []
        if self.peek() == ")":
            self.pos += 1
            return args
        while True:
            self.skip_spaces()
            start, key = self.pos, None
            if self.text[self.pos : self.pos + 1].isalpha():
                word = self.raw_word()
                if self.peek() == "=":
                    self.pos += 1
                    key = word.lower()
                else:  # a word value (same, valid, an activation): read it again as a value
                    self.pos = start
            self.skip_spaces()
            value_start = self.pos
            args.append((key, self.value(), start, value_start))
            if self.peek() != ",":
                self.expect(")")
                return args
            self.pos += 1

    def value(self) -> Any:
        """A number (int or float), an int pair ``HxW``, or a word (same, valid, an activation)."""
        self.skip_spaces()
        start = self.pos
        if self.text[self.pos : self.pos + 1].isalpha():
            return self.raw_word()
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            raise self.fail(f"expected a number, found {self.found(start)}", start)
        if not match.group().isdigit():
            self.pos = match.end()
            return float(match.group())
        first = self.integer("a number")
        if self.text[self.pos : self.pos + 1] in ("x", "X") and self.text[self.pos + 1 : self.pos + 2] in _DIGITS:
            self.pos += 1
            return (first, self.integer("a number"))
        return first

    def item(self) -> LayerSpec:
        char = self.peek()
        if char == "(":
            return self.tuple_item()
        if char in _DIGITS:
            return self.short_item()
        if char.isalpha():
            return self.word_item()
        raise self.fail(f"expected a layer such as (140,ReLU), 140:relu or conv(32,3), found {self.found()}")

    def parse(self) -> list[LayerSpec]:
        first = self.peek()
        if not first:
            raise self.fail("empty architecture; expected e.g. [(140,ReLU),(10,Linear)] or 140:relu,10")
        bracketed = first == "["
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
        if self.peek():
            raise self.fail(f"unexpected {self.peek()!r} after the architecture")
        return layers


# ----------------------------------------------------------------------------- arguments
#: Per kind: positional argument names, then keyword names with their defaults.
_SIGNATURES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "conv": (("filters", "kernel"), {"stride": 1, "pad": 0}),
    "maxpool": (("size",), {"stride": None}),
    "avgpool": (("size",), {"stride": None}),
    "dense": (("units",), {"activation": "linear"}),
    "dropout": (("rate",), {}),
    "flatten": ((), {}),
    "batchnorm": ((), {}),
}
_ALIASES = {"padding": "pad", "kernel_size": "kernel", "pool_size": "size", "p": "rate"}


def _check_arguments(
    p: _Parser, kind: str, word: str, args: list[tuple[str | None, Any, int, int]], where: int
) -> dict[str, Any]:
    """Match the arguments to ``kind``'s signature, as Python matches a call's; check each value."""
    positional, keywords = _SIGNATURES[kind]
    order = [*positional, *keywords]
    values: dict[str, Any] = {}
    seen_keyword = False
    for i, (key, value, key_pos, value_pos) in enumerate(args):
        if key is None:
            if seen_keyword:
                raise p.fail(f"{word}: a value without a name after a named one (name it, e.g. stride=2)", key_pos)
            if i >= len(order):
                raise p.fail(f"{word} takes at most {len(order)} arguments ({', '.join(order)})", key_pos)
            key = order[i]
        else:
            seen_keyword = True
        key = _ALIASES.get(key, key)
        if key not in order:
            raise p.fail(f"{word} has no argument {key!r} (it takes {', '.join(order) or 'none'})", key_pos)
        if key in values:
            raise p.fail(f"{word}: {key} given twice", key_pos)
        values[key] = _check_value(p, word, key, value, value_pos)

    missing = [name for name in positional if name not in values]
    if missing:
        raise p.fail(f"{word} needs {', '.join(missing)}, e.g. {_EXAMPLES[kind]}", where)
    return {**keywords, **values}


_EXAMPLES = {"conv": "conv(32,3)", "maxpool": "maxpool(2)", "avgpool": "avgpool(2)", "dense": "dense(128,relu)",
             "dropout": "dropout(0.5)", "flatten": "flatten", "batchnorm": "batchnorm"}  # fmt: skip


def _check_value(p: _Parser, word: str, key: str, value: Any, pos: int) -> Any:
    if key == "activation":
        if not isinstance(value, str) or value.lower() not in ACTIVATIONS:
            raise p.fail(f"{word}: unknown activation {value!r} (known: {', '.join(sorted(ACTIVATIONS))})", pos)
        return value.lower()
    if key == "rate":
        if isinstance(value, (tuple, str)) or not 0 <= value < 1:
            raise p.fail(f"{word}: the rate must be a number in [0, 1), got {_shown(value)}", pos)
        return float(value)
    if key == "pad" and isinstance(value, str):
        if value.lower() not in ("same", "valid"):
            raise p.fail(f"{word}: pad must be a number, same or valid, got {value!r}", pos)
        return value.lower()
    ok = isinstance(value, tuple) or (isinstance(value, int) and not isinstance(value, bool))
    minimum = 0 if key == "pad" else 1
    if not ok or min(value if isinstance(value, tuple) else (value,)) < minimum:
        expected = "an integer >= 0" if key == "pad" else "a positive integer"
        pairs = " or a pair such as 3x3" if key in ("kernel", "size", "stride", "pad") else ""
        raise p.fail(f"{word}: {key} must be {expected}{pairs}, got {_shown(value)}", pos)
    if isinstance(value, tuple) and key in ("filters", "units"):
        raise p.fail(f"{word}: {key} must be one integer, got {_shown(value)}", pos)
    return value


def _shown(value: Any) -> str:
    """A value as the grammar writes it: 3, 3x5, 0.5, same."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return value if isinstance(value, str) else repr(value)


# ----------------------------------------------------------------------------- public
def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ArchitectureParseError(f"architecture must be a string, got {type(text).__name__}", "", 0)
    return text


def parse_layers(text: str) -> list[LayerSpec]:
    """Any architecture string of the grammar above -> its items, in order.

    Raises ``ArchitectureParseError`` (a ``ValueError``) naming the position of the problem.
    """
    return _Parser(_check_text(text)).parse()


def is_mlp(layers: list[LayerSpec]) -> bool:
    """Only (units, activation) items: what the seed's ``NeuralNetwork`` notation can hold."""
    return all(spec.kind == "dense" for spec in layers)


def takes_images(layers: list[LayerSpec]) -> bool:
    """Does a network of these items take images (channels, height, width) rather than flat rows?"""
    return any(spec.kind in IMAGE_KINDS for spec in layers)


def input_rank(text: str) -> int:
    """1 when the network of ``text`` takes flat rows (n_features,), 3 when it takes images (C, H, W)."""
    return 3 if takes_images(parse_layers(text)) else 1


def parse_architecture(text: str) -> Architecture:
    """``"[(140,ReLU),(10,Linear)]"`` or ``"140:relu,10"`` -> ``[(140, "relu"), (10, "linear")]``.

    MLPs only (what ``NeuralNetwork`` builds); ``parse_layers`` reads CNN strings too.
    Raises ``ArchitectureParseError`` (a ``ValueError``) naming the position of the problem.
    """
    layers = parse_layers(text)
    for spec in layers:
        if spec.kind != "dense":
            raise ArchitectureParseError(
                f"{_format_item(spec)} is not a (units, activation) layer; NeuralNetwork builds MLPs only "
                f"(build CNNs with layerwise.arch.build_network)",
                text,
                spec.position,
            )
    return [(spec.args["units"], spec.args["activation"]) for spec in layers]


def format_architecture(layers: Architecture) -> str:
    """The seed's notation for a list of (units, activation name) pairs."""
    names = {cls: cls.__name__ for cls in ACTIVATIONS.values()}
    return "[" + ",".join(f"({u},{names[ACTIVATIONS[a.lower()]]})" for u, a in layers) + "]"


def format_layers(layers: list[LayerSpec] | str) -> str:
    """The canonical string of an architecture: ``[conv(6,5,pad=2),relu,maxpool(2),(120,ReLU),(10,Linear)]``.

    For an MLP it is ``format_architecture``'s seed notation; parsing it gives the same items.
    """
    if isinstance(layers, str):
        layers = parse_layers(layers)
    return "[" + ",".join(_format_item(spec) for spec in layers) + "]"


def _format_item(spec: LayerSpec) -> str:
    a = spec.args
    if spec.kind == "dense":
        return format_architecture([(a["units"], a["activation"])])[1:-1]
    if spec.kind == "activation":
        return a["name"]
    if spec.kind == "conv":
        extra = "" if a["stride"] in (1, (1, 1)) else f",stride={_shown(a['stride'])}"
        extra += "" if a["pad"] in (0, (0, 0), "valid") else f",pad={_shown(a['pad'])}"
        return f"conv({a['filters']},{_shown(a['kernel'])}{extra})"
    if spec.kind in ("maxpool", "avgpool"):
        stride = "" if a["stride"] is None or a["stride"] == a["size"] else f",stride={_shown(a['stride'])}"
        return f"{spec.kind}({_shown(a['size'])}{stride})"
    if spec.kind == "dropout":
        return f"dropout({a['rate']:g})"
    return spec.kind
