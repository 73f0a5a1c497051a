"""Issue 5, item 1: bad input is refused at the public boundary with a precise error.

Each case checks the exception's class (a ``layerwise.errors`` class *and* the
builtin it refines) and that the message names the culprit: the argument and,
where it makes sense, the value that was given.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import layerwise as lw
from layerwise import errors
from layerwise.layers import get_activation
from layerwise.losses import get_loss
from layerwise.optim import get_optimizer

N_IN, N_CLASSES, N = 6, 3, 12


def make_model(loss: str = "crossEntropyLogit", n_out: int = N_CLASSES) -> lw.Model:
    net = lw.NeuralNetwork(N_IN, [(5, "ReLU"), (n_out, "Linear")], seed=0)
    return lw.Model(net, loss=loss, optimizer=lw.optim.SGD(0.1))


def good_x(n: int = N) -> np.ndarray:
    return np.random.default_rng(1).random((n, N_IN)).astype(np.float32)


def good_y(n: int = N) -> np.ndarray:
    return np.arange(n) % N_CLASSES


def with_nan(x: np.ndarray, value: float, index: tuple[int, int] = (3, 2)) -> np.ndarray:
    x = x.astype(np.float64)
    x[index] = value
    return x


def fit(**kw):
    """``model.fit`` with good arguments, some replaced by ``kw``."""
    args = {"x": good_x(), "y": good_y(), "epochs": 1, "batch_size": 4, "verbose": 0}
    args.update(kw)
    model = make_model()
    return lambda: model.fit(**args)


def check(call, exc_type: type, builtin: type, *needles: str) -> Exception:
    """Run ``call``; it must raise ``exc_type`` (also a ``builtin``) whose message holds every needle."""
    assert issubclass(exc_type, errors.LayerwiseError) and issubclass(exc_type, builtin)
    with pytest.raises(exc_type) as info:
        call()
    assert isinstance(info.value, builtin)
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return info.value


one_hot = np.eye(N_CLASSES)[good_y()]
not_one_hot = one_hot.copy()
not_one_hot[5] = [1, 1, 0]
soft_rows = np.full((N, N_CLASSES), 1 / N_CLASSES)

# (id, call, exception, builtin, substrings the message must contain)
FIT_CASES = [
    # rank and feature count
    ("x-1d", fit(x=good_x()[0]), errors.ShapeError, ValueError, ["x", "2-D", "(6,)", "x[None, :]"]),
    ("x-0d", fit(x=np.float32(3)), errors.ShapeError, ValueError, ["x", "shape ()"]),
    ("x-features", fit(x=good_x()[:, :4]), errors.ShapeError, ValueError, ["x", "6 features", "(12, 4)"]),
    ("x-3d-wrong", fit(x=np.zeros((N, 2, 2))), errors.ShapeError, ValueError, ["x", "6 features", "(12, 4)"]),
    ("x-ragged", fit(x=[[1.0] * N_IN, [1.0]]), errors.ShapeError, ValueError, ["x", "ragged"]),
    # x / y lengths
    ("y-short", fit(y=good_y()[:-1]), errors.ShapeError, ValueError, ["y", "12 targets", "(11,)"]),
    ("y-long", fit(y=good_y(N + 3)), errors.ShapeError, ValueError, ["y", "12 targets", "(15,)"]),
    ("y-scalar", fit(y=1), errors.ShapeError, ValueError, ["y", "12 targets", "shape ()"]),
    # empty
    (
        "x-empty",
        fit(x=np.zeros((0, N_IN)), y=np.zeros(0, int)),
        errors.InputError,
        ValueError,
        ["x", "at least one sample", "(0, 6)"],
    ),
    # dtypes
    ("x-strings", fit(x=np.full((N, N_IN), "a")), errors.DTypeError, TypeError, ["x", "numeric", "<U1"]),
    ("x-object", fit(x=good_x().astype(object)), errors.DTypeError, TypeError, ["x", "numeric", "object"]),
    ("x-complex", fit(x=good_x().astype(complex)), errors.DTypeError, TypeError, ["x", "complex128"]),
    ("x-bool", fit(x=good_x() > 0.5), errors.DTypeError, TypeError, ["x", "bool"]),
    ("x-str", fit(x="pixels.npy"), errors.DTypeError, TypeError, ["x", "str"]),
    ("x-none", fit(x=None), errors.DTypeError, TypeError, ["x", "NoneType"]),
    ("y-strings", fit(y=np.array(["cat"] * N)), errors.DTypeError, TypeError, ["y", "numeric", "<U3"]),
    ("y-object", fit(y=np.array([0, 1, None] * 4)), errors.DTypeError, TypeError, ["y", "object"]),
    # NaN and inf
    ("x-nan", fit(x=with_nan(good_x(), np.nan)), errors.InputError, ValueError, ["x", "finite", "nan", "(3, 2)"]),
    (
        "x-inf",
        fit(x=with_nan(good_x(), np.inf, (0, 5))),
        errors.InputError,
        ValueError,
        ["x", "finite", "inf", "(0, 5)"],
    ),
    ("x-neg-inf", fit(x=with_nan(good_x(), -np.inf, (11, 0))), errors.InputError, ValueError, ["x", "-inf", "(11, 0)"]),
    ("y-nan-onehot", fit(y=with_nan(one_hot, np.nan)), errors.InputError, ValueError, ["y", "finite"]),
    ("y-nan-labels", fit(y=np.where(good_y() == 1, np.nan, good_y())), errors.InputError, ValueError, ["y", "finite"]),
    # labels
    (
        "y-negative",
        fit(y=np.where(good_y() == 1, -1, good_y())),
        errors.LabelError,
        ValueError,
        ["y", "[0, 2]", "3 outputs", "got -1"],
    ),
    ("y-too-big", fit(y=np.where(good_y() == 1, 3, good_y())), errors.LabelError, ValueError, ["y", "[0, 2]", "got 3"]),
    ("y-way-too-big", fit(y=good_y() * 1000), errors.LabelError, ValueError, ["y", "got 2000"]),
    ("y-fractional", fit(y=good_y() + 0.5), errors.LabelError, ValueError, ["y", "integer", "0.5"]),
    ("y-not-one-hot", fit(y=not_one_hot), errors.LabelError, ValueError, ["y", "one-hot", "row 5", "[1.0, 1.0, 0.0]"]),
    ("y-soft-rows", fit(y=soft_rows), errors.LabelError, ValueError, ["y", "one-hot", "row 0"]),
    (
        "y-zero-row",
        fit(y=np.where(np.arange(N)[:, None] == 7, 0, one_hot)),
        errors.LabelError,
        ValueError,
        ["y", "row 7", "[0.0, 0.0, 0.0]"],
    ),
    ("y-one-hot-width", fit(y=np.eye(4)[good_y()]), errors.ShapeError, ValueError, ["y", "3 columns", "(12, 4)"]),
    ("y-3d", fit(y=np.zeros((N, 3, 1))), errors.ShapeError, ValueError, ["y", "(12, 3, 1)"]),
    # batch size and epochs
    ("batch-zero", fit(batch_size=0), errors.ConfigError, ValueError, ["batch_size", "positive integer", "0"]),
    ("batch-negative", fit(batch_size=-8), errors.ConfigError, ValueError, ["batch_size", "-8"]),
    ("batch-float", fit(batch_size=2.5), errors.ConfigError, ValueError, ["batch_size", "2.5"]),
    ("batch-str", fit(batch_size="32"), errors.ConfigError, ValueError, ["batch_size", "'32'"]),
    ("batch-bool", fit(batch_size=True), errors.ConfigError, ValueError, ["batch_size", "True"]),
    ("epochs-zero", fit(epochs=0), errors.ConfigError, ValueError, ["epochs", "positive integer", "0"]),
    ("epochs-negative", fit(epochs=-1), errors.ConfigError, ValueError, ["epochs", "-1"]),
    ("epochs-float", fit(epochs=1.5), errors.ConfigError, ValueError, ["epochs", "1.5"]),
    # validation data goes through the same checks, under its own name
    ("val-not-pair", fit(validation_data=(good_x(),)), errors.ConfigError, ValueError, ["validation_data", "pair"]),
    (
        "val-features",
        fit(validation_data=(good_x()[:, :5], good_y())),
        errors.ShapeError,
        ValueError,
        ["validation_data[0]", "6 features"],
    ),
    (
        "val-labels",
        fit(validation_data=(good_x(), good_y() + 7)),
        errors.LabelError,
        ValueError,
        ["validation_data[1]", "got 9"],
    ),
]

# Losses, through Model: each loss has its own notion of valid targets.
LOSS_CASES = [
    (
        "logistic-range",
        lambda: make_model("logistic", 1).fit(good_x(), np.full(N, 2.0), verbose=0),
        errors.LabelError,
        ValueError,
        ["y", "[0, 1]", "logistic", "2.0"],
    ),
    (
        "logistic-negative",
        lambda: make_model("logistic", 1).fit(good_x(), np.full(N, -0.5), verbose=0),
        errors.LabelError,
        ValueError,
        ["y", "[0, 1]", "-0.5"],
    ),
    (
        "logistic-shape",
        lambda: make_model("logistic", 1).fit(good_x(), np.zeros((N, 2)), verbose=0),
        errors.ShapeError,
        ValueError,
        ["y", "(12, 1)", "(12, 2)"],
    ),
    (
        "logistic-many-outputs",
        lambda: make_model("logistic", 3).fit(good_x(), np.zeros(N), verbose=0),
        errors.ShapeError,
        ValueError,
        ["logistic", "1 output", "has 3"],
    ),
    (
        "mse-shape",
        lambda: make_model("mse", 3).fit(good_x(), np.zeros((N, 2)), verbose=0),
        errors.ShapeError,
        ValueError,
        ["y", "(12, 3)", "(12, 2)"],
    ),
    (
        "mse-1d-for-3-outputs",
        lambda: make_model("mse", 3).fit(good_x(), np.zeros(N), verbose=0),
        errors.ShapeError,
        ValueError,
        ["y", "(12, 3)", "(12,)"],
    ),
    (
        "mse-inf",
        lambda: make_model("mse", 3).fit(good_x(), np.full((N, 3), np.inf), verbose=0),
        errors.InputError,
        ValueError,
        ["y", "finite"],
    ),
]


def inference_cases():
    model = make_model()
    cases = []
    for method in ("predict", "predict_proba", "predict_logits"):
        call = getattr(model, method)
        cases += [
            (f"{method}-1d", lambda c=call: c(good_x()[0]), errors.ShapeError, ValueError, ["x", "x[None, :]"]),
            (
                f"{method}-features",
                lambda c=call: c(good_x()[:, :3]),
                errors.ShapeError,
                ValueError,
                ["x", "6 features", "(12, 3)"],
            ),
            (
                f"{method}-empty",
                lambda c=call: c(np.zeros((0, N_IN))),
                errors.InputError,
                ValueError,
                ["x", "at least one sample"],
            ),
            (
                f"{method}-nan",
                lambda c=call: c(with_nan(good_x(), np.nan)),
                errors.InputError,
                ValueError,
                ["x", "nan", "(3, 2)"],
            ),
            (
                f"{method}-object",
                lambda c=call: c(good_x().astype(object)),
                errors.DTypeError,
                TypeError,
                ["x", "object"],
            ),
            (
                f"{method}-batch-zero",
                lambda c=call: c(good_x(), batch_size=0),
                errors.ConfigError,
                ValueError,
                ["batch_size", "0"],
            ),
            (
                f"{method}-batch-negative",
                lambda c=call: c(good_x(), batch_size=-1),
                errors.ConfigError,
                ValueError,
                ["batch_size", "-1"],
            ),
            (
                f"{method}-batch-float",
                lambda c=call: c(good_x(), batch_size=0.5),
                errors.ConfigError,
                ValueError,
                ["batch_size", "0.5"],
            ),
        ]
    cases += [
        (
            "evaluate-length",
            lambda: model.evaluate(good_x(), good_y()[:5]),
            errors.ShapeError,
            ValueError,
            ["y", "12 targets", "(5,)"],
        ),
        (
            "evaluate-labels",
            lambda: model.evaluate(good_x(), good_y() - 1),
            errors.LabelError,
            ValueError,
            ["y", "got -1"],
        ),
        (
            "evaluate-nan",
            lambda: model.evaluate(with_nan(good_x(), np.nan), good_y()),
            errors.InputError,
            ValueError,
            ["x", "nan"],
        ),
        (
            "evaluate-batch-zero",
            lambda: model.evaluate(good_x(), good_y(), batch_size=0),
            errors.ConfigError,
            ValueError,
            ["batch_size", "0"],
        ),
        # A negative batch size used to make evaluate return (0.0, 0.0) silently.
        (
            "evaluate-batch-negative",
            lambda: model.evaluate(good_x(), good_y(), batch_size=-4),
            errors.ConfigError,
            ValueError,
            ["batch_size", "-4"],
        ),
    ]
    return cases


def construction_cases():
    return [
        (
            "nn-activation",
            lambda: lw.NeuralNetwork(4, [(5, "ReLUU")]),
            errors.ConfigError,
            ValueError,
            ["activation", "'ReLUU'", "relu"],
        ),
        (
            "nn-units-zero",
            lambda: lw.NeuralNetwork(4, [(0, "ReLU")]),
            errors.ConfigError,
            ValueError,
            ["architecture[0]", "units", "0"],
        ),
        (
            "nn-units-float",
            lambda: lw.NeuralNetwork(4, [(5, "relu"), (2.5, "linear")]),
            errors.ConfigError,
            ValueError,
            ["architecture[1]", "2.5"],
        ),
        (
            "nn-not-pair",
            lambda: lw.NeuralNetwork(4, [(5, "relu", 1)]),
            errors.ConfigError,
            ValueError,
            ["architecture[0]", "pair"],
        ),
        ("nn-empty", lambda: lw.NeuralNetwork(4, []), errors.ConfigError, ValueError, ["architecture", "[]"]),
        ("nn-n-inputs", lambda: lw.NeuralNetwork(0, [(5, "relu")]), errors.ConfigError, ValueError, ["n_inputs", "0"]),
        (
            "nn-n-inputs-str",
            lambda: lw.NeuralNetwork("784", [(5, "relu")]),
            errors.ConfigError,
            ValueError,
            ["n_inputs", "'784'"],
        ),
        (
            "nn-dtype-int",
            lambda: lw.NeuralNetwork(4, [(5, "relu")], dtype=np.int32),
            errors.ConfigError,
            ValueError,
            ["dtype", "float32", "int32"],
        ),
        (
            "nn-dtype-garbage",
            lambda: lw.NeuralNetwork(4, [(5, "relu")], dtype="float33"),
            errors.ConfigError,
            ValueError,
            ["dtype", "float33"],
        ),
        (
            "nn-init",
            lambda: lw.NeuralNetwork(4, [(5, "relu")], init="glorious"),
            errors.ConfigError,
            ValueError,
            ["init", "glorious"],
        ),
        (
            "nn-arch-string",
            lambda: lw.NeuralNetwork(4, "[(5,ReLU),(3,Linera)]"),
            errors.ArchitectureParseError,
            ValueError,
            ["Linera", "position 13"],
        ),
        ("dense-n-in", lambda: lw.Dense(0, 3), errors.ConfigError, ValueError, ["n_in", "0"]),
        ("dense-n-out", lambda: lw.Dense(3, -2), errors.ConfigError, ValueError, ["n_out", "-2"]),
        ("dense-n-out-float", lambda: lw.Dense(3, 2.0), errors.ConfigError, ValueError, ["n_out", "2.0"]),
        ("dense-init", lambda: lw.Dense(3, 2, init="nope"), errors.ConfigError, ValueError, ["init", "nope"]),
        (
            "dense-assign",
            lambda: setattr(lw.Dense(3, 2), "W", np.zeros((2, 3))),
            errors.ShapeError,
            ValueError,
            ["Dense.W", "(3, 2)", "(2, 3)"],
        ),
        ("model-net", lambda: lw.Model("net"), errors.ConfigError, ValueError, ["net", "str"]),
        (
            "model-loss",
            lambda: lw.Model(make_model().net, loss="hinge"),
            errors.ConfigError,
            ValueError,
            ["loss", "'hinge'", "crossEntropyLogit"],
        ),
        (
            "model-optimizer",
            lambda: lw.Model(make_model().net, optimizer="adagrad"),
            errors.ConfigError,
            ValueError,
            ["optimizer", "'adagrad'", "Adam"],
        ),
        (
            "get-loss",
            lambda: get_loss("cross entropy logits"),
            errors.ConfigError,
            ValueError,
            ["loss", "'cross entropy logits'"],
        ),
        ("get-loss-none", lambda: get_loss(None), errors.ConfigError, ValueError, ["loss", "None"]),
        ("get-optimizer", lambda: get_optimizer("sgdd"), errors.ConfigError, ValueError, ["optimizer", "'sgdd'"]),
        ("get-optimizer-int", lambda: get_optimizer(3), errors.ConfigError, ValueError, ["optimizer", "3"]),
        (
            "get-activation",
            lambda: get_activation("gelu"),
            errors.ConfigError,
            ValueError,
            ["activation", "'gelu'", "tanh"],
        ),
        ("get-activation-cls", lambda: get_activation(int), errors.ConfigError, ValueError, ["activation"]),
    ]


def optimizer_cases():
    return [
        ("sgd-lr-zero", lambda: lw.optim.SGD(lr=0), ["lr", "0"]),
        ("sgd-lr-negative", lambda: lw.optim.SGD(lr=-0.1), ["lr", "-0.1"]),
        ("sgd-lr-nan", lambda: lw.optim.SGD(lr=float("nan")), ["lr", "nan"]),
        ("sgd-lr-inf", lambda: lw.optim.SGD(lr=float("inf")), ["lr", "inf"]),
        ("sgd-lr-str", lambda: lw.optim.SGD(lr="0.1"), ["lr", "'0.1'"]),
        ("sgd-momentum-one", lambda: lw.optim.SGD(momentum=1.0), ["momentum", "1.0"]),
        ("sgd-momentum-negative", lambda: lw.optim.SGD(momentum=-0.5), ["momentum", "-0.5"]),
        ("sgd-nesterov-no-momentum", lambda: lw.optim.SGD(nesterov=True), ["nesterov", "momentum"]),
        ("sgd-weight-decay", lambda: lw.optim.SGD(weight_decay=-1e-4), ["weight_decay", "-0.0001"]),
        ("adam-beta1", lambda: lw.optim.Adam(betas=(1.0, 0.999)), ["betas[0]", "1.0"]),
        ("adam-beta2", lambda: lw.optim.Adam(betas=(0.9, 1.5)), ["betas[1]", "1.5"]),
        ("adam-betas-shape", lambda: lw.optim.Adam(betas=0.9), ["betas", "0.9"]),
        ("adam-eps", lambda: lw.optim.Adam(eps=-1e-8), ["eps", "-1e-08"]),
        ("adamw-lr", lambda: lw.optim.AdamW(lr=0.0), ["lr", "0.0"]),
        ("rmsprop-alpha", lambda: lw.optim.RMSProp(alpha=1.01), ["alpha", "1.01"]),
        ("get-optimizer-kwargs", lambda: get_optimizer("adam", lr=-3.0), ["lr", "-3.0"]),
    ]


@pytest.mark.parametrize(
    ("call", "exc_type", "builtin", "needles"),
    [pytest.param(c, e, b, n, id=i) for i, c, e, b, n in FIT_CASES + LOSS_CASES],
)
def test_fit_refuses(call, exc_type, builtin, needles):
    check(call, exc_type, builtin, *needles)


@pytest.mark.parametrize(
    ("call", "exc_type", "builtin", "needles"),
    [pytest.param(c, e, b, n, id=i) for i, c, e, b, n in inference_cases()],
)
def test_inference_refuses(call, exc_type, builtin, needles):
    check(call, exc_type, builtin, *needles)


@pytest.mark.parametrize(
    ("call", "exc_type", "builtin", "needles"),
    [pytest.param(c, e, b, n, id=i) for i, c, e, b, n in construction_cases()],
)
def test_construction_refuses(call, exc_type, builtin, needles):
    check(call, exc_type, builtin, *needles)


@pytest.mark.parametrize(("call", "needles"), [pytest.param(c, n, id=i) for i, c, n in optimizer_cases()])
def test_optimizer_hyperparameters_refused(call, needles):
    check(call, errors.ConfigError, ValueError, *needles)


ARCH_CASES = [
    # (text, position of the error, substring of the message)
    ("", 0, "empty architecture"),
    ("   ", 3, "empty architecture"),
    ("[(140,ReLU),(10,Linear)", 23, "expected ']'"),
    ("[(140,ReLU),(10,Lin)]", 16, "unknown activation 'Lin'"),
    ("[(140 ReLU)]", 6, "expected ','"),
    ("[(,ReLU)]", 2, "number of units"),
    ("[(0,ReLU)]", 2, "at least 1"),
    ("[(140,)]", 6, "activation name"),
    ("[(140,'ReLU)]", 6, "unclosed quote"),
    ("[(140,ReLU)] extra", 13, "unexpected 'e'"),
    ("140:relu,,10", 9, "expected a layer"),
    ("140:relu,10:", 12, "activation name"),
    ("140:swish", 4, "unknown activation 'swish'"),
    ("140;relu", 3, "unexpected ';'"),
    ("-5:relu", 0, "expected a layer"),
    ("²:relu", 0, "expected a layer"),  # str.isdigit() is True, int() refuses it
    ("1" * 5000, 0, "digits"),  # int() refuses > 4300 digits
    ("[(10,relu),]x", 12, "unexpected 'x'"),
]


@pytest.mark.parametrize(("text", "position", "needle"), ARCH_CASES, ids=[repr(t[0])[:30] for t in ARCH_CASES])
@pytest.mark.parametrize("entry", ["parse_architecture", "NeuralNetwork"])
def test_architecture_string_errors_carry_position(text, position, needle, entry):
    call = (
        (lambda: lw.parse_architecture(text)) if entry == "parse_architecture" else (lambda: lw.NeuralNetwork(4, text))
    )
    err = check(call, errors.ArchitectureParseError, ValueError, needle, f"position {position}")
    assert isinstance(err, errors.ConfigError)
    assert err.position == position
    assert err.text == text
    # The pointer line puts '^' under the offending character.
    assert re.search(r"\n  " + " " * position + r"\^$", str(err))


def test_architecture_not_a_string():
    err = check(lambda: lw.parse_architecture(140), errors.ArchitectureParseError, ValueError, "string", "int")
    assert err.position == 0


def test_valid_input_still_accepted():
    """The checks are not over-eager: the forms the docs promise all train and predict."""
    model = make_model()
    x = good_x()
    model.fit(x, good_y(), epochs=1, batch_size=5, verbose=0)
    model.fit(x.astype(np.float64), one_hot, verbose=0)  # one-hot rows
    model.fit((x * 255).astype(np.uint8), good_y().astype(np.float64), verbose=0)  # integer x, float labels
    model.fit(x.reshape(N, 2, 3), good_y().astype(np.uint8), verbose=0)  # (n, *dims) flattens
    model.fit(x.tolist(), good_y().tolist(), verbose=0)  # nested lists
    assert model.predict(x, batch_size=5).shape == (N,)
    assert model.predict_proba(x[:1]).shape == (1, N_CLASSES)
    loss, acc = model.evaluate(x, good_y(), batch_size=7)
    assert np.isfinite(loss) and 0 <= acc <= 1
    logistic = make_model("logistic", 1)
    logistic.fit(x, (good_y() > 0).astype(float), verbose=0)
    assert set(np.unique(logistic.predict(x))) <= {0, 1}
    assert lw.NeuralNetwork(4, "5:relu,3", dtype="float64").dtype == np.float64


def test_checks_leave_caller_arrays_alone():
    """Validation flattens (n, *dims) without copying the caller's data into something else."""
    model = make_model()
    x = good_x().reshape(N, 3, 2)
    before = x.copy()
    model.fit(x, one_hot, verbose=0)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    ("state", "culprit"),
    [
        ("not a dict", "dict"),
        ({"epoch": -1, "step": 0}, "'epoch'"),
        ({"epoch": 0, "step": 1.5}, "'step'"),
        ({"epoch": 0, "step": 0, "totals": {"loss": 0.0}}, "'totals'"),
        (
            {
                "epoch": 0,
                "step": 0,
                "totals": {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0},
                "rng_state": {"bit_generator": "MT19937"},
            },
            "'rng_state'",
        ),
    ],
)
def test_fit_refuses_a_bad_resume_state(state, culprit):
    net = lw.NeuralNetwork(3, [(2, "Linear")], seed=0)
    model = lw.Model(net)
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(lw.errors.ConfigError, match="resume") as info:
        model.fit(x, np.array([0, 1, 0, 1]), verbose=0, resume=state)
    assert culprit in str(info.value)


def test_load_refuses_a_bad_train_state(tmp_path):
    model = lw.Model(lw.NeuralNetwork(3, [(2, "Linear")], seed=0))
    path = tmp_path / "ckpt.npz"
    lw.io.save_model(model, path, train_state={"epoch": 0, "step": -3})
    with pytest.raises(lw.errors.ModelFileError, match="'step'"):
        lw.load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0, 0, 0), (4999, 2, 8, 8), (1717, 1, 3, 5)])
def test_all_finite_checks_every_chunk(bad, where):
    # all_finite works through x a chunk of samples at a time (no mask as large as x):
    # a bad value in the first, the last or a middle chunk is found, also through strided views.
    from layerwise.validation import _FINITE_CHUNK, all_finite

    x = np.random.default_rng(0).random((5000, 3, 9, 9), dtype=np.float32)
    assert x.size > 4 * _FINITE_CHUNK and all_finite(x)
    x[where] = bad
    assert not all_finite(x)
    assert not all_finite(x.transpose(0, 2, 3, 1))  # a view, not C-contiguous
    assert all_finite(np.delete(x, where[0], axis=0))
    with pytest.raises(errors.InputError, match=re.escape(f"at index {where}")):
        lw.validation.check_features(x, (3, 9, 9))
