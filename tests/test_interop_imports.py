"""The core imports only NumPy: ``layerwise`` and ``layerwise.interop`` never import onnx, torch or protobuf.

``from_onnx`` and the safetensors functions work in a process where onnx, onnxruntime,
protobuf, safetensors and torch cannot be imported at all; ``to_onnx`` and the torch
bridge then say which extra to install.  Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

import layerwise as lw

OPTIONAL = ["onnx", "onnxruntime", "onnxscript", "google.protobuf", "safetensors", "torch"]


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_layerwise_and_interop_loads_no_optional_package():
    found = run(
        f"""
        import json, sys
        import layerwise, layerwise.interop
        from layerwise.interop import from_onnx, to_onnx, to_torch, save_safetensors
        print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))
        """
    )
    assert found == []


def test_onnx_import_and_safetensors_work_without_the_optional_packages(tmp_path):
    from layerwise.interop import to_onnx

    net = lw.Sequential(
        [lw.Rescale(1 / 255), lw.Conv2D(2, 3), lw.BatchNorm(), lw.ReLU(), lw.Flatten(), lw.Dense(3)],
        input_shape=(1, 5, 5),
        seed=0,
    )
    to_onnx(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 5, 5)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", net.forward(x))
    result = run(
        f"""
        import json, sys
        for name in {OPTIONAL!r}:
            sys.modules[name] = None  # any import of them fails
        import numpy as np
        from layerwise.interop import MissingDependencyError, from_onnx, load_safetensors, save_safetensors
        from layerwise.interop import to_onnx, to_torch
        folder = {str(tmp_path)!r}
        net = from_onnx(folder + "/m.onnx")
        x, y = np.load(folder + "/x.npy"), np.load(folder + "/y.npy")
        same = bool(np.array_equal(net.forward(x), y))
        save_safetensors(net, folder + "/w.safetensors")
        load_safetensors(net, folder + "/w.safetensors")
        messages = []
        for fn in (lambda: to_onnx(net, folder + "/again.onnx"), lambda: to_torch(net)):
            try:
                fn()
            except MissingDependencyError as e:
                messages.append(str(e))
        print(json.dumps({{"same": same, "messages": messages}}))
        """
    )
    assert result["same"]
    onnx_message, torch_message = result["messages"]
    assert "pip install 'layerwise[onnx]'" in onnx_message
    assert "pip install 'layerwise[torch]'" in torch_message
