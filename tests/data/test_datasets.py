"""Data sets: the real MNIST / Fashion-MNIST files, lookup order, helpers, digits."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from layerwise.data import DATASETS, cache_dir, datasets, flatten, load, scale, write_idx
from layerwise.errors import (
    ChecksumError,
    ConfigError,
    DataFormatError,
    DatasetNotFoundError,
    DTypeError,
    InputError,
    ShapeError,
)

if TYPE_CHECKING:
    from .conftest import Env, FakeSet

MakeDataset = Callable[..., "FakeSet"]

# The SHA-256 of the decompressed files, as published with the data sets.
EXPECTED_SHA256 = {
    "mnist": {
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "fashion-mnist": {
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
}

# --------------------------------------------------------------- real files

# Captured at import, before the autouse fixture points LAYERWISE_DATA elsewhere.
_REAL_DATA_ENV = os.environ.get("LAYERWISE_DATA")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_SYSTEM_DIRS_AT_IMPORT = dict(datasets.SYSTEM_DIRS)


def real_data_root() -> Path:
    """The folder holding mnist/ and fashion-mnist/: $LAYERWISE_DATA, else
    ../shared/data beside the repository.  Missing: fail on CI, skip elsewhere."""
    root = Path(_REAL_DATA_ENV) if _REAL_DATA_ENV else _REPO_ROOT / ".." / "shared" / "data"
    if not (root / "mnist").is_dir():
        message = f"real data sets not found in {root} (set LAYERWISE_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="module")
def mnist():
    # verify=True: the SHA-256 of every decompressed file is checked against SHA256.
    return load("mnist", data_dir=real_data_root() / "mnist", verify=True)


@pytest.fixture(scope="module")
def fashion():
    return load("fashion-mnist", data_dir=real_data_root() / "fashion-mnist", verify=True)


def _check_layout(split: tuple, n: int) -> None:
    x, y = split
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.flags.writeable and y.flags.writeable


def test_checksum_table_is_the_published_one() -> None:
    assert datasets.SHA256 == EXPECTED_SHA256


def test_mnist_real(mnist) -> None:
    (x_train, y_train), (x_test, y_test) = mnist
    _check_layout((x_train, y_train), 60000)
    _check_layout((x_test, y_test), 10000)
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(y_train, minlength=10).tolist() == train_counts
    assert np.bincount(y_test, minlength=10).tolist() == test_counts
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_mnist_pixel_statistics(mnist) -> None:
    (x_train, _), _ = mnist
    # Exact integer sums (no float copy of the 47 M pixels): mean and std of x / 255.
    n = x_train.size
    total = int(x_train.sum(dtype=np.uint64))
    total_sq = int(np.square(x_train, dtype=np.uint32).sum(dtype=np.uint64))
    mean = total / n / 255
    std = np.sqrt(total_sq / n / 255**2 - mean**2)
    assert mean == pytest.approx(0.1307, abs=1e-4)
    assert std == pytest.approx(0.3081, abs=1e-4)
    assert x_train.min() == 0 and x_train.max() == 255


def test_fashion_mnist_real(fashion) -> None:
    (x_train, y_train), (x_test, y_test) = fashion
    _check_layout((x_train, y_train), 60000)
    _check_layout((x_test, y_test), 10000)
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10


def test_real_files_found_through_layerwise_data(env: Env, monkeypatch: pytest.MonkeyPatch, mnist) -> None:
    monkeypatch.setenv("LAYERWISE_DATA", str(real_data_root()))
    (_, y_train), (_, y_test) = load("MNIST", download=False)
    np.testing.assert_array_equal(y_train, mnist[0][1])
    np.testing.assert_array_equal(y_test, mnist[1][1])


# -------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["mnist", "MNIST", " Mnist "])
def test_name_is_case_insensitive(make_dataset: MakeDataset, env: Env, name: str) -> None:
    fake = make_dataset(env.data / "mnist")
    (_, y_train), _ = load(name)
    np.testing.assert_array_equal(y_train, fake.y_train)


@pytest.mark.parametrize("name", ["fashion-mnist", "fashion_mnist", "Fashion-MNIST"])
def test_fashion_aliases(make_dataset: MakeDataset, env: Env, name: str) -> None:
    fake = make_dataset(env.data / "fashion-mnist", seed=3)
    (_, y_train), _ = load(name)
    np.testing.assert_array_equal(y_train, fake.y_train)


@pytest.mark.parametrize("name", ["cifar10", "", "mnist2"])
def test_unknown_name_lists_valid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown data set; valid names: mnist, fashion-mnist, digits"):
        load(name)


def test_name_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="must be a string, got int"):
        load(7)  # type: ignore[arg-type]


def test_datasets_constant() -> None:
    assert DATASETS == ("mnist", "fashion-mnist", "digits")


# -------------------------------------------------------------- lookup order


def _first_label(result) -> int:
    (_, y_train), _ = result
    return int(y_train[0])


def test_data_dir_wins(make_dataset: MakeDataset, env: Env, tmp_path: Path) -> None:
    make_dataset(env.data / "mnist", seed=1)
    make_dataset(env.cache / "mnist", seed=2)
    make_dataset(tmp_path / "mine", seed=3)
    assert _first_label(load("mnist", data_dir=tmp_path / "mine")) == 3
    assert _first_label(load("mnist", data_dir=str(tmp_path / "mine"))) == 3


def test_layerwise_data_before_system_and_cache(
    make_dataset: MakeDataset, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "sys",)})
    make_dataset(env.data / "fashion-mnist", seed=1)
    make_dataset(tmp_path / "sys", seed=4)
    make_dataset(env.cache / "fashion-mnist", seed=2)
    assert _first_label(load("fashion-mnist")) == 1


def test_system_dir_before_cache(
    make_dataset: MakeDataset, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "sys",)})
    make_dataset(tmp_path / "sys", seed=4)
    make_dataset(env.cache / "fashion-mnist", seed=2)
    assert _first_label(load("fashion-mnist")) == 4


def test_debian_folder_is_in_the_table() -> None:
    assert _SYSTEM_DIRS_AT_IMPORT["fashion-mnist"] == (Path("/usr/share/datasets/fashion-mnist"),)
    assert datasets.SYSTEM_DIRS == {}  # the autouse fixture hides it from the tests


def test_cache_used_last(make_dataset: MakeDataset, env: Env) -> None:
    make_dataset(env.cache / "mnist", seed=2)
    assert _first_label(load("mnist")) == 2


def test_incomplete_folder_is_skipped(make_dataset: MakeDataset, env: Env) -> None:
    fake = make_dataset(env.data / "mnist", seed=1)
    fake.path("t10k-labels-idx1-ubyte").unlink()
    make_dataset(env.cache / "mnist", seed=2)
    assert _first_label(load("mnist")) == 2


def test_unset_layerwise_data_goes_to_cache(
    make_dataset: MakeDataset, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAYERWISE_DATA")
    make_dataset(env.cache / "mnist", seed=5)
    assert _first_label(load("mnist")) == 5


def test_uncompressed_files_accepted(make_dataset: MakeDataset, tmp_path: Path) -> None:
    fake = make_dataset(tmp_path / "raw", gz=False)
    (x_train, y_train), (x_test, y_test) = load("mnist", data_dir=tmp_path / "raw")
    np.testing.assert_array_equal(x_train, fake.x_train)
    np.testing.assert_array_equal(x_test, fake.x_test)
    np.testing.assert_array_equal(y_test, fake.y_test)
    assert y_train.dtype == np.int64


def test_missing_files_in_data_dir_is_an_error(make_dataset: MakeDataset, env: Env, tmp_path: Path) -> None:
    make_dataset(env.data / "mnist")  # a complete copy elsewhere must NOT be used
    fake = make_dataset(tmp_path / "partial")
    fake.path("train-images-idx3-ubyte").unlink()
    fake.path("t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist", data_dir=tmp_path / "partial")
    msg = str(info.value)
    assert str(tmp_path / "partial") in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert "train-labels-idx1-ubyte" not in msg  # only the missing ones


def test_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"nowhere is not a folder.*missing"):
        load("mnist", data_dir=tmp_path / "nowhere")


def test_not_found_without_download_names_files_and_folders(env: Env) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist", download=False)
    msg = str(info.value)
    for stem in datasets.IDX_FILES:
        assert f"{stem}.gz" in msg
    assert str(env.data / "mnist") in msg and str(env.cache / "mnist") in msg
    assert "LAYERWISE_DATA" in msg and "data_dir" in msg
    assert "download=False" in msg
    assert not (env.cache / "mnist").exists()  # nothing created


def test_not_found_mentions_unset_layerwise_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAYERWISE_DATA")
    with pytest.raises(DatasetNotFoundError, match=r"\$LAYERWISE_DATA is not set"):
        load("mnist", download=False)


def test_cache_dir_environment(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_dir("mnist") == env.cache / "mnist"
    monkeypatch.delenv("LAYERWISE_CACHE")
    assert cache_dir("mnist") == env.home / ".cache" / "layerwise" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("mnist") == tmp_path / "xdg" / "layerwise" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, per the XDG spec
    assert cache_dir("mnist") == env.home / ".cache" / "layerwise" / "mnist"


def test_xdg_cache_is_searched(make_dataset: MakeDataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LAYERWISE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    make_dataset(tmp_path / "xdg" / "layerwise" / "mnist", seed=6)
    assert _first_label(load("mnist")) == 6


# ----------------------------------------------------- verification, validation


def test_verify_detects_wrong_checksum(
    make_dataset: MakeDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = make_dataset(tmp_path / "d")
    monkeypatch.setitem(datasets.SHA256, "mnist", dict(fake.sha256))
    load("mnist", data_dir=tmp_path / "d", verify=True)  # all four match
    bad = dict(fake.sha256, **{"t10k-images-idx3-ubyte": "0" * 64})
    monkeypatch.setitem(datasets.SHA256, "mnist", bad)
    load("mnist", data_dir=tmp_path / "d")  # not hashed by default
    with pytest.raises(ChecksumError) as info:
        load("mnist", data_dir=tmp_path / "d", verify=True)
    msg = str(info.value)
    assert str(fake.path("t10k-images-idx3-ubyte")) in msg
    assert fake.sha256["t10k-images-idx3-ubyte"] in msg and "0" * 64 in msg


def test_count_mismatch_in_data_set(tmp_path: Path, make_dataset: MakeDataset) -> None:
    fake = make_dataset(tmp_path / "d")
    write_idx(fake.path("train-labels-idx1-ubyte"), np.zeros(11, np.uint8))
    with pytest.raises(DataFormatError, match=r"counts differ.*12 images.*11 labels"):
        load("mnist", data_dir=tmp_path / "d")


def test_wrong_image_shape(tmp_path: Path, make_dataset: MakeDataset) -> None:
    fake = make_dataset(tmp_path / "d")
    write_idx(fake.path("t10k-images-idx3-ubyte"), np.zeros((5, 27, 28), np.uint8))
    with pytest.raises(DataFormatError, match=r"t10k-images.*\(n, 28, 28\).*\(5, 27, 28\)"):
        load("mnist", data_dir=tmp_path / "d")


def test_labels_out_of_range(tmp_path: Path, make_dataset: MakeDataset) -> None:
    fake = make_dataset(tmp_path / "d")
    write_idx(fake.path("t10k-labels-idx1-ubyte"), np.array([0, 1, 2, 3, 10], np.uint8))
    with pytest.raises(DataFormatError, match=r"t10k-labels.*0\.\.9.*maximum 10"):
        load("mnist", data_dir=tmp_path / "d")


def test_malformed_file_names_the_file(tmp_path: Path, make_dataset: MakeDataset) -> None:
    fake = make_dataset(tmp_path / "d")
    fake.path("train-images-idx3-ubyte").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataFormatError, match=re.escape(str(fake.path("train-images")))):
        load("mnist", data_dir=tmp_path / "d")


# ------------------------------------------------------------------ helpers


def test_flatten() -> None:
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    flat = flatten(x)
    assert flat.shape == (2, 784) and np.shares_memory(flat, x)
    np.testing.assert_array_equal(flat[1], x[1].reshape(-1))
    assert flatten(np.zeros((0, 28, 28))).shape == (0, 784)
    assert flatten(np.zeros(5)).shape == (5, 1)
    with pytest.raises(ShapeError, match="0-d"):
        flatten(np.float32(1))


def test_scale() -> None:
    x = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    s = scale(x)
    assert s.dtype == np.float32 and s.shape == x.shape
    np.testing.assert_array_equal(s, x.astype(np.float32) / np.float32(255))
    assert s.min() == 0.0 and s.max() == 1.0
    s64 = scale(x, dtype=np.float64)
    assert s64.dtype == np.float64
    np.testing.assert_array_equal(s64, x / 255.0)
    np.testing.assert_array_equal(scale(x.astype(np.int64)), s)


def test_scale_rejects_bad_input() -> None:
    with pytest.raises(DTypeError, match=r"integer pixel values.*float32"):
        scale(np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match="floating type"):
        scale(np.zeros(3, np.uint8), dtype=np.int32)
    with pytest.raises(InputError, match=r"0\.\.255, got -1\.\.300"):
        scale(np.array([-1, 300]))


# ------------------------------------------------------------------ digits


def test_digits() -> None:
    pytest.importorskip("sklearn")
    (x_train, y_train), (x_test, y_test) = load("digits")
    assert x_train.shape == (1500, 8, 8) and x_test.shape == (297, 8, 8)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert y_train.shape == (1500,) and y_test.shape == (297,)
    assert x_train.min() == 0 and x_train.max() == 255
    from sklearn.datasets import load_digits

    ref = load_digits()
    np.testing.assert_array_equal(y_train, ref.target[:1500])
    np.testing.assert_array_equal(y_test, ref.target[1500:])
    np.testing.assert_array_equal(x_train[0], np.rint(ref.images[0] * 255 / 16))
    assert set(np.unique(x_train).tolist()) <= {round(v * 255 / 16) for v in range(17)}
    (x_again, _), _ = load("Digits")
    np.testing.assert_array_equal(x_again, x_train)  # deterministic


def test_digits_rejects_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="digits ships with scikit-learn"):
        load("digits", data_dir=tmp_path)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail, as if scikit-learn were absent.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetNotFoundError, match="pip install scikit-learn"):
        load("digits")
