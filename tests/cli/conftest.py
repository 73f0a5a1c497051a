"""Fixtures for the command-line tests: run the real ``layerwise`` console script in a subprocess.

The MNIST files come from ``$LAYERWISE_DATA`` (CI sets it), else from
``<repo root>/../shared/data``; tests that need them are skipped when neither has them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    env = os.environ.get("LAYERWISE_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def have_mnist() -> bool:
    folder = data_root() / "mnist"
    return folder.is_dir() and any(folder.glob("t10k-images*"))


needs_mnist = pytest.mark.skipif(
    not have_mnist(), reason=f"MNIST not found in {data_root()}/mnist (set LAYERWISE_DATA)"
)


def layerwise_command() -> list[str]:
    """The installed console script of this interpreter's environment, else ``python -m layerwise``."""
    script = Path(sysconfig.get_path("scripts")) / "layerwise"
    if script.is_file():
        return [str(script)]
    found = shutil.which("layerwise")
    return [found] if found else [sys.executable, "-m", "layerwise"]


def cli_env(tmp: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["LAYERWISE_DATA"] = str(data_root())
    if tmp is not None:  # never download into the user's cache from a test
        env["LAYERWISE_CACHE"] = str(tmp / "cache")
    # Several test processes may share two cores: one BLAS thread each avoids oversubscription.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, module: bool = False) -> Result:
    """Run ``layerwise ARGS...`` (or ``python -m layerwise``) and capture its output."""
    command = [sys.executable, "-m", "layerwise"] if module else layerwise_command()
    done = subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(cwd),
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """The issue's acceptance run: 784-140-10 ReLU, Adam 1e-3, batch 32, 10 epochs on all of MNIST."""
    if not have_mnist():
        pytest.skip(f"MNIST not found in {data_root()}/mnist")
    tmp = tmp_path_factory.mktemp("mnist_run")
    out = tmp / "run"
    result = run_cli(
        "train",
        "--dataset",
        "mnist",
        "--arch",
        "[(140,ReLU),(10,Linear)]",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--epochs",
        "10",
        "--batch-size",
        "32",
        "--seed",
        "0",
        "--validation",
        "0",  # all 60,000 training images, as the acceptance run was specified (97.9%; 97.4-97.6% on 55,000)
        "--out",
        str(out),
        "--quiet",
        cwd=tmp,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out, result
