"""The CNN benchmark runs end to end in its tiny mode and writes every figure (its numbers are not checked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LAYERWISE_DATA", ROOT.parent / "shared" / "data"))


def test_bench_cnn_tiny_writes_every_figure(tmp_path):
    pytest.importorskip("torch")
    if not (DATA / "mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"MNIST not found under {DATA}")
        pytest.skip("MNIST not available")
    out = tmp_path / "cnn.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_cnn.py"), "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        # One thread each: two-thread runs crawl when other jobs share the cores, and a smoke test needs no speed.
        env={**os.environ, "LAYERWISE_DATA": str(DATA), "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["matmul_gflops"] > 0 and results["machine"]["blas_threads"] >= 1
    assert set(results["networks"]) == {"lenet5", "mnist_convnet"}
    for network in results["networks"].values():
        assert network["flops_per_epoch"] > 0
        assert set(network["batches"]) == {"64", "128"}
        for case in network["batches"].values():
            for system in ("layerwise", "pytorch"):
                r = case[system]
                assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
                assert len(r["times_s"]) == results["repeats"] == 1
                assert 0.0 <= r["test_accuracy"] <= 1.0
                assert r["roofline_fraction"] > 0
            assert case["ratio_vs_pytorch"] > 0
            assert abs(case["accuracy_gap_points"]) <= 100
            assert isinstance(case["meets_target"], bool)
    rss = results["convnet_train_peak_rss"]
    assert 0 < rss["mb"] < 24 * 1024 and rss["batch_size"] == 128
    assert "layerwise/pytorch" in proc.stdout
