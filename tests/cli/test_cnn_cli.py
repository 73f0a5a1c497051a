"""The command line with convolutional networks: train, evaluate, summary, predict, reproduce, errors.

One small CNN (8 filters, BatchNorm, Dropout) is trained once for the module on the
first 1,000 MNIST images for one epoch; the tests then use its run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import layerwise
from layerwise.data import load
from layerwise.data.idx import write_idx
from layerwise.images import load_inputs

from .conftest import Result, data_root, needs_mnist, run_cli
from .test_cli import PNGS, assert_png, assert_user_error

ARCH = "[conv(8,3),batchnorm,relu,maxpool(2),dropout(0.25),(10,Linear)]"
CANONICAL = "[conv(8,3),batchnorm,relu,maxpool(2),dropout(0.25),(10,Linear)]"


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    tmp = tmp_path_factory.mktemp("cnn_run")
    args = ["--arch", ARCH, "--epochs", "1", "--batch-size", "32", "--limit", "1000", "--lr", "3e-3"]
    result = run_cli("train", *args, "--out", "cnn", "--quiet", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return tmp / "cnn", result


@needs_mnist
def test_train_cnn_writes_model_metrics_and_plots(cnn_run: tuple[Path, Result]) -> None:
    out, result = cnn_run
    for name in [*PNGS, "filters.png"]:
        assert_png(out / name)
    assert not (out / "weights.png").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    config = metrics["config"]
    assert config["arch"] == CANONICAL and config["input_shape"] == [1, 28, 28] and config["n_train"] == 900
    assert config["parameters"] == 8 * 9 + 8 + 2 * 8 + 13 * 13 * 8 * 10 + 10
    assert metrics["test_accuracy"] > 0.6  # 32 steps already learn something; chance is 0.1
    # The printed table has the real shapes and says where the Flatten came from.
    assert "(batch, 8, 26, 26)" in result.stdout and "(batch, 1352)" in result.stdout
    assert "put in automatically" in result.stdout
    assert "filters.png" in result.stdout.splitlines()[-1]
    model = layerwise.load(out / "model.npz")
    assert model.net.input_shape == (1, 28, 28)
    assert [n for n, _ in model.net.named_buffers()] == ["2.running_mean", "2.running_var"]


@needs_mnist
def test_filters_png_shows_the_first_conv_layer(cnn_run: tuple[Path, Result]) -> None:
    out, _ = cnn_run
    with Image.open(out / "filters.png") as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    # Red and blue tiles (positive and negative weights) and a colour bar, not a blank figure.
    red = (pixels[..., 0] - pixels[..., 2] > 60).sum()
    blue = (pixels[..., 2] - pixels[..., 0] > 60).sum()
    assert red > 100 and blue > 100


@needs_mnist
def test_evaluate_cnn_matches_metrics(cnn_run: tuple[Path, Result]) -> None:
    out, _ = cnn_run
    result = run_cli("evaluate", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"accuracy  {100 * metrics['test_accuracy']:.2f}%" in result.stdout
    assert result.stdout.startswith(f"{out / 'model.npz'} on mnist test (10,000 samples)")
    train = run_cli("evaluate", str(out), "--split", "train")
    assert train.returncode == 0 and "(60,000 samples)" in train.stdout


@needs_mnist
def test_summary_cnn(cnn_run: tuple[Path, Result]) -> None:
    out, _ = cnn_run
    result = run_cli("summary", str(out / "model.npz"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    conv = next(line for line in lines if "Conv2D" in line)
    assert "(batch, 8, 26, 26)" in conv and conv.rstrip().endswith(" 80")
    assert any("MaxPool2D" in line and "(batch, 8, 13, 13)" in line for line in lines)
    assert any("Dense(n_in=1352, n_out=10)" in line and "13,530" in line for line in lines)
    assert "Input: (batch, 1, 28, 28)" in result.stdout
    assert "Layer 6 (Flatten) was put in automatically" in result.stdout
    assert f"arch={CANONICAL}" in result.stdout


@needs_mnist
def test_predict_cnn_png_and_idx_agree_with_the_model(cnn_run: tuple[Path, Result], tmp_path: Path) -> None:
    out, _ = cnn_run
    (_, _), (x_test, _) = load("mnist")
    Image.fromarray(x_test[1]).save(tmp_path / "digit.png")  # 28x28, light on dark: read as it is
    Image.fromarray(255 - x_test[2]).save(tmp_path / "dark_on_light.png")  # inverted back when read
    write_idx(tmp_path / "four.idx.gz", x_test[:4])
    files = [tmp_path / "digit.png", tmp_path / "dark_on_light.png", tmp_path / "four.idx.gz"]
    result = run_cli("predict", str(out), *map(str, files), "--top", "10", "--preprocess", "none")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 6
    model = layerwise.load(out / "model.npz")
    # The same pixels in process: 28x28 images read as they are (the dark-on-light one inverted back).
    rows = np.concatenate([load_inputs(path, 784, preprocess="none")[1] for path in files])
    np.testing.assert_array_equal(rows, np.concatenate([x_test[1:3], x_test[:4]]).reshape(6, 784))

    proba = model.predict_proba(rows.reshape(-1, 1, 28, 28))
    for line, p in zip(lines, proba, strict=True):
        label = line.split(": ")[1].split()[0]
        assert int(label) == int(np.argmax(p)), line
        shown = line.split("(top 10: ")[1].rstrip(")").split(", ")
        assert len(shown) == 10
        for entry in shown:
            k, pct = entry.split()
            assert float(pct.rstrip("%")) == pytest.approx(100 * p[int(k)], abs=0.051)
    assert lines[2].startswith(f"{tmp_path / 'four.idx.gz'}[0]: ")


@needs_mnist
def test_predict_cnn_wrong_image_size(cnn_run: tuple[Path, Result], tmp_path: Path) -> None:
    out, _ = cnn_run
    write_idx(tmp_path / "small.idx", np.zeros((3, 8, 8), np.uint8))
    assert_user_error(run_cli("predict", str(out), str(tmp_path / "small.idx")), "8×8", "784 inputs")


@needs_mnist
def test_cnn_on_the_wrong_data_set(cnn_run: tuple[Path, Result]) -> None:
    """A 28x28 CNN evaluated on another 28x28 data set works; on 8x8 digits it is a one-line error."""
    out, _ = cnn_run
    result = run_cli("evaluate", str(out), "--dataset", "fashion-mnist")
    assert result.returncode == 0, result.stderr
    assert "on fashion-mnist test" in result.stdout
    # digits (8x8, from scikit-learn, a test dependency) does not fit a 28x28 network
    assert_user_error(run_cli("evaluate", str(out), "--dataset", "digits"), "784 inputs", "digits images have 64")


# -- errors: exit 2, one line, the position in the string -------------------------------------------
@pytest.mark.parametrize(
    ("arch", "fragments"),
    [
        ("[conv(8),relu,(10,Linear)]", ["--arch", "conv needs kernel", "position 1"]),
        ("[conv(8,3,pad=full),(10,Linear)]", ["pad must be a number, same or valid", "position 14"]),
        ("[conv(8,3),pool(2),(10,Linear)]", ["unknown layer 'pool'", "position 11"]),
        ("[conv(8,3),dropout(2),(10,Linear)]", ["rate must be a number in [0, 1)", "position 19"]),
        ("[conv(8,3),relu,(5,Linear)]", ["5 units", "10 classes"]),
    ],
)
def test_bad_cnn_strings(arch: str, fragments: list[str], tmp_path: Path) -> None:
    """Refused before any data is read (these run without MNIST)."""
    assert_user_error(run_cli("train", "--arch", arch, "--out", "x", cwd=tmp_path), *fragments)
    assert not (tmp_path / "x").exists()


@needs_mnist
@pytest.mark.parametrize(
    ("arch", "fragments"),
    [
        (
            "[conv(6,5),maxpool(2),conv(16,5),maxpool(2),conv(16,5),(10,Linear)]",
            ["conv(16,5) cannot take input of shape (16, 4, 4)", "larger than", "position 44"],
        ),
        ("[conv(10,28)]", ["gives 10x1x1 outputs", "10 classes"]),
    ],
)
def test_cnn_that_does_not_fit_the_images(arch: str, fragments: list[str], tmp_path: Path) -> None:
    assert_user_error(run_cli("train", "--arch", arch, "--out", "x", "--limit", "100", cwd=tmp_path), *fragments)
    assert not (tmp_path / "x").exists()


def test_train_help_documents_the_grammar() -> None:
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for fragment in ("conv(F,K[,stride=S][,pad=P])", "maxpool(K[,stride=S])", "dropout(R)", "batchnorm", "LeNet-5"):
        assert fragment in result.stdout
    assert "put in automatically before the first Dense layer" in result.stdout


# -- reproduce, cut down to a quick run ------------------------------------------------------------
@needs_mnist
@pytest.mark.parametrize("experiment", ["lenet5", "convnet", "fashion-cnn"])
def test_reproduce_cnn_quick(experiment: str, tmp_path: Path) -> None:
    if experiment == "fashion-cnn" and not any((data_root() / "fashion-mnist").glob("t10k-images*")):
        pytest.skip(f"Fashion-MNIST not found in {data_root()}/fashion-mnist")
    out = tmp_path / experiment
    # One thread: the parallel regions' compiling (test_team_regions) is not what this checks.  One seed
    # (the convnet's default is three: test_reproduce_seeds).
    result = run_cli("reproduce", experiment, "--epochs", "1", "--limit", "2000", "--threads", "1", "--seeds", "1",
                     "--out", str(out), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["experiment"] == experiment and summary["epochs"] == 1 and summary["n_train"] == 2000
    assert len(summary["history"]["accuracy"]) == 1 and "val_accuracy" not in summary["history"]  # no test peeking
    metrics = json.loads((out / "metrics.json").read_text())  # an ordinary 'layerwise train' run folder
    assert metrics["config"]["validation"] == 0 and 100 * metrics["test_accuracy"] == pytest.approx(
        summary["test_accuracy"]
    )
    assert (60 if experiment == "fashion-cnn" else 80) < summary["test_accuracy"] <= 100
    assert summary["test_error"] == pytest.approx(100 - summary["test_accuracy"])
    for name in ("learning_curves.png", "confusion_matrix.png", "filters.png"):
        assert_png(out / name)
    model = layerwise.load(out / "model.npz")
    assert model.net.input_shape == (1, 28, 28)
    if experiment == "lenet5":
        assert "LeCun et al. 1998" in result.stdout and "0.95%" in result.stdout
        assert model.net.n_params == 61_706
    elif experiment == "convnet":
        assert model.net.n_params == 34_826
    else:
        assert summary["dataset"] == "fashion-mnist" and model.train_config["dataset"] == "fashion-mnist"
        assert [name for name, _ in model.net.named_buffers()][:2] == ["2.running_mean", "2.running_var"]

    assert "a quick run" in result.stdout and "Wrote results.json" in result.stdout
