"""The ``layerwise`` console script, run for real in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import layerwise
from layerwise.data import load
from layerwise.data.idx import write_idx

from .conftest import Result, data_root, needs_mnist, run_cli

SUBCOMMANDS = ["train", "evaluate", "predict", "summary", "reproduce"]
PNGS = ["learning_curves.png", "confusion_matrix.png"]


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        image.load()
        assert image.width > 100 and image.height > 100


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit code 2, exactly one line on stderr, ``layerwise: error: ...``, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("layerwise: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- help ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["", *SUBCOMMANDS])
def test_help(command: str) -> None:
    result = run_cli(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: layerwise {command}".rstrip())
    assert "--debug" in result.stdout


def test_python_dash_m_and_version() -> None:
    result = run_cli("--version", module=True)
    assert result.returncode == 0
    assert result.stdout.startswith("layerwise ")
    help_text = run_cli("predict", "--help", module=True).stdout
    assert "centred by its" in help_text and "--preprocess none" in help_text  # the documented preparation


# -- train, evaluate, predict, summary on real MNIST ----------------------------------
@needs_mnist
def test_train_mnist_acceptance(mnist_run: tuple[Path, Result]) -> None:
    out, result = mnist_run
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "seconds", "history", "config"):
        assert key in metrics
    assert metrics["test_accuracy"] >= 0.975
    assert metrics["train_accuracy"] > metrics["test_accuracy"]
    assert len(metrics["history"]) == 10
    for epoch in metrics["history"]:  # no hold-out here (--validation 0): no per-epoch validation numbers
        assert {"loss", "accuracy"} <= set(epoch) and "val_loss" not in epoch
    assert metrics["config"]["n_train"] == 60_000 and metrics["config"]["n_validation"] == 0
    config = metrics["config"]
    assert config["arch"] == "[(140,ReLU),(10,Linear)]"
    assert (config["optimizer"], config["lr"], config["epochs"], config["batch_size"], config["seed"]) == (
        "adam",
        1e-3,
        10,
        32,
        0,
    )
    assert len(metrics["per_class"]) == 10
    assert np.asarray(metrics["confusion_matrix"]).sum() == 10_000
    for name in PNGS:
        assert_png(out / name)
    assert not (out / "weights.png").exists()  # only for one-layer linear models
    assert not (out / "checkpoint.npz").exists()  # a finished run drops its checkpoint
    assert (out / "model.npz").is_file()
    assert "test" in result.stdout and "Wrote model.npz" in result.stdout


@needs_mnist
def test_evaluate(mnist_run: tuple[Path, Result]) -> None:
    out, _ = mnist_run
    result = run_cli("evaluate", str(out / "model.npz"), "--dataset", "mnist")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"accuracy  {100 * metrics['test_accuracy']:.2f}%" in result.stdout
    assert "precision" in result.stdout and "recall" in result.stdout
    table = [line for line in result.stdout.splitlines() if line[:1].isdigit() and "%" in line]
    assert len(table) == 10
    # a run folder works as MODEL too, and the data set defaults to the model's own
    again = run_cli("evaluate", str(out))
    assert again.returncode == 0 and again.stdout.splitlines()[1:] == result.stdout.splitlines()[1:]


@needs_mnist
def test_summary(mnist_run: tuple[Path, Result]) -> None:
    out, _ = mnist_run
    result = run_cli("summary", str(out / "model.npz"))
    assert result.returncode == 0, result.stderr
    assert "Dense(n_in=784, n_out=140)" in result.stdout
    assert "Total parameters: 111,310" in result.stdout


@needs_mnist
def test_predict_png_and_idx(mnist_run: tuple[Path, Result], tmp_path: Path) -> None:
    out, _ = mnist_run
    (_, _), (x_test, y_test) = load("mnist")
    # a dark-on-light picture, larger than 28x28, in colour: converted, resized and inverted
    Image.fromarray(255 - x_test[0]).resize((112, 112)).convert("RGB").save(tmp_path / "digit.png")
    Image.fromarray(x_test[1]).save(tmp_path / "digit.jpg", quality=95)  # light on dark: kept
    write_idx(tmp_path / "five.idx.gz", x_test[:5])
    result = run_cli(
        "predict",
        str(out / "model.npz"),
        str(tmp_path / "digit.png"),
        str(tmp_path / "digit.jpg"),
        str(tmp_path / "five.idx.gz"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 7
    predicted = [int(line.split(": ")[1].split()[0]) for line in lines]
    assert predicted[0] == y_test[0] and predicted[1] == y_test[1]
    assert sum(p == t for p, t in zip(predicted[2:], y_test[:5], strict=True)) >= 4
    assert all(line.count("%") == 3 for line in lines)  # the top-3 probabilities
    assert lines[2].startswith(f"{tmp_path / 'five.idx.gz'}[0]: ")


@needs_mnist
def test_predict_wrong_image_size(mnist_run: tuple[Path, Result], tmp_path: Path) -> None:
    out, _ = mnist_run
    write_idx(tmp_path / "small.idx", np.zeros((3, 8, 8), np.uint8))
    result = run_cli("predict", str(out / "model.npz"), str(tmp_path / "small.idx"))
    assert_user_error(result, "8×8", "784 inputs")


@needs_mnist
def test_train_linear_writes_weight_templates(tmp_path: Path) -> None:
    result = run_cli(
        "train",
        "--dataset",
        "mnist",
        "--arch",
        "10",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--limit",
        "3000",
        "--out",
        "lin",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "lin"
    for name in [*PNGS, "weights.png"]:
        assert_png(out / name)
    metrics = json.loads((out / "metrics.json").read_text())
    config = metrics["config"]  # the last tenth of the 3000 images is held out for validation
    assert config["arch"] == "[(10,Linear)]" and (config["n_train"], config["n_validation"]) == (2700, 300)
    assert len(metrics["history"]) == 1


# -- user errors: exit 2, one line, no traceback --------------------------------------
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--dataset", "cifar"], ["--dataset", "cifar"]),
        (["train", "--arch", "[(140,ReLU),(10,Linear]"], ["--arch", "position 22", "expected ')'"]),
        (["train", "--arch", "[(140,Relu),(10,Sigmoidal)]"], ["unknown activation", "position"]),
        (["train", "--arch", "[(140,ReLU),(5,Linear)]"], ["10 classes"]),
        (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["train", "--lr", "-1"], ["--lr"]),
        (["train", "--lr", "nan"], ["--lr"]),
        (["train", "--batch-size", "many"], ["--batch-size"]),
        (["train", "--optimizer", "adagrad"], ["optimizer", "adagrad"]),
        (["train", "--resume", "no/such/run"], ["--resume", "no/such/run"]),
        (["evaluate", "missing.npz"], ["missing.npz", "no such model file"]),
        (["summary", "missing.npz"], ["missing.npz"]),
        (["predict", "missing.npz", "x.png"], ["missing.npz"]),
        (["reproduce", "hw3"], ["hw3"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_user_errors(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    if args[0] == "train" and "--resume" not in args:
        args = [*args, "--out", "x"]
    assert_user_error(run_cli(*args, cwd=tmp_path), *fragments)
    assert not (tmp_path / "x").exists()


def test_damaged_model_file_and_bad_image(tmp_path: Path) -> None:
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert_user_error(run_cli("summary", str(tmp_path / "model.npz")), "model.npz")
    assert_user_error(run_cli("evaluate", str(tmp_path)), "model.npz")  # a folder: its model.npz


@needs_mnist
def test_divergence_is_a_runtime_failure(tmp_path: Path) -> None:
    """A learning rate that overflows float32: exit 1 with the core's message, no traceback."""
    result = run_cli(
        "train",
        "--arch",
        "10",
        "--optimizer",
        "sgd",
        "--lr",
        "1e300",
        "--limit",
        "2000",
        "--epochs",
        "1",
        "--out",
        "div",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("layerwise: error: training diverged") and "epoch 1" in last


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "summary", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("layerwise: error: ")
    after = run_cli("summary", str(tmp_path / "missing.npz"), "--debug")  # after the subcommand too
    assert after.returncode == 2 and "Traceback" in after.stderr


# -- reproduce hw2, reduced to one epoch per net --------------------------------------
@needs_mnist
def test_reproduce_hw2_one_epoch(tmp_path: Path) -> None:
    result = run_cli("reproduce", "hw2", "--epochs", "1", "--out", str(tmp_path / "hw2"), "--quiet", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "homework train" in result.stdout and "homework test" in result.stdout and "seed train" not in result.stdout
    rows = [line for line in result.stdout.splitlines() if line[:2] in ("a)", "b)", "c)") and "%" in line]
    assert len(rows) == 3
    assert "[(10,Linear)]" in rows[0] and "[(140,ReLU),(10,Linear)]" in rows[2]
    results = json.loads((tmp_path / "hw2" / "results.json").read_text())
    assert [n["name"] for n in results["networks"]] == ["a", "b", "c"]
    assert results["epochs_override"] == 1
    for net in results["networks"]:
        assert net["epochs"] == 1 and len(net["history"]["loss"]) == 1
        assert 80 < net["test_accuracy"] <= 100  # one epoch already learns MNIST
        assert {"seed_train", "seed_test", "train_accuracy", "seconds"} <= set(net)
    assert_png(tmp_path / "hw2" / "learning_curves.png")
    for name in "abc":  # each network is an ordinary run folder
        assert (tmp_path / "hw2" / name / "model.npz").is_file()
        assert (tmp_path / "hw2" / name / "config.json").is_file()
        assert_png(tmp_path / "hw2" / name / "learning_curves.png")


# -- --loss and --init ------------------------------------------------------------------------
@needs_mnist
def test_train_with_mse_loss_and_glorot_init(tmp_path: Path) -> None:
    out = tmp_path / "mse"
    result = run_cli(
        "train", "--loss", "mse", "--init", "glorot", "--epochs", "1", "--limit", "3000", "--out", str(out), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["loss"] == "mse" and metrics["config"]["init"] == "glorot"
    assert metrics["test_accuracy"] > 0.8  # squared error against the one-hot labels still learns the digits
    model = layerwise.load(out / "model.npz")
    assert type(model.loss).__name__ == "MSE"
    x, y = load("mnist", data_root())[1]
    Image.fromarray(x[0]).save(tmp_path / "digit.png")
    shown = run_cli("predict", str(out / "model.npz"), str(tmp_path / "digit.png"), "--preprocess", "none")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("\n") == 1 and "(outputs: [" in shown.stdout
    bad = run_cli("train", "--loss", "hinge", "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and "--loss" in bad.stderr and "crossEntropyLogit" in bad.stderr
