"""The benchmark runs end to end in its tiny mode, so it cannot rot (its numbers are not checked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(os.environ.get("LAYERWISE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def test_bench_tiny_writes_every_figure(tmp_path):
    if not (DATA / "mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"MNIST not found under {DATA}")
        pytest.skip("MNIST not available")
    out = tmp_path / "bench.json"
    env = {**os.environ, "LAYERWISE_DATA": str(DATA)}
    proc = subprocess.run(
        [sys.executable, "-m", "layerwise", "bench", "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    entry = results["batches"]["32"]
    for system in ("layerwise", "pytorch", "sklearn"):
        assert entry[system]["median_s"] > 0
        assert 0.0 <= entry[system]["test_accuracy"] <= 1.0
        assert results["inference_s"][system] > 0
    assert entry["ratio_vs_pytorch"] > 0 and entry["ratio_vs_sklearn"] > 0
    assert results["matmul_gflops"] > 0
    assert 0 < results["train_peak_rss_mb"] < 24 * 1024
    assert "layerwise time / peer time" in proc.stdout
