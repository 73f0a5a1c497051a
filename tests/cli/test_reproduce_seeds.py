"""``layerwise reproduce NET --seeds N``: one network trained from N seeds, each seed's result and their mean."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

import layerwise
from layerwise.experiments import convnet, fashion_cnn, lenet5
from layerwise.experiments.single import outputs, run_folders, seed_list

from .conftest import needs_mnist, run_cli

QUICK = ("--epochs", "1", "--limit", "512", "--quiet")


def weights(path: Path) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in layerwise.load(path).net.named_parameters()}


def same_weights(a: Path, b: Path) -> bool:
    one, other = weights(a), weights(b)
    return one.keys() == other.keys() and all(np.array_equal(one[k], other[k]) for k in one)


@needs_mnist
def test_two_seeds_give_each_run_and_their_mean_and_seed_0_is_the_one_seed_run(tmp_path: Path) -> None:
    out = tmp_path / "two"
    args = ("reproduce", "lenet5", *QUICK, "--threads", "1", "--seeds", "2", "--out", str(out))
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["seeds"] == [0, 1] and [r["seed"] for r in summary["runs"]] == [0, 1]
    for run in summary["runs"]:  # each seed is an ordinary run folder, and the summary holds its numbers
        metrics = json.loads((out / f"seed-{run['seed']}" / "metrics.json").read_text())
        assert metrics["config"]["seed"] == run["seed"] and metrics["config"]["validation"] == 0
        assert 100 * metrics["test_accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-12)
    tests = [r["test_accuracy"] for r in summary["runs"]]
    assert tests[0] != tests[1]  # two different networks
    assert summary["test_accuracy"] == pytest.approx(statistics.fmean(tests), abs=1e-12)
    assert summary["test_accuracy_sd"] == pytest.approx(statistics.stdev(tests), abs=1e-12)
    assert summary["test_error"] == pytest.approx(100 - summary["test_accuracy"], abs=1e-12)
    assert summary["train_accuracy"] == pytest.approx(statistics.fmean(r["train_accuracy"] for r in summary["runs"]))
    limit = lenet5.SPEC["target"]["test_error"]
    assert summary["target_met"] is (summary["test_error"] <= limit)
    assert summary["seeds_meeting_target"] == [r["seed"] for r in summary["runs"] if r["test_error"] <= limit]
    assert not same_weights(out / "seed-0" / "model.npz", out / "seed-1" / "model.npz")
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for line in ("layerwise, seed 0", "layerwise, seed 1", "layerwise, mean of 2", "mean test error of 2 seeds"):
        assert line in result.stdout
    assert f"Wrote results.json, learning_curves.png, seed-0/, seed-1/ to {out}" in result.stdout

    single = run_cli("reproduce", "lenet5", *QUICK, "--threads", "1", "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr  # seed 0 of several is the run of one seed, bit for bit
    assert same_weights(tmp_path / "one" / "model.npz", out / "seed-0" / "model.npz")
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert one["test_accuracy"] == summary["runs"][0]["test_accuracy"] and "runs" not in one and one["seeds"] == [0]

    again = run_cli(*args)  # the same command again reuses both finished runs
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already holds this finished run; reusing it") == 2
    assert json.loads((out / "results.json").read_text())["test_accuracy"] == summary["test_accuracy"]

    fresh = run_cli(*args, "--overwrite")  # trains both seeds again, to the same numbers
    assert fresh.returncode == 0, fresh.stderr
    assert "reusing" not in fresh.stdout
    assert [r["test_accuracy"] for r in json.loads((out / "results.json").read_text())["runs"]] == tests


@needs_mnist
def test_seeds_on_dask_workers_equal_the_serial_run(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    serial = run_cli("reproduce", "lenet5", *QUICK, "--threads", "1", "--seeds", "2", "--out", str(tmp_path / "s"))
    assert serial.returncode == 0, serial.stderr
    dask = run_cli("reproduce", "lenet5", *QUICK, "--seeds", "2", "--workers", "2", "--out", str(tmp_path / "d"))
    assert dask.returncode == 0, dask.stderr
    assert "training 2 networks on" in dask.stdout
    for seed in ("seed-0", "seed-1"):  # bit-identical: the same train_run, one BLAS thread on both sides
        assert same_weights(tmp_path / "s" / seed / "model.npz", tmp_path / "d" / seed / "model.npz"), seed


def test_the_convnet_is_judged_on_three_seeds_the_others_on_one() -> None:
    assert seed_list(convnet.SPEC) == [0, 1, 2] and seed_list(convnet.SPEC, 1) == [0]
    assert seed_list(lenet5.SPEC) == [0] and seed_list(fashion_cnn.SPEC) == [0]
    assert run_folders(convnet.SPEC, "runs/convnet") == [Path("runs/convnet") / f"seed-{k}" for k in range(3)]
    assert run_folders(lenet5.SPEC, "runs/lenet5") == [Path("runs/lenet5")]
    assert outputs(convnet.SPEC)[:2] == ("results.json", "learning_curves.png") and "model.npz" in outputs(lenet5.SPEC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hw2", "--seeds", "2"), "--seeds: hw2 trains its networks from the homework's own seeds; leave it out"),
        (("convnet", "--seeds", "1", "--workers", "2"),
         "--workers: convnet from one seed trains one network; give --seeds N to train N at once"),
        (("lenet5", "--seeds", "0"), "argument --seeds: expected a positive integer, got '0'"),
    ],
)  # fmt: skip
def test_bad_seed_options_are_refused_in_one_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = run_cli("reproduce", *args, "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
