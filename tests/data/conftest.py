"""Fixtures for the data tests: an isolated environment, small fake data sets,
and a local HTTP server standing in for the download mirrors."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from layerwise.data import datasets
from layerwise.data.idx import write_idx


@dataclass
class Env:
    """The temporary folders the isolated environment points layerwise at."""

    data: Path  # $LAYERWISE_DATA (empty unless a test fills it)
    cache: Path  # $LAYERWISE_CACHE
    home: Path  # $HOME


@pytest.fixture(autouse=True)
def env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Make every test hermetic: no real data folder, cache, system folder or mirror
    can be reached, so no test touches the internet or the user's files."""
    root = tmp_path_factory.mktemp("env")  # not tmp_path: tests may list that
    e = Env(root / "data", root / "cache", root / "home")
    for folder in (e.data, e.home):
        folder.mkdir()
    monkeypatch.setenv("LAYERWISE_DATA", str(e.data))
    monkeypatch.setenv("LAYERWISE_CACHE", str(e.cache))
    monkeypatch.setenv("HOME", str(e.home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("LAYERWISE_MIRROR", raising=False)
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": (), "fashion-mnist": ()})
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT_S", 5.0)
    return e


@dataclass
class FakeSet:
    """A small IDX data set written by ``make_dataset``."""

    folder: Path
    x_train: np.ndarray  # (n_train, 28, 28) uint8
    y_train: np.ndarray  # (n_train,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: dict[str, str]  # stem -> SHA-256 of the uncompressed file

    def path(self, stem: str) -> Path:
        return next(p for p in self.folder.iterdir() if p.name.startswith(stem))


@pytest.fixture
def make_dataset() -> Callable[..., FakeSet]:
    """Factory: ``make_dataset(folder, seed=0, n_train=12, n_test=5, gz=True)``.

    Different seeds give different first labels, so tests can tell which folder
    a load came from.
    """

    def make(folder: Path, seed: int = 0, n_train: int = 12, n_test: int = 5, gz: bool = True) -> FakeSet:
        rng = np.random.default_rng(seed)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), np.uint8),
            "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), np.uint8),
            "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, np.uint8),
        }
        arrays["train-labels-idx1-ubyte"][0] = seed % 10  # a visible fingerprint
        sha = {}
        for stem, arr in arrays.items():
            path = folder / (stem + (".gz" if gz else ""))
            write_idx(path, arr)
            raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
            sha[stem] = hashlib.sha256(raw).hexdigest()
        return FakeSet(folder, *arrays.values(), sha256=sha)

    return make


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass  # keep the test output clean


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 (port 0); yields (base URL, served folder)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval keeps shutdown() (and so each test's teardown) quick.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
