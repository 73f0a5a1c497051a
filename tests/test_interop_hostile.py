"""Hostile ONNX and safetensors files in a fresh process: a ``ModelFileError`` and a peak under 100 MB.

The files of ``test_interop_hostile_files`` (truncated, lying sizes, external data,
unknown operators, cycles, enormous declared tensors, bombs, pickles) and
Hypothesis-mutated valid files are loaded in a separate Python process that reports
its peak resident memory (``resource.getrusage``): every load must raise
``ModelFileError`` (or, for a mutated file that is still valid, give a usable
network), and the process must stay under 100 MB in all, interpreter and NumPy
included.  Numba (which layerwise's optimizers use when installed, ~60 MB) is kept out
of that process; nothing here needs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_interop_hostile_files import NEEDLES, hostile_onnx, hostile_safetensors, valid_files

LIMIT_MB = 100


# -- the measuring process ------------------------------------------------------------------------
DRIVER = r"""
import json, os, resource, sys
sys.modules["numba"] = None  # only layerwise's optimizers use it; keep its ~60 MB out of the measurement
import numpy as np
import layerwise as lw
from layerwise.errors import LayerwiseError, ModelFileError
from layerwise.interop import from_onnx, load_safetensors, read_safetensors

job = json.load(open(sys.argv[1]))
target = lw.Sequential([lw.Dense(4), lw.ReLU(), lw.Dense(3)], input_shape=(5,), seed=0)


def load_onnx(path):
    net = from_onnx(path)
    assert np.isfinite(net.flat_params).all()
    if net.input_shape and np.prod(net.input_shape) <= 10**5:
        assert net.forward(np.zeros((2, *net.input_shape), np.uint8)).shape[0] == 2
    return "network"


def load_st(path):
    read_safetensors(path)
    load_safetensors(target, path)
    return "weights"


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def attempt(fn, path):
    try:
        return {"outcome": "loaded", "what": fn(path), "peak_mb": peak()}
    except ModelFileError as e:
        return {"outcome": "refused", "message": str(e), "named": path in str(e), "peak_mb": peak()}
    except Exception as e:  # anything else is a failure of the test
        return {"outcome": "crashed", "message": f"{type(e).__name__}: {e}"[:800]}


results = {"onnx": {name: attempt(load_onnx, path) for name, path in job["onnx"].items()},
           "safetensors": {name: attempt(load_st, path) for name, path in job["safetensors"].items()}}
mutated = {"onnx": 0, "safetensors": 0}
if job.get("mutate"):
    from hypothesis import HealthCheck, given, settings, strategies as st

    folder = job["mutate"]["folder"]
    ops = st.lists(
        st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "big"]),
                  st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)

    def apply(data, ops):
        buf = bytearray(data)
        for op, i, value in ops:
            i = i % max(1, len(buf))
            if op == "flip" and buf:
                buf[i] ^= 1 << (value % 8)
            elif op == "set" and buf:
                buf[i] = value
            elif op == "truncate":
                del buf[i:]
            elif op == "insert":
                buf[i:i] = bytes([value]) * (1 + value % 5)
            elif op == "delete":
                del buf[i : i + 1 + value % 8]
            elif op == "big":  # a huge varint or length where a byte was
                buf[i:i + 1] = b"\xff\xff\xff\xff\x0f"
        return bytes(buf)

    for kind, fn in (("onnx", load_onnx), ("safetensors", load_st)):
        base = open(job["mutate"][kind], "rb").read()

        @settings(max_examples=job["mutate"]["examples"], deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(ops=ops)
        def check(ops):
            path = os.path.join(folder, "mutated." + kind)
            with open(path, "wb") as f:
                f.write(apply(base, ops))
            result = attempt(fn, path)
            assert result["outcome"] != "crashed", result["message"]
            assert result["outcome"] == "loaded" or result["named"], result["message"]
            mutated[kind] += 1

        check()
print(json.dumps({"results": results, "mutated": mutated,
                  "peak_mb": peak()}))
"""


def measure(tmp_path: Path, onnx_files: dict[str, bytes], st_files: dict[str, bytes], mutate=None) -> dict:
    paths: dict[str, dict[str, str]] = {"onnx": {}, "safetensors": {}}
    for kind, files in (("onnx", onnx_files), ("safetensors", st_files)):
        for name, data in files.items():
            path = tmp_path / f"{name}.{kind}"
            path.write_bytes(data)
            paths[kind][name] = str(path)
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "job.json").write_text(json.dumps({**paths, "mutate": mutate}))
    # Through sh, which forks the measured process: a process exec'ed straight from pytest would
    # inherit pytest's peak (Linux keeps ru_maxrss across execve), a child forked by a small sh does not.
    command = ["/bin/sh", "-c", '"$0" "$1" "$2"; exit $?', sys.executable, "driver.py", "job.json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[bytes, bytes]:
    return valid_files(tmp_path_factory.mktemp("valid"))


def test_hostile_files_are_refused_in_bounded_memory(tmp_path, valid):
    valid_onnx, valid_safetensors = valid
    onnx_files = hostile_onnx(tmp_path, valid_onnx)
    st_files = hostile_safetensors(valid_safetensors)
    report = measure(tmp_path, onnx_files, st_files)
    problems = [
        f"{kind} {name}: {r}"
        for kind, results in report["results"].items()
        for name, r in results.items()
        if r["outcome"] != "refused" or not r["named"]
    ]
    problems += [
        f"{kind} {name}: {needle!r} not in {report['results'][kind][name]['message']!r}"
        for kind, needles in NEEDLES.items()
        for name, needle in needles.items()
        if needle not in report["results"][kind][name].get("message", "")
    ]
    assert not problems, "\n".join(problems)
    assert not (tmp_path / "PWNED").exists()  # the pickle was never unpickled
    peaks = [(kind, name, r["peak_mb"]) for kind, res in report["results"].items() for name, r in res.items()]
    rises = [p for p, before in zip(peaks, [(None, None, 0.0), *peaks], strict=False) if p[2] > before[2] + 2]
    assert report["peak_mb"] < LIMIT_MB, f"peak {report['peak_mb']:.0f} MB; it rose at {rises}"


def test_mutated_files_are_refused_or_load_in_bounded_memory(tmp_path, valid):
    valid_onnx, valid_safetensors = valid
    (tmp_path / "cnn.onnx").write_bytes(valid_onnx)
    (tmp_path / "w.safetensors").write_bytes(valid_safetensors)
    mutate = {"onnx": str(tmp_path / "cnn.onnx"), "safetensors": str(tmp_path / "w.safetensors"),
              "folder": str(tmp_path), "examples": 300}  # fmt: skip
    report = measure(tmp_path, {"valid": valid_onnx}, {"valid": valid_safetensors}, mutate)
    assert report["results"]["onnx"]["valid"]["outcome"] == "loaded"
    assert report["results"]["safetensors"]["valid"]["outcome"] == "loaded"
    assert report["mutated"] == {"onnx": 300, "safetensors": 300}
    assert report["peak_mb"] < LIMIT_MB, report["peak_mb"]
