"""MNIST smoke test: the seed's Problem 4(c) network reaches >= 97 % test accuracy.

The data is read from ``$LAYERWISE_DATA/mnist/`` (CI sets it) or else from
``<repo>/../shared/data/mnist/``.  Missing data fails the test when CI is set and
skips it otherwise.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import optim

REPO_ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def mnist_folder() -> Path | None:
    candidates = []
    if root := os.environ.get("LAYERWISE_DATA"):
        candidates.append(Path(root) / "mnist")
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "mnist")
    for folder in candidates:
        if all((folder / name).is_file() for name in FILES.values()):
            return folder
    return None


def read_idx_gz(path: Path, offset: int) -> np.ndarray:
    """A minimal IDX reader, used only if layerwise.data is unavailable."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def one_blas_thread():
    """Batches of 32 gain nothing from BLAS threads, and on a busy 2-core machine
    OpenBLAS threads spinning against other processes make training 10-50x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn, a test dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def load_mnist(folder: Path):
    try:
        from layerwise.data import load
    except ImportError:
        load = None
    if load is not None:
        (x_train, y_train), (x_test, y_test) = load("mnist", data_dir=folder, download=False)
        return x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test
    x_train = read_idx_gz(folder / FILES["x_train"], 16).reshape(-1, 784)
    y_train = read_idx_gz(folder / FILES["y_train"], 8)
    x_test = read_idx_gz(folder / FILES["x_test"], 16).reshape(-1, 784)
    y_test = read_idx_gz(folder / FILES["y_test"], 8)
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def mnist():
    folder = mnist_folder()
    if folder is None:
        message = "MNIST not found in $LAYERWISE_DATA/mnist/ or ../shared/data/mnist/"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return load_mnist(folder)


def test_mnist_data_shapes(mnist):
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10))
    assert x_train.max() == 255


def test_mnist_784_140_10_reaches_97_percent(mnist):
    x_train, y_train, x_test, y_test = mnist
    net = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0, input_scale=1 / 255)
    model = lw.Model(net, loss="crossEntropyLogit", optimizer=optim.Adam(1e-3))
    start = time.perf_counter()
    with one_blas_thread():
        history = model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0)
        seconds = time.perf_counter() - start
        loss, accuracy = model.evaluate(x_test, y_test)
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f} after 3 epochs ({seconds:.1f} s)"
    assert history.history["accuracy"][-1] >= 0.97
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert loss < 0.12
    assert np.mean(model.predict(x_test) == y_test) == pytest.approx(accuracy)
