"""safetensors: our NumPy reader/writer against the reference ``safetensors`` package, and PyTorch state dicts.

The reader and writer never use the ``safetensors`` package or torch; the tests use
both as independent references (files written by one must read identically in the
other) and to check that a state_dict saved by PyTorch loads into the matching
layerwise network, which then predicts what the torch module predicts.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ModelFileError
from layerwise.interop import (
    load_safetensors,
    read_safetensors,
    save_safetensors,
    to_torch,
    torch_state_dict,
    write_safetensors,
)

try:
    import safetensors.numpy as stn
    import safetensors.torch as stt
    import torch
except ImportError:  # pragma: no cover - exercised only where they are missing
    if os.environ.get("CI"):
        raise
    pytest.skip("safetensors/torch are not installed (set CI=1 to make this an error)", allow_module_level=True)

torch.set_num_threads(1)
nn = torch.nn


def lenet(seed: int, dtype=np.float32) -> lw.Sequential:
    return lw.Sequential(
        [
            lw.Rescale(1 / 255),
            lw.Conv2D(6, 5, padding=2),
            lw.BatchNorm(),
            lw.ReLU(),
            lw.MaxPool2D(2),
            lw.Conv2D(16, 5),
            lw.ReLU(),
            lw.MaxPool2D(2),
            lw.Flatten(),
            lw.Dense(120),
            lw.ReLU(),
            lw.Dense(84),
            lw.BatchNorm(),
            lw.ReLU(),
            lw.Dense(10),
        ],  # fmt: skip
        input_shape=(1, 28, 28),
        seed=seed,
        dtype=dtype,
    )


def trained_lenet(seed: int = 0) -> lw.Sequential:
    net = lenet(seed)
    x = np.random.default_rng(seed).integers(0, 256, (32, 1, 28, 28)).astype(np.uint8)
    net.forward(x, training=True)  # BatchNorm statistics away from (0, 1)
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_and_the_reference_reads_our_file(tmp_path, dtype):
    net = lenet(0, dtype)
    net.forward(np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28)).astype(np.uint8), training=True)
    path = tmp_path / "w.safetensors"
    save_safetensors(net, path)
    reference = stn.load_file(str(path))
    assert set(reference) == set(net.state_dict())
    for name, value in net.state_dict().items():
        assert reference[name].dtype == dtype and np.array_equal(reference[name], value), name
    other = lenet(1, dtype)
    assert not np.array_equal(other.flat_params, net.flat_params)
    load_safetensors(other, path)
    for name, value in net.state_dict().items():
        assert np.array_equal(other.state_dict()[name], value), name


def test_we_read_what_the_reference_writes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "f16": rng.standard_normal((2, 2)).astype(np.float16),
        "i64": np.arange(7, dtype=np.int64),
        "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "i32": -np.arange(3, dtype=np.int32),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "bool": np.array([True, False, True]),
        "10.weight": np.ones((1, 1, 1, 1), np.float32),
    }
    stn.save_file(arrays, str(tmp_path / "ref.safetensors"), metadata={"format": "np", "note": "é"})
    ours, metadata = read_safetensors(tmp_path / "ref.safetensors")
    assert metadata == {"format": "np", "note": "é"}
    assert set(ours) == set(arrays)
    for name, value in arrays.items():
        assert ours[name].dtype == value.dtype and ours[name].shape == value.shape, name
        assert np.array_equal(ours[name], value), name
    # ... and our writer's file, with the same arrays, reads the same in the reference.
    write_safetensors(arrays, tmp_path / "ours.safetensors", {"k": "v"})
    again = stn.load_file(str(tmp_path / "ours.safetensors"))
    assert all(np.array_equal(again[k], v) and again[k].dtype == v.dtype for k, v in arrays.items())
    raw = (tmp_path / "ours.safetensors").read_bytes()
    assert (8 + int.from_bytes(raw[:8], "little")) % 8 == 0  # the data starts 8-byte aligned


def test_torch_loads_the_torch_named_file(tmp_path):
    net = trained_lenet()
    save_safetensors(net, tmp_path / "t.safetensors", torch_names=True)
    module = to_torch(lenet(5))
    module.load_state_dict(stt.load_file(str(tmp_path / "t.safetensors")))  # strict: every name matches
    module.eval()
    x = np.random.default_rng(1).integers(0, 256, (6, 1, 28, 28)).astype(np.uint8)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), net.forward(x), rtol=1e-5, atol=1e-5)
    assert set(torch_state_dict(net)) == set(module.state_dict())


def torch_lenet() -> nn.Sequential:
    """LeNet written in torch, without the layerwise Rescale: indices differ from the layerwise network's."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.BatchNorm1d(84), nn.ReLU(),
        nn.Linear(84, 10),
    )  # fmt: skip
    with torch.no_grad():
        module.train()(torch.rand(16, 1, 28, 28))
    return module.eval()


def test_pytorch_state_dict_loads_into_the_matching_network(tmp_path):
    module = torch_lenet()
    stt.save_file(module.state_dict(), str(tmp_path / "sd.safetensors"))
    net = lenet(3)  # layerwise's own LeNet: Rescale first, so every index is one more than torch's
    load_safetensors(net, tmp_path / "sd.safetensors")
    np.testing.assert_array_equal(net.layers[9].params["W"], module[8].weight.detach().numpy().T)
    np.testing.assert_array_equal(net.layers[12].buffers["running_var"], module[11].running_var.numpy())
    x = np.random.default_rng(2).integers(0, 256, (9, 1, 28, 28)).astype(np.uint8)
    with torch.no_grad():
        expected = module(torch.from_numpy(x).float() / 255).numpy()
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-5, atol=1e-5)


def test_more_than_ten_modules_are_ordered_numerically(tmp_path):
    layers = [nn.Linear(3, 4)] + [nn.Linear(4, 4) for _ in range(10)] + [nn.Linear(4, 2)]
    module = nn.Sequential(*layers)
    stt.save_file(module.state_dict(), str(tmp_path / "sd.safetensors"))  # "10.weight" sorts before "2.weight"
    net = lw.Sequential([lw.Dense(4)] + [lw.Dense(4) for _ in range(10)] + [lw.Dense(2)], input_shape=(3,), seed=0)
    load_safetensors(net, tmp_path / "sd.safetensors")
    x = torch.randn(5, 3)
    np.testing.assert_allclose(net.forward(x.numpy()), module(x).detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("tensors", "needle"),
    [
        ({"2.W": np.zeros((5, 6), np.float32)}, "'2.W' has shape (5, 6), the network's is (4, 2)"),
        ({"0.weight": np.zeros((4, 3), np.float32)}, "weights of 1 modules"),
        (
            {
                "0.weight": np.zeros((4, 3), np.float32),
                "0.bias": np.zeros(4, np.float32),
                "1.weight": np.zeros((2, 5), np.float32),
                "1.bias": np.zeros(2, np.float32),
            },
            "'1.weight' has shape (2, 5)",
        ),  # fmt: skip
        (
            {
                "0.weight": np.zeros((4, 3), np.float32),
                "1.weight": np.zeros((2, 4), np.float32),
                "1.bias": np.zeros(2, np.float32),
            },
            "holds ['weight']",
        ),  # fmt: skip
        ({"something": np.zeros(3, np.float32)}, "neither one of the network's"),
    ],
)
def test_mismatches_are_refused_before_anything_changes(tmp_path, tensors, needle):
    net = lw.Sequential([lw.Dense(4), lw.ReLU(), lw.Dense(2)], input_shape=(3,), seed=0)
    if "2.W" in tensors:
        tensors = {**net.state_dict(), **tensors}
    before = net.flat_params.copy()
    write_safetensors(tensors, tmp_path / "bad.safetensors")
    with pytest.raises(ModelFileError, match=re.escape(needle)):
        load_safetensors(net, tmp_path / "bad.safetensors")
    assert np.array_equal(net.flat_params, before)


def test_non_finite_and_unreadable_dtypes_are_refused(tmp_path):
    net = lw.Sequential([lw.Dense(2)], input_shape=(3,), seed=0)
    state = net.state_dict()
    state["0.b"] = np.array([1.0, np.nan], np.float32)
    write_safetensors(state, tmp_path / "nan.safetensors")
    with pytest.raises(ModelFileError, match="'0.b' holds NaN"):
        load_safetensors(net, tmp_path / "nan.safetensors")
    stt.save_file({"0.W": torch.zeros(3, 2, dtype=torch.bfloat16), "0.b": torch.zeros(2)}, str(tmp_path / "bf.st"))
    with pytest.raises(ModelFileError, match="BF16.*F32"):
        load_safetensors(net, tmp_path / "bf.st")


def test_metadata_and_no_pickle(tmp_path):
    net = lw.NeuralNetwork(4, [(3, "ReLU"), (2, "Linear")], seed=0)
    save_safetensors(net, tmp_path / "m.safetensors", metadata={"dataset": "mnist"})
    _, metadata = read_safetensors(tmp_path / "m.safetensors")
    assert metadata["format"] == "layerwise" and metadata["dataset"] == "mnist"
    assert [layer["type"] for layer in json.loads(metadata["layers"])] == ["Dense", "ReLU", "Dense", "Linear"]
    assert b"\x80\x04" not in (tmp_path / "m.safetensors").read_bytes()[:2]  # not a pickle
