"""Downloading into the cache, against a local HTTP server (never the internet)."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from layerwise.data import datasets, load, write_idx
from layerwise.errors import ChecksumError, ConfigError, DatasetNotFoundError

if TYPE_CHECKING:
    from .conftest import Env, FakeSet

MakeDataset = Callable[..., "FakeSet"]
Server = tuple[str, Path]

# The module's own table, captured before the autouse fixture empties it for each test.
_MIRRORS_AT_IMPORT = dict(datasets.MIRRORS)


@pytest.fixture
def served(make_dataset: MakeDataset, http_server: Server, monkeypatch: pytest.MonkeyPatch) -> FakeSet:
    """A fake MNIST on the local server, LAYERWISE_MIRROR pointing at it, and the
    checksum table holding its hashes."""
    url, root = http_server
    fake = make_dataset(root, seed=7)
    monkeypatch.setenv("LAYERWISE_MIRROR", url)
    monkeypatch.setitem(datasets.SHA256, "mnist", dict(fake.sha256))
    return fake


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def cache_files(env: Env) -> list[str]:
    folder = env.cache / "mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_into_cache_and_load(served: FakeSet, env: Env) -> None:
    (x_train, y_train), (x_test, y_test) = load("mnist")
    np.testing.assert_array_equal(x_train, served.x_train)
    np.testing.assert_array_equal(y_train, served.y_train)
    np.testing.assert_array_equal(x_test, served.x_test)
    np.testing.assert_array_equal(y_test, served.y_test)
    assert cache_files(env) == sorted(f"{stem}.gz" for stem in datasets.IDX_FILES)
    for stem in datasets.IDX_FILES:  # the very bytes the server sent
        assert (env.cache / "mnist" / f"{stem}.gz").read_bytes() == served.path(stem).read_bytes()


def test_second_load_uses_the_cache(served: FakeSet, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    load("mnist")
    monkeypatch.setenv("LAYERWISE_MIRROR", closed_port_url())  # the server is "gone"
    (_, y_train), _ = load("mnist", verify=True)
    np.testing.assert_array_equal(y_train, served.y_train)


def test_only_missing_files_are_downloaded(
    served: FakeSet, env: Env, make_dataset: MakeDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = make_dataset(env.cache / "mnist", seed=7)  # same data as the server's
    local.path("t10k-labels-idx1-ubyte").unlink()
    for stem in datasets.IDX_FILES:  # the server only has the missing file
        if stem != "t10k-labels-idx1-ubyte":
            served.path(stem).unlink()
    (_, _), (_, y_test) = load("mnist")
    np.testing.assert_array_equal(y_test, served.y_test)


def test_uncompressed_download_is_stored_without_gz(served: FakeSet, env: Env, http_server: Server) -> None:
    _, root = http_server
    gz = served.path("train-labels-idx1-ubyte")
    gz.write_bytes(gzip.decompress(gz.read_bytes()))  # served raw under the .gz name
    (_, y_train), _ = load("mnist")
    np.testing.assert_array_equal(y_train, served.y_train)
    assert "train-labels-idx1-ubyte" in cache_files(env)


def test_corrupted_download_raises_and_is_not_kept(served: FakeSet, env: Env) -> None:
    path = served.path("train-images-idx3-ubyte")
    images = served.x_train.copy()
    images[0, 0, 0] ^= 1  # one flipped bit: valid gzip and IDX, wrong contents
    write_idx(path, images)
    with pytest.raises(ChecksumError) as info:
        load("mnist")
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "SHA-256" in msg
    assert served.sha256["train-images-idx3-ubyte"] in msg
    assert "train-images-idx3-ubyte.gz" not in cache_files(env)
    assert not any(name.endswith(".tmp") for name in cache_files(env))


def test_garbled_download_is_a_checksum_error(served: FakeSet, env: Env) -> None:
    served.path("t10k-images-idx3-ubyte").write_bytes(b"\x1f\x8b<html>Gateway error</html>")
    with pytest.raises(ChecksumError, match="corrupt gzip"):
        load("mnist")
    assert "t10k-images-idx3-ubyte.gz" not in cache_files(env)
    assert not any(name.endswith(".tmp") for name in cache_files(env))


def test_missing_file_on_server(served: FakeSet, env: Env) -> None:
    served.path("t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist")
    msg = str(info.value)
    assert "404" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    for stem in datasets.IDX_FILES:
        assert f"{stem}.gz" in msg
    assert str(env.data / "mnist") in msg and str(env.cache / "mnist") in msg
    assert "LAYERWISE_DATA" in msg and "data_dir" in msg
    assert "t10k-labels-idx1-ubyte.gz" not in cache_files(env)


def test_no_server(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url()
    monkeypatch.setenv("LAYERWISE_MIRROR", url)
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist")
    msg = str(info.value)
    assert url in msg and "refused" in msg.lower()
    assert str(env.cache / "mnist") in msg and "train-images-idx3-ubyte.gz" in msg
    assert cache_files(env) == []


def test_mirrors_tried_in_order(
    served: FakeSet, env: Env, http_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = http_server
    monkeypatch.delenv("LAYERWISE_MIRROR")
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (closed_port_url(), url + "nothing-here/", url))
    (_, y_train), _ = load("mnist")
    np.testing.assert_array_equal(y_train, served.y_train)


def test_mirror_with_a_bad_copy_falls_back_to_a_good_one(
    make_dataset: MakeDataset,
    served: FakeSet,
    http_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, root = http_server
    bad = make_dataset(root / "bad", seed=8)  # a different data set: wrong hashes
    monkeypatch.setenv("LAYERWISE_MIRROR", f"{url}bad/ {url}")
    (_, y_train), _ = load("mnist")
    np.testing.assert_array_equal(y_train, served.y_train)
    assert not np.array_equal(bad.y_train, served.y_train)


def test_name_placeholder_in_mirror(
    make_dataset: MakeDataset, http_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = http_server
    fake = make_dataset(root / "fashion-mnist", seed=9)
    monkeypatch.setenv("LAYERWISE_MIRROR", url + "{name}")  # no trailing slash, too
    monkeypatch.setitem(datasets.SHA256, "fashion-mnist", dict(fake.sha256))
    (_, y_train), _ = load("fashion_mnist")
    np.testing.assert_array_equal(y_train, fake.y_train)


def test_download_false_never_fetches(served: FakeSet, env: Env) -> None:
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load("mnist", download=False)
    assert cache_files(env) == []


def test_data_dir_never_downloads(served: FakeSet, env: Env, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="lacks files"):
        load("mnist", data_dir=tmp_path)
    assert cache_files(env) == []


def test_no_mirrors_configured(env: Env) -> None:
    with pytest.raises(DatasetNotFoundError, match="no mirror configured"):
        load("mnist")


def test_bad_mirror_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYERWISE_MIRROR", "ftp.example.org/mnist")
    with pytest.raises(ConfigError, match=r"LAYERWISE_MIRROR.*http://"):
        load("mnist")


def test_oversized_download_is_refused(served: FakeSet, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "MAX_DOWNLOAD_BYTES", 100)
    with pytest.raises(DatasetNotFoundError, match="larger than MAX_DOWNLOAD_BYTES"):
        load("mnist")
    assert cache_files(env) == []


def test_public_mirror_table() -> None:
    assert _MIRRORS_AT_IMPORT["mnist"] == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )
    assert _MIRRORS_AT_IMPORT["fashion-mnist"] == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
