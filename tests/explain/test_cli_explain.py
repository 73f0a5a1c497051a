"""``layerwise explain`` on the command line: options, output files, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layerwise.cli import main
from layerwise.errors import ConfigError, LabelError, ShapeError
from layerwise.explain import gradient_descent

from .helpers import all_bmatrices, lhs, math_blocks


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys: pytest.CaptureFixture, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--x", "[[1,0],[0]]", "--y", "1 0; 0 1"], "--x: expected every row to have 2 entries"),
        (["--x", "1 0; 0 1", "--y", "1 0; 0 x"], "--y: expected a number in row 2, got 'x'"),
        (["--x", "1 0; 0 1"], "--y: give both --x and --y"),
        (["--x", "1 0 0; 0 1 0", "--y", "1 0; 0 1"], "--y: expected 3 samples (columns, as x has)"),
        (["--loss", "hinge"], "--loss: expected one of 'crossEntropyLogit'"),
        (["--optimizer", "nadam"], "--optimizer: expected one of sgd, momentum, adam"),
        (["--arch", "[(2,Foo)]"], "--arch '[(2,Foo)]': unknown activation 'Foo'"),
        (["--arch", "[(2,ReLU),(2,Linear)]", "--W", "1 0; 0 1"], "--W: expected one matrix per layer (2 for"),
        (["--W", "1 0 0; 0 1 0"], "--W[1]: expected shape (2, 2) (outputs × inputs)"),
        (["--b", "1 2 3"], "--b[1]: expected 2 finite numbers"),
        (["--batch-size", "3"], "--batch-size: expected at most the number of samples, 2"),
        (["--lr", "-1"], "--lr: "),
        (["--steps", "0"], "--steps: "),
        (["--loss", "logistic"], "loss: the logistic loss needs a network with 1 output"),
        (["--x", "1 0; 0 1", "--y", "1 0; 1 1"], "--y: expected one-hot rows"),
        (["--optimizer", "adam", "--momentum", "0.5"], "--momentum: only for the sgd and momentum optimizers"),
        (["--z", "1 2"], "--z: only for 'jacobian' and 'cross-entropy'"),
        (["jacobian"], "--z: 'jacobian' needs the logits"),
        (["jacobian", "--z", "1 2", "--arch", "[(2,Linear)]"], "--arch: only for gradient descent"),
        (["cross-entropy", "--z", "1 2"], "--y: cross-entropy needs the target"),
        (["cross-entropy", "--z", "1 2", "--y", "0.3 0.3"], "--y: expected probabilities"),
        (["--data", "/nonexistent/points.csv"], "/nonexistent/points.csv"),
        (["--digits", "20"], "--digits: "),
        (["--beta1", "0.8"], "--beta1: only for --optimizer adam"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(capsys: pytest.CaptureFixture, args: list[str], fragment: str) -> None:
    assert fragment in user_error(capsys, *args)


def test_output_file_is_written_and_matches_stdout(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    target = tmp_path / "sheets" / "problem3.tex"
    code, out, err = run(capsys, "--format", "latex", "--out", str(target))
    assert code == 0 and out == "" and "wrote" in err
    code, printed, _ = run(capsys, "--format", "latex")
    assert target.read_text(encoding="utf-8") == printed
    assert printed.startswith(r"\documentclass") and printed.rstrip().endswith(r"\end{document}")
    assert [p.name for p in target.parent.iterdir()] == ["problem3.tex"]  # no temporary file left behind


def test_options_reach_the_sheet(capsys: pytest.CaptureFixture) -> None:
    args = ["--arch", "[(2,ReLU),(2,Linear)]", "--x", "1 0 1; 0 1 1", "--y", "1 0 0; 0 1 1"]
    args += ["--init", "he", "--optimizer", "momentum", "--lr", "0.5", "--steps", "3", "--batch-size", "2"]
    code, out, _ = run(capsys, *args, "--digits", "3")
    assert code == 0
    sheet = gradient_descent(
        "[(2,ReLU),(2,Linear)]",
        [[1, 0, 1], [0, 1, 1]],
        [[1, 0, 0], [0, 1, 1]],
        init="he",
        optimizer="momentum",
        lr=0.5,
        steps=3,
        batch_size=2,
        digits=3,
    )
    assert out == sheet.to_markdown()
    names = [lhs(b) for b in math_blocks(out, "markdown")]
    assert r"\mathbf{v}_{\mathbf{W}_1}^{(2)}" in names and r"\mathbf{W}_{2}^{(3)}" in names
    assert "batch 2 of 2: sample 3" in out


def test_rows_layout_transposes(capsys: pytest.CaptureFixture) -> None:
    code, seed, _ = run(capsys, "--x", "1 2; 3 4; 5 6", "--y", "1 0; 0 1", "--steps", "1")
    assert code == 0
    code, rows, _ = run(capsys, "--x", "1 3 5; 2 4 6", "--y", "1 0; 0 1", "--steps", "1", "--layout", "rows")
    assert code == 0
    results = lambda text: {lhs(b): all_bmatrices(f"$${b}$$", "markdown")[-1] for b in math_blocks(text, "markdown")}  # noqa: E731
    seed_eqs, rows_eqs = results(seed), results(rows)
    assert seed_eqs.keys() == rows_eqs.keys()
    for name in [n for n in seed_eqs if not n.startswith(r"\mathbf{J}")]:
        as_array = lambda rows_: np.array([[v for v, _ in r] for r in rows_])  # noqa: E731
        np.testing.assert_array_equal(as_array(seed_eqs[name]), as_array(rows_eqs[name]).T, err_msg=name)
    assert r"\mathbf{z}^{(0)} = \mathbf{X} \mathbf{W}^{(0)} + \mathbf{1} \mathbf{b}^{(0)}" in rows


def test_data_from_csv(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    csv = tmp_path / "points.csv"
    csv.write_text("x1,x2,target\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    code, out, _ = run(
        capsys, "--data", str(csv), "--arch", "[(2,Tanh),(1,Linear)]", "--loss", "mse", "--init", "xavier"
    )
    assert code == 0
    assert r"\mathbf{X} = \begin{bmatrix} 0 & 0 & 1 & 1 \\ 0 & 1 & 0 & 1 \end{bmatrix}" in out
    assert r"\mathbf{Y} = \begin{bmatrix} 0 & 1 & 1 & 0 \end{bmatrix}" in out
    csv.write_text("1,2,3\n4,5\n")
    assert "line 2 has 2 columns" in user_error(capsys, "--data", str(csv), "--loss", "mse", "--arch", "[(1,Linear)]")


def test_jacobian_and_cross_entropy_forms(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "jacobian", "--z", "1 2 3", "--format", "text")
    assert code == 0 and "∂p/∂z" in out and "Verified" in out
    code, out, _ = run(capsys, "cross-entropy", "--z=1000 1001 1002", "--y", "0 0 1")
    assert code == 0 and r"c = \max_j z_j = 1002$$" in out


def test_console_script_help_and_default_run() -> None:
    done = subprocess.run([sys.executable, "-m", "layerwise", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "explain" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "layerwise", "explain", "--format", "text"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "W(2) = W(1) - dW(1)" in done.stdout and "Verified" in done.stdout


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"layout": "columns"}, ConfigError, "layout: expected one of seed, rows"),
        ({"digits": -1}, ConfigError, "digits: expected an integer from 0 to 15"),
        ({"x": np.eye(2)}, ConfigError, "y: give both x and y"),
        ({"init": "orthogonal"}, ConfigError, "init: expected one of zeros, he, xavier, uniform"),
        ({"steps": 5000}, ConfigError, "steps: at most 1000"),
        ({"x": np.eye(2), "y": [[0, 1], [0, 1]]}, LabelError, "y: expected one-hot rows"),
        ({"x": np.eye(2), "y": [[0, 3]]}, LabelError, "y: expected class labels 0 to 1"),
        ({"W": [np.eye(3)]}, ShapeError, "W[1]: expected shape (2, 2)"),
        ({"optimizer": "momentum", "momentum": 0.0}, ConfigError, "momentum: expected a value in (0, 1)"),
    ],
)
def test_api_errors_name_the_argument(kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error) as caught:
        gradient_descent(**kwargs)
    assert fragment in str(caught.value)


def test_a_failed_check_is_printed_and_exits_1(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import layerwise.explain.gradient as gradient

    monkeypatch.setattr(gradient, "max_difference", lambda a, b: 0.5)
    code, out, err = run(capsys)
    assert code == 1
    assert "NOT VERIFIED" in out and "differ from this sheet by 0.5" in out
    assert err.strip() == "layerwise: error: the sheet's check failed (see its last section)"


def test_labels_in_one_row_are_one_hot_on_the_sheet() -> None:
    by_labels = gradient_descent("[(3,Linear)]", [[1, 0, 2]], [[2, 0, 1]], steps=1)
    one_hot = gradient_descent("[(3,Linear)]", [[1, 0, 2]], np.eye(3)[[2, 0, 1]].T, steps=1)
    assert by_labels.to_markdown() == one_hot.to_markdown()
