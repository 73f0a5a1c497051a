"""Sweep specs, results tables and option checks: no training, no Dask cluster."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from layerwise.errors import ConfigError
from layerwise.runs import RunConfig
from layerwise.sweep import driver, load_spec, parse_spec
from layerwise.sweep.results import format_table, make_row, sort_rows, write_results
from layerwise.sweep.spec import Distribution

GRID = {
    "train": {"epochs": 2, "limit": 1000, "validation": 100},
    "grid": {"arch": ["[(10,Linear)]", "[(24,ReLU),(10,Linear)]"], "lr": [1e-3, 3e-3, 1e-2]},
}
RANDOM = {
    "train": {"epochs": 1},
    "random": {
        "trials": 40,
        "seed": 7,
        "lr": {"loguniform": [1e-4, 1e-1]},
        "momentum": {"uniform": [0.0, 0.9]},
        "batch_size": {"int": [16, 19]},
        "schedule": ["constant", "cosine"],
    },
    "grid": {"optimizer": ["sgd"]},
}


def test_grid_is_every_combination_in_order_with_content_hash_ids() -> None:
    trials = load_spec(GRID).trials()
    assert [t.values for t in trials] == [
        {"arch": a, "lr": lr} for a in GRID["grid"]["arch"] for lr in GRID["grid"]["lr"]
    ]
    for t in trials:
        expected = RunConfig(**GRID["train"], **t.values)
        assert t.config == expected and t.id == expected.fingerprint()
    assert len({t.id for t in trials}) == 6


def test_random_search_is_reproducible_and_inside_its_ranges() -> None:
    first, again = load_spec(RANDOM).trials(), load_spec(RANDOM).trials()
    assert [t.config for t in first] == [t.config for t in again]
    other = load_spec({**RANDOM, "random": {**RANDOM["random"], "seed": 8}}).trials()
    assert [t.config for t in other] != [t.config for t in first]
    assert len(first) == 40
    lrs = [t.config.lr for t in first]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # log-uniform: about a third of the draws in each decade, not ~90% in the top one as uniform would give
    assert sum(lr < 1e-3 for lr in lrs) >= 6
    assert {t.config.batch_size for t in first} == {16, 17, 18, 19}  # both ends of an int range are drawn
    assert all(0.0 <= t.config.momentum <= 0.9 for t in first)
    assert {t.config.schedule for t in first} == {"constant", "cosine"}
    assert all(t.config.optimizer == "sgd" for t in first)


def test_random_with_grid_runs_each_sample_with_each_grid_value() -> None:
    spec = {"train": {}, "grid": {"seed": [0, 1, 2]}, "random": {"trials": 2, "lr": {"loguniform": [1e-4, 1e-2]}}}
    trials = load_spec(spec).trials()
    assert [t.config.seed for t in trials] == [0, 1, 2, 0, 1, 2]
    assert len({t.config.lr for t in trials}) == 2


def test_distribution_sampling_at_the_edges() -> None:
    assert Distribution("int", (3, 5)).sample(0.0) == 3
    assert Distribution("int", (3, 5)).sample(0.9999999) == 5
    assert Distribution("choice", ("a", "b")).sample(0.9999999) == "b"
    assert Distribution("loguniform", (1e-4, 1e-2)).sample(0.5) == pytest.approx(1e-3)
    assert Distribution("uniform", (1.0, 3.0)).sample(0.25) == 1.5


def test_duplicate_random_draws_run_once() -> None:
    trials = load_spec({"train": {}, "random": {"trials": 30, "optimizer": ["adam", "sgd"]}}).trials()
    assert sorted(t.config.optimizer for t in trials) == ["adam", "sgd"]


def test_spec_from_a_dict_is_written_as_toml_that_reads_back(tmp_path: Path) -> None:
    spec = load_spec(RANDOM)
    path = tmp_path / "s.toml"
    path.write_text(spec.text)
    assert tomllib.loads(spec.text)["random"]["lr"] == {"loguniform": [1e-4, 1e-1]}
    assert [t.config for t in load_spec(path).trials()] == [t.config for t in spec.trials()]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"train": {"lrr": 1}, "grid": {"lr": [1]}}, "[train] lrr: unknown option"),
        ({"grid": {"lr": [1e-3], "epoch": [1]}}, "[grid] epoch: unknown option"),
        ({"grid": {}}, "[grid] is empty"),
        ({"grid": {"lr": []}}, "[grid] lr: expected a non-empty list"),
        ({"grid": {"lr": 0.1}}, "[grid] lr: expected a non-empty list"),
        ({"grid": {"lr": [1e-3, -1.0]}}, "[grid] lr[1]: lr: expected a finite number > 0.0, got -1.0"),
        ({"grid": {"lr": [1e-3, 1e-3]}}, "[grid] lr: a value is listed twice"),
        ({"grid": {"arch": [["x"]]}}, "[grid] arch[0]: expected a string or a number"),
        ({"train": {"lr": 1e-3}, "grid": {"lr": [1e-2]}}, "[grid] lr: also set in [train]"),
        ({"train": {"epochs": 1}}, "nothing to sweep"),
        ({"grids": {"lr": [1]}}, "unknown table [grids]"),
        ({"random": {"lr": {"uniform": [0.1, 1]}}}, "[random] trials: expected the number of trials"),
        ({"random": {"trials": 0, "lr": {"uniform": [0.1, 1]}}}, "[random] trials"),
        ({"random": {"trials": 2}}, "[random] has no distributions"),
        ({"random": {"trials": 2, "lr": {"logunifrom": [1e-4, 1e-2]}}}, "[random] lr: unknown distribution"),
        ({"random": {"trials": 2, "lr": {"uniform": [1e-2, 1e-4]}}}, "[random] lr: uniform expects [low, high]"),
        ({"random": {"trials": 2, "lr": {"loguniform": [0.0, 1.0]}}}, "[random] lr: loguniform expects 0 < low"),
        ({"random": {"trials": 2, "lr": 0.1}}, "[random] lr: expected a distribution"),
        ({"random": {"trials": 2, "lr": {"uniform": [0.1, 1], "int": [1, 2]}}}, "[random] lr: expected a distr"),
        ({"random": {"trials": 2, "epochs": {"uniform": [1, 3]}}}, "[random] epochs.uniform: epochs: expected an int"),
        ({"random": {"trials": 2, "epochs": {"int": [1.0, 3]}}}, "[random] epochs: int expects [low, high]"),
        ({"random": {"trials": 2, "seed": {"int": [0, 9]}, "lr": [0.1]}}, "list it under [grid]"),
        ({"random": {"trials": 2, "optimizer": {"choice": ["adam", "adagrad"]}}}, "[random] optimizer.choice[1]"),
        ({"grid": {"lr": [0.1]}, "random": {"trials": 2, "lr": [0.2]}}, "[random] lr: also in [grid]"),
        ({"grid": {"momentum": [0.9]}}, "the trial momentum=0.9 is not a valid run: momentum: only the sgd"),
        ({"grid": {"seed": list(range(400)), "lr": [i / 1000 + 0.001 for i in range(300)]}}, "at most 100,000"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(spec: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(spec, "s.toml")
    message = str(info.value)
    assert message.startswith("s.toml: ") and expected in message, message
    assert "\n" not in message


def test_momentum_is_accepted_when_the_trial_uses_sgd() -> None:
    trials = load_spec({"train": {"optimizer": "sgd"}, "grid": {"momentum": [0.0, 0.9]}}).trials()
    assert [t.config.momentum for t in trials] == [0.0, 0.9]


def test_a_spec_file_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[grid]\nlr = [1e-3,\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_spec(path)


# -- results ------------------------------------------------------------------------------
def _rows() -> list[dict]:
    def row(tid: str, arch: str, status: str, val: float | None, loss: float | None, error: str | None = None) -> dict:
        return make_row(tid, {"arch": arch, "lr": 1e-3}, {"status": status, "val_accuracy": val, "val_loss": loss,
                                                          "test_accuracy": val, "error": error})  # fmt: skip

    return [
        row("aaa", "[(10,Linear)]", "finished", 0.91, 0.30),
        row("bbb", "[(140,ReLU),(10,Linear)]", "failed", None, None, "DivergenceError: training diverged"),
        row("ccc", "[(24,ReLU),(10,Linear)]", "finished", 0.96, 0.20),
        row("ddd", "[(32,ReLU),(10,Linear)]", "finished", 0.95, 0.10),
    ]


def test_sorting_puts_the_best_first_and_rows_without_the_metric_last() -> None:
    assert [r["trial"] for r in sort_rows(_rows(), "val_accuracy")] == ["ccc", "ddd", "aaa", "bbb"]
    assert [r["trial"] for r in sort_rows(_rows(), "val_loss")] == ["ddd", "ccc", "aaa", "bbb"]
    with pytest.raises(ConfigError, match="--sort: expected one of"):
        sort_rows(_rows(), "accuracy")


def test_table_lists_rows_best_first_and_the_errors_of_failed_trials() -> None:
    lines = format_table(_rows(), ["arch", "lr"], "val_accuracy").splitlines()
    assert lines[0].split()[:5] == ["#", "trial", "arch", "lr", "status"]
    assert [line.split()[1] for line in lines[2:6]] == ["ccc", "ddd", "aaa", "bbb"]
    assert "96.00" in lines[2]
    assert lines[-1] == "  bbb: DivergenceError: training diverged"


def test_results_files_hold_one_row_per_trial(tmp_path: Path) -> None:
    write_results(tmp_path, ["arch", "lr"], _rows())
    with open(tmp_path / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["arch"] for r in table] == [r["arch"] for r in _rows()]  # commas inside arch strings survive
    assert table[1]["status"] == "failed" and table[1]["val_accuracy"] == ""
    assert table[1]["error"] == "DivergenceError: training diverged"
    assert float(table[2]["val_accuracy"]) == 0.96
    data = json.loads((tmp_path / "results.json").read_text())
    assert data[1]["val_accuracy"] is None and data[3]["val_loss"] == 0.10
    assert list(data[0])[:4] == ["trial", "arch", "lr", "status"]
    assert not list(tmp_path.glob(".*.tmp"))


# -- execution options --------------------------------------------------------------------
def test_execution_options_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for kwargs, expected in [
        ({"serial": True, "workers": 2}, "--workers: not with --serial"),
        ({"serial": True, "scheduler": "tcp://127.0.0.1:1"}, "--scheduler: not with --serial"),
        ({"workers": 0}, "--workers: expected a positive number"),
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, "--workers: the cluster at --scheduler"),
        ({"sort": "speed"}, "--sort: expected one of"),
    ]:
        with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
            driver.run(GRID, out, **kwargs)
    assert not out.exists()


def test_dask_scheduler_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.1:8786")
    assert driver._executor(None, None, False).scheduler == "tcp://10.0.0.1:8786"
    assert driver._executor(3, None, False).scheduler is None  # --workers means a local cluster
    assert driver._executor(None, "tcp://h:1", False).scheduler == "tcp://h:1"
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    local = driver._executor(None, None, False)
    assert local.scheduler is None and local.n_workers >= 1


def test_without_dask_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'layerwise\[sweep\]', or .* --serial"):
        driver.run(GRID, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_layerwise_does_not_import_dask() -> None:
    code = (
        "import sys, layerwise, layerwise.cli, layerwise.sweep, layerwise.sweep.cli; "
        "layerwise.cli.build_parser(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
