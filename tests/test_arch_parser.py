"""Property-based tests of the architecture parser (issue 5).

Whatever the text, ``parse_architecture`` either returns a valid architecture or
raises ``ArchitectureParseError`` with ``0 <= position <= len(text)``; it never
raises anything else.  Generated architectures round-trip through
``format_architecture``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import layerwise as lw
from layerwise.arch import format_architecture, parse_architecture
from layerwise.errors import ArchitectureParseError
from layerwise.layers import ACTIVATIONS, get_activation

FAST = settings(max_examples=200, deadline=500, suppress_health_check=[HealthCheck.too_slow])

ACTIVATION_NAMES = sorted(ACTIVATIONS)
# Characters the grammar cares about, plus a few it does not.
ALPHABET = "[](),:'\" \t\n0123456789reluRELUinatsgmoidxyz_-;.²١"


def parse_or_error(text: str):
    """The parse, or the ArchitectureParseError; any other exception fails the test."""
    try:
        layers = parse_architecture(text)
    except ArchitectureParseError as err:
        assert 0 <= err.position <= len(text), (err.position, text)
        assert err.text == text
        assert f"position {err.position}" in str(err)
        assert isinstance(err, ValueError)
        return err
    assert_valid(layers)
    return layers


def assert_valid(layers) -> None:
    assert isinstance(layers, list) and layers
    for units, name in layers:
        assert type(units) is int and units >= 1
        assert name in ACTIVATIONS


architectures = st.lists(
    st.tuples(st.integers(1, 64) | st.integers(1, 10**9 - 1), st.sampled_from(ACTIVATION_NAMES)), min_size=1, max_size=6
)


def seed_form(layers, spaces: bool = False, quotes: str = "", case=str.lower) -> str:
    sep = " " if spaces else ""
    items = [f"({sep}{u}{sep},{sep}{quotes}{case(a)}{quotes}{sep})" for u, a in layers]
    return "[" + f",{sep}".join(items) + "]"


def short_form(layers) -> str:
    return ",".join(f"{u}:{a}" for u, a in layers)


def canonical(layers):
    """(units, activation class): 'identity' and 'linear' are the same layer."""
    return [(u, get_activation(a)) for u, a in layers]


@FAST
@given(st.text(max_size=60))
@example("")
@example("[(")
@example("[(1" + "9" * 4400 + ",relu)]")
@example("\U0001d7ce:relu")  # a mathematical digit zero: isdigit() but not ASCII
def test_random_text_parses_or_fails_cleanly(text):
    parse_or_error(text)


@FAST
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_grammar_alphabet_parses_or_fails_cleanly(text):
    parse_or_error(text)


@FAST
@given(architectures, st.booleans(), st.sampled_from(["", "'", '"']), st.sampled_from([str.lower, str.upper]))
def test_seed_form_round_trips(layers, spaces, quotes, case):
    text = seed_form(layers, spaces, quotes, case)
    parsed = parse_architecture(text)
    assert canonical(parsed) == canonical(layers)
    formatted = format_architecture(parsed)
    assert canonical(parse_architecture(formatted)) == canonical(layers)
    # format -> parse -> format is a fixed point
    assert format_architecture(parse_architecture(formatted)) == formatted


@FAST
@given(architectures)
def test_short_form_round_trips(layers):
    parsed = parse_architecture(short_form(layers))
    assert canonical(parsed) == canonical(layers)
    assert canonical(parse_architecture(format_architecture(parsed))) == canonical(layers)


@st.composite
def mutated(draw):
    """A valid architecture string with a few characters deleted, replaced, inserted or swapped."""
    layers = draw(architectures)
    text = draw(st.sampled_from([seed_form(layers), short_form(layers), seed_form(layers, spaces=True)]))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "replace", "insert", "swap", "truncate"]))
        i = draw(st.integers(0, max(0, len(text) - 1)))
        char = draw(st.sampled_from(ALPHABET))
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "replace":
            text = text[:i] + char + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + char + text[i:]
        elif op == "swap" and i + 1 < len(text):
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        elif op == "truncate":
            text = text[:i]
    return text


@FAST
@given(mutated())
def test_mutated_valid_strings_parse_or_fail_cleanly(text):
    result = parse_or_error(text)
    # What parses also builds that network (when small enough to allocate quickly).
    if isinstance(result, list) and sum(u for u, _ in result) <= 256:
        net = lw.NeuralNetwork(3, text)
        assert net.architecture == result
        assert net.n_outputs == result[-1][0]


@pytest.mark.parametrize(
    "text",
    [
        "[(140,ReLU),(10,Linear)]",
        "[(140, 'ReLU'), (10, 'Linear')]",
        "140:relu,10",
        " 140 : ReLU , 10 : linear ",
        "[(140,ReLU),(10,Linear),]",
        "(140,relu),(10,linear)",
    ],
)
def test_documented_forms(text):
    assert parse_architecture(text) == [(140, "relu"), (10, "linear")]


def test_error_position_is_the_first_bad_character():
    """Appending garbage to a valid string leaves the error at the garbage, not before it."""
    valid = "[(140,ReLU),(10,Linear)]"
    for garbage in ["x", ")", "]", ",", "(1,relu)"]:
        err = parse_or_error(valid + garbage)
        assert isinstance(err, ArchitectureParseError)
        assert err.position == len(valid)
