"""Tests of the architecture parser: property-based for the MLP notation (issue 5), the CNN grammar (issue 8).

Whatever the text, ``parse_architecture`` either returns a valid architecture or
raises ``ArchitectureParseError`` with ``0 <= position <= len(text)``; it never
raises anything else.  Generated architectures round-trip through
``format_architecture``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import layerwise as lw
from layerwise.arch import (
    build_layers,
    build_network,
    format_architecture,
    format_layers,
    input_rank,
    parse_architecture,
    parse_layers,
)
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


# -- the CNN grammar (issue 8) ---------------------------------------------------------
LENET = "[conv(6,5,pad=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),(120,ReLU),(84,ReLU),(10,Linear)]"
CONVNET = "[conv(32,3),relu,maxpool(2),conv(64,3),relu,maxpool(2),flatten,dropout(0.5),(10,Linear)]"


def kinds(text: str) -> list[str]:
    return [spec.kind for spec in parse_layers(text)]


def test_lenet_and_convnet_parse_build_and_count_parameters():
    assert kinds(LENET) == ["conv", "activation", "maxpool", "conv", "activation", "maxpool", "dense", "dense", "dense"]
    assert format_layers(LENET) == LENET  # already canonical
    net = build_network(LENET, (1, 28, 28), seed=0)
    # PyTorch's LeNet-5 of the same shape: 156 + 2,416 + 48,120 + 10,164 + 850 parameters.
    assert net.n_params == 61_706
    assert net.output_shape == (10,)
    shapes = dict(zip(map(repr, net.layers), [*net.shapes[1:], net.output_shape], strict=False))
    assert shapes["Flatten()"] == (400,)  # put in automatically before (120,ReLU)
    assert [type(layer).__name__ for layer in net.layers][:2] == ["Rescale", "Conv2D"]
    net = build_network(CONVNET, (1, 28, 28), seed=0)
    assert net.n_params == 34_826  # what Keras' model.summary() reports for mnist_convnet
    assert sum(isinstance(layer, lw.layers.Flatten) for layer in net.layers) == 1  # named, so not added again


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("conv(32,3),relu,maxpool(2),10", "[conv(32,3),relu,maxpool(2),(10,Linear)]"),
        (" [ CONV( 6 , 5 , PAD = 2 ) , ReLU , MaxPool(2) , (10, 'Linear') ] ",
         "[conv(6,5,pad=2),relu,maxpool(2),(10,Linear)]"),
        ("[conv2d(8,3x5,stride=2,padding=same),bn,tanh,avgpool2d(3,stride=2),dense(10)]",
         "[conv(8,3x5,stride=2,pad=same),batchnorm,tanh,avgpool(3,stride=2),(10,Linear)]"),
        ("[conv(4,3,1,1),maxpool(2,2),flatten(),dropout(.25),dense(16,relu),batchnorm(),relu(),10:softmax,]",
         "[conv(4,3,pad=1),maxpool(2),flatten,dropout(0.25),(16,ReLU),batchnorm,relu,(10,Softmax)]"),
        ("[conv(4,3,pad=valid),maxpool(3,stride=3),dropout(0)]", "[conv(4,3),maxpool(3),dropout(0)]"),
    ],
)  # fmt: skip
def test_cnn_forms_and_canonical_text(text, canonical):
    assert format_layers(text) == canonical
    assert format_layers(canonical) == canonical


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("[conv(32),relu]", 1, "conv needs kernel"),
        ("[conv(0,3)]", 6, "filters must be a positive integer"),
        ("[conv(8,3,stride=0)]", 17, "stride must be a positive integer"),
        ("[conv(8,3,pad=full)]", 14, "pad must be a number, same or valid"),
        ("[conv(8,3,dilation=2)]", 10, "no argument 'dilation'"),
        ("[conv(8,3,1,0,7)]", 14, "at most 4 arguments"),
        ("[conv(8,3,stride=2,stride=2)]", 19, "stride given twice"),
        ("[conv(8,2.5)]", 8, "kernel must be a positive integer"),
        ("[maxpool(2x0)]", 9, "size must be"),
        ("[dropout(1.5)]", 9, "rate must be a number in [0, 1)"),
        ("[dropout(relu)]", 9, "rate must be a number"),
        ("[dense(10,relux)]", 10, "unknown activation 'relux'"),
        ("[convolution(8,3)]", 1, "unknown layer 'convolution'"),
        ("[conv(8,3),relu(1)]", 16, "expected ')'"),
        ("[conv(8,3) relu]", 11, "expected ']'"),
        ("[conv(8,3),]]", 12, "unexpected ']'"),
        ("[conv(8,3),@]", 11, "expected a layer"),
        ("[conv(8,3,pad=)]", 14, "expected a number"),
        ("[conv(1234567890,3)]", 6, "too many"),
    ],
)
def test_cnn_error_positions(text, position, fragment):
    with pytest.raises(ArchitectureParseError) as info:
        parse_layers(text)
    assert info.value.position == position, str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "shape", "position", "fragment"),
    [
        ("[conv(6,5),maxpool(2),conv(16,5),maxpool(2),conv(16,5),(10,Linear)]", (1, 28, 28), 44, "larger than"),
        ("[maxpool(2),(10,Linear)]", (784,), 1, "cannot take input of shape (784)"),
        ("[(10,ReLU),conv(4,3)]", (1, 28, 28), 11, "cannot take input of shape (10)"),
    ],
)
def test_layers_that_do_not_fit_name_their_position(text, shape, position, fragment):
    with pytest.raises(ArchitectureParseError) as info:
        build_network(text, shape)
    assert info.value.position == position and fragment in str(info.value)


def test_parse_architecture_is_for_mlps_only():
    with pytest.raises(ArchitectureParseError) as info:
        parse_architecture("[(140,ReLU),dropout(0.5),(10,Linear)]")
    assert info.value.position == 12 and "NeuralNetwork builds MLPs only" in str(info.value)
    assert parse_architecture("[dense(140,relu),10]") == [(140, "relu"), (10, "linear")]


def test_input_rank_and_mlp_networks():
    assert input_rank(LENET) == 3 and input_rank("[(140,ReLU),(10,Linear)]") == 1
    assert input_rank("[(256,ReLU),dropout(0.5),batchnorm,(10,Linear)]") == 1  # shape-agnostic items: still rows
    mlp = build_network("[(140,ReLU),(10,Linear)]", (784,), seed=3)
    seed_net = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=3, input_scale=1 / 255)
    assert type(mlp) is lw.NeuralNetwork
    for (name, a), (_, b) in zip(mlp.named_parameters(), seed_net.named_parameters(), strict=True):
        assert np.array_equal(a, b), name
    regularised = build_network("[(64,ReLU),dropout(0.5),(10,Linear)]", (784,), seed=0, input_scale=None)
    assert [type(layer).__name__ for layer in regularised.layers] == ["Dense", "ReLU", "Dropout", "Dense", "Linear"]


def test_auto_init_follows_the_next_activation():
    layers = build_layers("[conv(4,3),batchnorm,relu,conv(4,3),tanh,(16,ReLU),dense(10),sigmoid,(10,Linear)]",
                          (1, 8, 8))  # fmt: skip
    inits = [layer.init for layer in layers if hasattr(layer, "init")]
    assert inits == ["he", "xavier", "he", "xavier", "xavier"]


def test_a_cnn_built_from_a_string_trains_and_matches_the_hand_built_one():
    """The string gives exactly the network one would build by hand (same seed, same weights)."""
    L = lw.layers
    by_hand = lw.Sequential(
        [L.Rescale(1 / 255), L.Conv2D(4, 3, padding=1, init="he"), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
         L.Dropout(0.5), L.Dense(10, init="xavier"), L.Linear()],
        input_shape=(1, 8, 8), seed=5,
    )  # fmt: skip
    built = build_network("[conv(4,3,pad=1),relu,maxpool(2),flatten,dropout(0.5),(10,Linear)]", (1, 8, 8), seed=5)
    assert [repr(layer) for layer in built.layers] == [repr(layer) for layer in by_hand.layers]
    assert np.array_equal(built.flat_params, by_hand.flat_params)
    x = np.random.default_rng(0).integers(0, 256, (16, 1, 8, 8)).astype(np.uint8)
    np.testing.assert_array_equal(built.forward(x), by_hand.forward(x))


cnn_items = st.one_of(
    st.builds(lambda f, k, s, p: f"conv({f},{k}" + (f",stride={s}" if s > 1 else "") + (f",pad={p}" if p else "") + ")",
              st.integers(1, 99), st.sampled_from(["1", "3", "5", "3x5"]), st.integers(1, 3),
              st.sampled_from([0, 1, 2, "same", "1x2"])),
    st.builds(lambda kind, k, s: f"{kind}({k}" + (f",stride={s}" if s != k else "") + ")",
              st.sampled_from(["maxpool", "avgpool"]), st.integers(1, 4), st.integers(1, 4)),
    st.builds(lambda r: f"dropout({r:g})", st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75])),
    st.sampled_from(["flatten", "batchnorm", *sorted({a.__name__.lower() for a in ACTIVATIONS.values()})]),
    st.builds(lambda u, a: f"({u},{get_activation(a).__name__})", st.integers(1, 512),
              st.sampled_from(ACTIVATION_NAMES)),

)  # fmt: skip


@FAST
@given(st.lists(cnn_items, min_size=1, max_size=8))
def test_cnn_strings_round_trip(items):
    text = "[" + ",".join(items) + "]"
    assert format_layers(text) == text
    assert format_layers(parse_layers(text)) == text


@FAST
@given(st.text(max_size=60))
@example("[conv(")
@example("[conv(3,3,pad=")
@example("[dropout(1e999)]")
@example("[conv(3,\U0001d7d1)]")
def test_random_text_parse_layers_fails_cleanly(text):
    try:
        layers = parse_layers(text)
    except ArchitectureParseError as err:
        assert 0 <= err.position <= len(text)
        return
    assert layers and all(isinstance(spec.kind, str) for spec in layers)
