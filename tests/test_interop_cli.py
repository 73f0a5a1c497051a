"""``layerwise export`` / ``layerwise import``, and ``summary`` / ``evaluate`` / ``predict`` reading an .onnx file.

The commands run in-process through ``layerwise.cli.main``; what they write is
checked with ONNX Runtime, the reference safetensors package and ``layerwise.load``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.arch import build_network
from layerwise.cli import main
from layerwise.data import idx

try:
    import onnxruntime as ort
    import safetensors.numpy as stn
except ImportError:  # pragma: no cover - exercised only where they are missing
    if os.environ.get("CI"):
        raise
    pytest.skip("onnxruntime/safetensors are not installed (set CI=1 to make this an error)", allow_module_level=True)


@pytest.fixture
def saved(tmp_path) -> tuple[Path, lw.Model]:
    model = lw.Model(build_network("[conv(4,3),relu,maxpool(2),(16,ReLU),(10,Linear)]", (1, 28, 28), seed=0))
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 256, (64, 1, 28, 28)).astype(np.uint8), rng.integers(0, 10, 64), verbose=0)
    model.train_config.update(dataset="mnist", arch="[conv(4,3),relu,maxpool(2),(16,ReLU),(10,Linear)]")
    model.save(tmp_path / "model.npz")
    return tmp_path / "model.npz", model


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_onnx_then_run_it_in_onnx_runtime(tmp_path, saved, capsys):
    path, model = saved
    code, out, err = cli(capsys, "export", str(path), str(tmp_path / "m.onnx"))
    assert code == 0, err
    assert "ONNX opset 17, input 'input' uint8 (batch, 1, 28, 28) -> output 'output' float32 (batch, 10)" in out
    x = np.random.default_rng(1).integers(0, 256, (5, 1, 28, 28)).astype(np.uint8)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict_logits(x), rtol=1e-5, atol=1e-5)


def test_export_safetensors_with_either_names(tmp_path, saved, capsys):
    path, model = saved
    assert cli(capsys, "export", str(path), str(tmp_path / "w.safetensors"))[0] == 0
    assert set(stn.load_file(str(tmp_path / "w.safetensors"))) == set(model.net.state_dict())
    code, out, _ = cli(capsys, "export", str(path), str(tmp_path / "t.bin"), "--format", "safetensors", "--torch-names")
    assert code == 0 and "PyTorch state_dict names" in out
    assert "1.weight" in stn.load_file(str(tmp_path / "t.bin"))


def test_import_onnx_to_npz_and_the_other_commands_read_onnx(tmp_path, saved, capsys):
    path, model = saved
    cli(capsys, "export", str(path), str(tmp_path / "m.onnx"))
    code, out, err = cli(capsys, "import", str(tmp_path / "m.onnx"), str(tmp_path / "back.npz"))
    assert code == 0, err
    assert "Wrote" in out and "Conv2D" in out
    back = lw.load(tmp_path / "back.npz")
    x = np.random.default_rng(2).integers(0, 256, (7, 1, 28, 28)).astype(np.uint8)
    assert np.array_equal(back.predict_logits(x), model.predict_logits(x))
    assert back.train_config["dataset"] == "mnist"

    code, from_npz, _ = cli(capsys, "summary", str(path))
    code2, from_onnx, _ = cli(capsys, "summary", str(tmp_path / "m.onnx"))
    assert code == code2 == 0
    table = lambda text: text.split("Loss:")[0]  # noqa: E731 (the layers, shapes and counts)
    assert table(from_onnx) == table(from_npz)

    idx.write_idx(tmp_path / "digits.idx", x[:, 0])
    code, npz_lines, _ = cli(capsys, "predict", str(path), str(tmp_path / "digits.idx"))
    code2, onnx_lines, _ = cli(capsys, "predict", str(tmp_path / "m.onnx"), str(tmp_path / "digits.idx"))
    assert code == code2 == 0 and onnx_lines == npz_lines and len(onnx_lines.splitlines()) == 7


def test_evaluate_reads_onnx(tmp_path, saved, capsys, monkeypatch):
    from layerwise.data import load
    from layerwise.errors import DatasetNotFoundError

    data = os.environ.get("LAYERWISE_DATA") or str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    monkeypatch.setenv("LAYERWISE_DATA", data)
    try:
        load("mnist")
    except DatasetNotFoundError:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip("MNIST is not available")
    path, _ = saved
    cli(capsys, "export", str(path), str(tmp_path / "m.onnx"))
    code, npz_out, err = cli(capsys, "evaluate", str(path))
    code2, onnx_out, err2 = cli(capsys, "evaluate", str(tmp_path / "m.onnx"))
    assert code == code2 == 0, err + err2
    assert onnx_out.splitlines()[1:] == npz_out.splitlines()[1:]  # loss, accuracy, per-class table
    assert "on mnist test (10,000 samples)" in onnx_out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["export", "{model}", "{tmp}/out.xyz"], "cannot tell the format"),
        (["export", "{model}", "{tmp}/w.safetensors", "--opset", "13"], "ONNX files only"),
        (["export", "{model}", "{tmp}/m.onnx", "--torch-names"], "safetensors files only"),
        (["export", "{model}", "{tmp}/m.onnx", "--opset", "3"], "opset"),
        (["import", "{tmp}/bad.onnx", "{tmp}/x.npz"], "bad.onnx: not a valid ONNX file"),
        (["summary", "{tmp}/bad.onnx"], "bad.onnx"),
    ],
)
def test_user_errors_exit_2_in_one_line(tmp_path, saved, capsys, args, needle):
    path, _ = saved
    (tmp_path / "bad.onnx").write_bytes(b"\x0b\x00garbage")
    code, _, err = cli(capsys, *(a.format(model=path, tmp=tmp_path) for a in args))
    assert code == 2
    assert err.startswith("layerwise: error:") and needle in err and len(err.strip().splitlines()) == 1
