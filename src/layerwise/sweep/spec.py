"""Sweep specs: a TOML file (or a dict of the same shape) that lists the trials of a sweep.

::

    [train]                  # any RunConfig field, the same for every trial
    dataset = "mnist"
    epochs = 3

    [grid]                   # every combination of these values
    arch = ["[(32,ReLU),(10,Linear)]", "[(140,ReLU),(10,Linear)]"]
    lr = [1e-3, 3e-3]

    [random]                 # `trials` samples, drawn with the sampler's own `seed`
    trials = 8
    seed = 0
    lr = { loguniform = [1e-4, 1e-2] }
    batch_size = { choice = [32, 64, 128] }   # a plain list means the same
    momentum = { uniform = [0.0, 0.9] }
    epochs = { int = [2, 6] }                 # integers, both ends included

``[grid]`` and ``[random]`` may be combined: every random sample is run with every
grid combination (``[grid] seed = [0, 1, 2]`` repeats each sample with three
training seeds; inside ``[random]``, ``seed`` is the sampler's).  Each trial is a
``RunConfig``; its id is the config's ``fingerprint()``, so the same trial has the
same id in every spec that contains it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs import RunConfig

TABLES = ("train", "grid", "random")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
RANDOM_KEYS = ("trials", "seed")  # the sampler's own settings inside [random]
MAX_TRIALS = 100_000
OPTIONS = tuple(f.name for f in fields(RunConfig))


@dataclass(frozen=True)
class Distribution:
    """One ``[random]`` entry: ``kind`` in DISTRIBUTIONS; ``args`` the choices or (low, high)."""

    kind: str
    args: tuple[Any, ...]

    def sample(self, u: float) -> Any:
        """The value for a uniform draw ``u`` in [0, 1): inverse-CDF sampling keeps it reproducible
        from ``random.Random.random()`` alone, whatever the Python version."""
        if self.kind == "choice":
            return self.args[min(int(u * len(self.args)), len(self.args) - 1)]
        low, high = self.args
        if self.kind == "uniform":
            return low + (high - low) * u
        if self.kind == "loguniform":
            return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
        return low + min(int(u * (high - low + 1)), high - low)  # int, both ends included

    def to_toml(self) -> str:
        return "{ " + self.kind + " = " + _toml_value(list(self.args)) + " }"


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: ``values`` are the swept options, ``config`` the whole RunConfig."""

    id: str
    config: RunConfig
    values: dict[str, Any]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated spec.  ``text`` is the TOML it came from (or an equivalent one)."""

    train: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)
    n_random: int = 0
    random_seed: int = 0
    where: str = "spec"
    text: str = ""

    @property
    def params(self) -> list[str]:
        """The swept options, grid first, in the spec's order."""
        return [*self.grid, *self.random]

    def trials(self) -> list[Trial]:
        """Every trial, in a fixed order (random samples outer, grid combinations inner); a config that
        occurs twice (e.g. a random choice drawn again) is run once."""
        samples: list[dict[str, Any]] = [{}]
        if self.random:
            rng = random.Random(self.random_seed)
            samples = [{k: d.sample(rng.random()) for k, d in self.random.items()} for _ in range(self.n_random)]
        combos = [dict(zip(self.grid, values, strict=True)) for values in itertools.product(*self.grid.values())]
        out: dict[str, Trial] = {}
        for sample in samples:
            for combo in combos:
                values = {**combo, **sample}
                try:
                    config = RunConfig(**self.train, **values)  # the keys were checked: only values can clash
                except ConfigError as e:
                    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
                    raise ConfigError(f"{self.where}: the trial {shown} is not a valid run: {e}") from None
                out.setdefault(config.fingerprint(), Trial(config.fingerprint(), config, values))
        return list(out.values())

    def to_toml(self) -> str:
        """The spec as TOML (what ``DIR/sweep.toml`` holds when the spec was given as a dict)."""
        lines = ["[train]", *(f"{k} = {_toml_value(v)}" for k, v in self.train.items())]
        if self.grid:
            lines += ["", "[grid]", *(f"{k} = {_toml_value(v)}" for k, v in self.grid.items())]
        if self.random:
            lines += ["", "[random]", f"trials = {self.n_random}", f"seed = {self.random_seed}"]
            lines += [f"{k} = {d.to_toml()}" for k, d in self.random.items()]
        return "\n".join(lines) + "\n"


def load_spec(spec: str | os.PathLike[str] | Mapping[str, Any] | SweepSpec) -> SweepSpec:
    """Read a spec from a TOML file, or validate a dict of the same shape."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        parsed = parse_spec(spec, "spec")
        return SweepSpec(**{**parsed.__dict__, "text": parsed.to_toml()})
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file (a sweep spec is TOML)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; expected a sweep spec (.toml file)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return SweepSpec(**{**parse_spec(data, str(path)).__dict__, "text": text})


def parse_spec(data: Mapping[str, Any], where: str = "spec") -> SweepSpec:
    """Validate the tables of a spec; every error names the table and key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table of [train], [grid] and [random], got {type(data).__name__}")
    for key, value in data.items():
        if key not in TABLES:
            raise ConfigError(f"{where}: unknown table [{key}] (expected [train], [grid] or [random])")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: [{key}] must be a table, got {_short(value)}")
    train = dict(data.get("train", {}))
    for key, value in train.items():
        _check_option(where, "train", key)
        _check_value(where, f"[train] {key}", key, value)
    if "grid" not in data and "random" not in data:
        raise ConfigError(f"{where}: nothing to sweep; add a [grid] or [random] table")
    grid = _parse_grid(where, data.get("grid"), train)
    random_table, n_random, seed = _parse_random(where, data.get("random"), train, grid)
    spec = SweepSpec(train, grid, random_table, n_random, seed, where)
    n = n_random if random_table else 1
    for values in grid.values():
        n *= len(values)
    if n > MAX_TRIALS:
        raise ConfigError(f"{where}: {n:,} trials; a sweep may have at most {MAX_TRIALS:,}")
    spec.trials()  # options that are valid one by one may still clash (momentum with adam): name the trial
    return spec


def _parse_grid(where: str, table: Mapping[str, Any] | None, train: dict[str, Any]) -> dict[str, list[Any]]:
    if table is None:
        return {}
    if not table:
        raise ConfigError(f"{where}: [grid] is empty; list at least one option's values, e.g. lr = [1e-3, 3e-3]")
    grid: dict[str, list[Any]] = {}
    for key, values in table.items():
        _check_option(where, "grid", key, train)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: [grid] {key}: expected a non-empty list of values, got {_short(values)}")
        for i, value in enumerate(values):
            _check_value(where, f"[grid] {key}[{i}]", key, value)
        if len({json.dumps(v) for v in values}) < len(values):
            raise ConfigError(f"{where}: [grid] {key}: a value is listed twice in {_short(values)}")
        grid[key] = list(values)
    return grid


def _parse_random(
    where: str, table: Mapping[str, Any] | None, train: dict[str, Any], grid: dict[str, list[Any]]
) -> tuple[dict[str, Distribution], int, int]:
    if table is None:
        return {}, 0, 0
    trials, seed = table.get("trials"), table.get("seed", 0)
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"{where}: [random] trials: expected the number of trials, 1 to {MAX_TRIALS:,}, "
                          f"got {_short(trials) if 'trials' in table else 'nothing'}")  # fmt: skip
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        hint = "; to vary the training seed, list it under [grid] (seed = [0, 1, 2])" if isinstance(seed, dict) else ""
        raise ConfigError(f"{where}: [random] seed: expected the sampler's seed, an integer >= 0, got {_short(seed)}"
                          f"{hint}")  # fmt: skip
    out: dict[str, Distribution] = {}
    for key, value in table.items():
        if key in RANDOM_KEYS:
            continue
        _check_option(where, "random", key, train)
        if key in grid:
            raise ConfigError(f"{where}: [random] {key}: also in [grid]; sweep an option in one table")
        out[key] = _parse_distribution(where, f"[random] {key}", key, value)
    if not out:
        raise ConfigError(f"{where}: [random] has no distributions; add one, e.g. lr = {{ loguniform = [1e-4, 1e-2] }}")
    return out, trials, seed


def _parse_distribution(where: str, label: str, key: str, value: Any) -> Distribution:
    if isinstance(value, list):
        value = {"choice": value}
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(f"{where}: {label}: expected a distribution such as {{ uniform = [0.0, 0.9] }} "
                          f"({', '.join(DISTRIBUTIONS)}), got {_short(value)}")  # fmt: skip
    (kind, args), = value.items()  # fmt: skip
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: {label}: unknown distribution {kind!r} (expected {', '.join(DISTRIBUTIONS)})")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}: {label}: choice expects a non-empty list of values, got {_short(args)}")
        for i, option in enumerate(args):
            _check_value(where, f"{label}.choice[{i}]", key, option)
        return Distribution(kind, tuple(args))
    numbers = isinstance(args, list) and len(args) == 2
    numbers = numbers and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if kind == "int":
        numbers = numbers and all(isinstance(a, int) for a in args)
    if not numbers or not all(math.isfinite(a) for a in args) or not args[0] < args[1]:
        what = "integers" if kind == "int" else "numbers"
        raise ConfigError(f"{where}: {label}: {kind} expects [low, high], two {what} with low < high, "
                          f"got {_short(args)}")  # fmt: skip
    if kind == "loguniform" and args[0] <= 0:
        raise ConfigError(f"{where}: {label}: loguniform expects 0 < low < high, got {_short(args)}")
    low, high = (float(a) for a in args) if kind != "int" else args
    for end in (low, high):  # both ends must make valid runs (an integer option refuses uniform floats)
        _check_value(where, f"{label}.{kind}", key, end)
    return Distribution(kind, (low, high))


def _check_option(where: str, table: str, key: str, train: dict[str, Any] | None = None) -> None:
    if key not in OPTIONS:
        raise ConfigError(f"{where}: [{table}] {key}: unknown option (known: {', '.join(OPTIONS)})")
    if train is not None and key in train:
        raise ConfigError(f"{where}: [{table}] {key}: also set in [train]; a swept option goes in one table")


def _check_scalar(where: str, label: str, value: Any) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"{where}: {label}: expected a string or a number, got {_short(value)}")


def _check_value(where: str, label: str, key: str, value: Any) -> None:
    """The value alone, with every other option at its default (clashes between options are found per trial)."""
    _check_scalar(where, label, value)
    base = {"optimizer": "sgd"} if key == "momentum" else {}  # the one option that needs another one
    try:
        RunConfig.from_dict({**base, key: value})
    except ConfigError as e:
        message = str(e).removeprefix("config: ")
        raise ConfigError(f"{where}: {label}: {message}") from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _toml_value(value: Any) -> str:
    """A TOML literal for the values a spec holds: strings, numbers, booleans and lists of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's repr of a finite float is valid TOML (1e-05, 0.001, 3.0)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"spec: cannot write {_short(value)} as TOML")
