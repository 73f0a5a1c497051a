"""ONNX files written by ``torch.onnx.export`` (both exporters) import with ``from_onnx`` and predict as torch does.

The networks: an MLP and LeNet-5 as ``torch.nn.Sequential``, and a wider one using
every supported module (BatchNorm1d/2d with trained statistics, AvgPool, Sigmoid,
Tanh, Dropout, Softmax).  torch's TorchScript exporter (``dynamo=False``) writes
Flatten, Gemm(transB=1) and Identity nodes aliasing shared constants; the dynamo
exporter writes Reshape with a constant shape and folds some constants.  Both must
import and agree with torch within 1e-5.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from layerwise.errors import ModelFileError
from layerwise.interop import from_onnx

try:
    import onnx
    import onnxscript  # noqa: F401 (torch's dynamo exporter needs it)
    import torch
except ImportError:  # pragma: no cover - exercised only where they are missing
    if os.environ.get("CI"):
        raise
    pytest.skip("torch/onnx/onnxscript are not installed (set CI=1 to make this an error)", allow_module_level=True)

torch.set_num_threads(1)
nn = torch.nn
TOL = {"rtol": 1e-5, "atol": 1e-5}
pytestmark = pytest.mark.filterwarnings("ignore")


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 140), nn.ReLU(), nn.Linear(140, 10))


def lenet5() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


def wide() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(4, 5, (2, 3), padding=(1, 0)), nn.Sigmoid(), nn.MaxPool2d((2, 1), stride=(1, 2)), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(5 * 7 * 3, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Identity(), nn.Linear(12, 10),
        nn.Softmax(dim=1),
    )  # fmt: skip


NETWORKS = {"mlp": mlp, "lenet5": lenet5, "wide": wide}


def prepared(name: str) -> nn.Sequential:
    torch.manual_seed(0)
    module = NETWORKS[name]()
    module.train()
    with torch.no_grad():  # training-mode passes move BatchNorm's running statistics
        for _ in range(3):
            module(torch.randn(16, 1, 28, 28) * 2 + 0.5)
    return module.eval()


def export(module: nn.Module, path, exporter: str, dynamic: bool = True) -> None:
    x = torch.randn(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
            torch.onnx.export(
                module, (x,), str(path), dynamo=True, external_data=False, dynamic_shapes=shapes,
                input_names=["x"], output_names=["y"], verbose=False,
            )  # fmt: skip
        else:
            axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
            torch.onnx.export(
                module, (x,), str(path), dynamo=False, dynamic_axes=axes, input_names=["x"], output_names=["y"]
            )


@pytest.fixture(scope="module", params=[(n, e) for n in NETWORKS for e in ("torchscript", "dynamo")], ids=str)
def exported(request, tmp_path_factory):
    name, exporter = request.param
    module = prepared(name)
    path = tmp_path_factory.mktemp("torch") / f"{name}-{exporter}.onnx"
    export(module, path, exporter)
    return name, exporter, module, path


def test_torch_export_imports_and_predicts_as_torch(exported):
    name, exporter, module, path = exported
    onnx.checker.check_model(onnx.load(str(path)))  # a real ONNX file to begin with
    net = from_onnx(path)
    x = torch.randn(37, 1, 28, 28)
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(net.forward(x.numpy()), expected, **TOL)
    if name == "lenet5":
        kinds = [type(layer).__name__ for layer in net.layers]
        assert kinds == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D",
                         "Flatten", "Dense", "ReLU", "Dense", "ReLU", "Dense"]  # fmt: skip
        assert net.layers[0].padding == 2 and net.n_params == sum(p.numel() for p in module.parameters())


def test_torchscript_writes_the_patterns_we_claim(exported):
    """Guard the test's premise: the exporters emit Gemm(transB=1), Flatten/Reshape, Identity aliases."""
    name, exporter, _, path = exported
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Gemm" in ops
    assert ("Flatten" if exporter == "torchscript" else "Reshape") in ops


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_fixed_batch_export(tmp_path, exporter):
    """Without dynamic axes torch bakes the batch (2) into Reshape's shape; the network still takes any batch."""
    module = prepared("lenet5")
    export(module, tmp_path / "m.onnx", exporter, dynamic=False)
    net = from_onnx(tmp_path / "m.onnx")
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(x.numpy()), module(x).numpy(), **TOL)


def test_external_data_default_of_dynamo_is_refused_with_advice(tmp_path):
    module = prepared("mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(2, 1, 28, 28),), str(tmp_path / "m.onnx"), dynamo=True, verbose=False)
    assert any(p.name.startswith("m.onnx.") for p in tmp_path.iterdir())  # torch wrote the weights beside it
    with pytest.raises(ModelFileError, match="external file.*external_data=False"):
        from_onnx(tmp_path / "m.onnx")


def test_float64_torch_export(tmp_path):
    module = prepared("lenet5").double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"])
    net = from_onnx(tmp_path / "m.onnx")
    assert net.dtype == np.float64
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(x.numpy()), module(x).numpy(), rtol=1e-10, atol=1e-10)
