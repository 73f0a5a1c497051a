"""Exported trained models give the same MNIST test predictions in ONNX Runtime as in layerwise, image by image.

The networks are those of ``layerwise reproduce hw2`` (model c, the seed's
784-140-10 ReLU net) and ``layerwise reproduce lenet5``, trained quickly here (one
epoch on a subset).  ONNX Runtime gets the raw uint8 test images (10,000 of them);
its predicted label must equal layerwise's for every image, so the accuracies are
equal too.  The same holds for the network ``from_onnx`` reads back, and for the
PyTorch module ``to_torch`` makes.  Needs MNIST in ``$LAYERWISE_DATA`` (skipped
without it unless CI is set).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise.arch import build_network
from layerwise.errors import DatasetNotFoundError
from layerwise.experiments.hw2 import NETWORKS
from layerwise.experiments.lenet5 import SPEC as LENET5
from layerwise.interop import from_onnx, to_onnx, to_torch

try:
    import onnxruntime as ort
    import torch
except ImportError:  # pragma: no cover - exercised only where they are missing
    if os.environ.get("CI"):
        raise
    pytest.skip("onnxruntime/torch are not installed (set CI=1 to make this an error)", allow_module_level=True)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mnist():
    from layerwise.data import load

    try:
        return load("mnist")
    except DatasetNotFoundError:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip("MNIST is not available (set LAYERWISE_DATA)")


HW2_C = next(spec for spec in NETWORKS if spec["name"] == "c")


@pytest.mark.parametrize(
    ("spec", "images", "n_train"), [(HW2_C, False, 20_000), (LENET5, True, 6_000)], ids=["hw2-c", "lenet5"]
)
def test_onnx_runtime_predicts_every_test_image_as_layerwise(mnist, tmp_path, spec, images, n_train):
    (x, y), (xt, yt) = mnist
    shape = (1, 28, 28) if images else (784,)
    x, xt = x.reshape(len(x), *shape)[:n_train], xt.reshape(len(xt), *shape)
    model = lw.Model(build_network(spec["arch"], shape, seed=spec["seed"]), optimizer=lw.optim.Adam(spec["lr"]))
    model.fit(x, y[:n_train], epochs=1, batch_size=spec["batch_size"], verbose=0)
    model.train_config.update(dataset="mnist", arch=spec["arch"])
    _, accuracy = model.evaluate(xt, yt)
    assert accuracy > 0.9  # a trained network, not a constant one: the comparison means something

    ours = model.predict(xt)
    to_onnx(model, tmp_path / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"  # the raw test images go straight in
    logits = np.concatenate([session.run(None, {"input": xt[i : i + 2000]})[0] for i in range(0, len(xt), 2000)])
    theirs = logits.argmax(axis=1)
    differ = np.flatnonzero(theirs != ours)
    assert differ.size == 0, f"{differ.size} of {len(xt)} test images predicted differently, e.g. {differ[:10]}"
    assert (theirs == yt).mean() == accuracy

    back = lw.Model(from_onnx(tmp_path / "model.onnx"))
    assert np.array_equal(back.predict(xt), ours)
    with torch.no_grad():
        module = to_torch(model.net).eval()
        torch_labels = np.concatenate([module(torch.from_numpy(xt[i : i + 2000])).argmax(1).numpy()
                                       for i in range(0, len(xt), 2000)])  # fmt: skip
    assert np.array_equal(torch_labels, ours)
