"""Benchmark: one MNIST training epoch of two CNNs, layerwise beside PyTorch on the CPU.

Networks (float32, cross-entropy, Adam(1e-3), data already in memory as float32
(n, 1, 28, 28) in [0, 1]):

- ``lenet5``: Conv2D(6, 5, padding=2) → ReLU → MaxPool2D(2) → Conv2D(16, 5) → ReLU →
  MaxPool2D(2) → Flatten → Dense(120) → ReLU → Dense(84) → ReLU → Dense(10)
- ``mnist_convnet`` (Keras' example): Conv2D(32, 3) → ReLU → MaxPool2D(2) →
  Conv2D(64, 3) → ReLU → MaxPool2D(2) → Flatten → Dropout(0.5) → Dense(10)

For each network and batch size, layerwise and PyTorch (``torch.nn.Sequential``,
``torch.optim.Adam``, ``torch.set_num_threads`` = NumPy's BLAS threads) train from the
same initial weights (copied from layerwise's network) over the same shuffled order,
timed side by side and interleaved after one warm-up epoch each; we report the median
and the spread (min–max) of the epoch times, each system's test accuracy after its
epoch (the correctness guard), and the share of the measured float32 matmul rate
(the roofline) each reaches.  An epoch's FLOPs: 2·MACs forward, 4·MACs backward,
except the first layer's input gradient, which nobody computes (2·MACs).

Also: peak resident memory of training the convnet for one epoch, measured in a
fresh child process (its own high-water mark, as ``layerwise bench`` does).

Run: ``python benchmarks/bench_cnn.py --repeats 3 --json benchmarks/results/cnn-epoch.json``;
``--tiny`` is a smoke test (a few hundred images, 1 repeat, numbers meaningless).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import layerwise as lw
import layerwise.data
from layerwise.atomic import atomic_write
from layerwise.layers import _fast
from mnist_harness import _OneLineParser, _positive_int, blas_threads, interleaved, matmul_gflops

LR = 1e-3
SPEED_TARGET = 0.7  # layerwise's epoch ≤ 0.7 × PyTorch's
ACCURACY_POINTS = 1.0  # test accuracy within 1 point of PyTorch's
RSS_TARGET_MB = 1024.0


# -- the two networks, in both frameworks ---------------------------------------------------
def lenet5() -> list[lw.Layer]:
    return [lw.Conv2D(6, 5, padding=2), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(16, 5), lw.ReLU(), lw.MaxPool2D(2),
            lw.Flatten(), lw.Dense(120), lw.ReLU(), lw.Dense(84), lw.ReLU(), lw.Dense(10)]  # fmt: skip


def mnist_convnet() -> list[lw.Layer]:
    return [lw.Conv2D(32, 3), lw.ReLU(), lw.MaxPool2D(2), lw.Conv2D(64, 3), lw.ReLU(), lw.MaxPool2D(2),
            lw.Flatten(), lw.Dropout(0.5), lw.Dense(10)]  # fmt: skip


NETWORKS: dict[str, Callable[[], list[lw.Layer]]] = {"lenet5": lenet5, "mnist_convnet": mnist_convnet}


def layerwise_model(network: str, seed: int) -> lw.Model:
    net = lw.Sequential(NETWORKS[network](), input_shape=(1, 28, 28), seed=seed)
    return lw.Model(net, loss="crossEntropyLogit", optimizer=lw.optim.Adam(LR))


def torch_twin(net: lw.Sequential) -> Any:
    """The same network in PyTorch, layer for layer, with the layerwise network's weights."""
    import torch

    nn = torch.nn
    layers: list[Any] = []
    for layer, shape in zip(net.layers, net.shapes, strict=True):
        if isinstance(layer, lw.Conv2D):
            top, bottom, left, right = layer.pads(shape)
            if top != bottom or left != right:
                raise ValueError(f"{layer!r}: PyTorch's Conv2d pads both sides alike")
            conv = nn.Conv2d(shape[0], layer.filters, layer.kernel_size, stride=layer.stride, padding=(top, left))
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(layer.params["W"].copy()))
                conv.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
            layers.append(conv)
        elif isinstance(layer, lw.Dense):
            linear = nn.Linear(shape[0], layer.units)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
            layers.append(linear)
        elif isinstance(layer, lw.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(layer, lw.MaxPool2D):
            layers.append(nn.MaxPool2d(layer.pool_size, layer.stride))
        elif isinstance(layer, lw.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(layer, lw.Dropout):
            layers.append(nn.Dropout(layer.rate))
        else:
            raise ValueError(f"no PyTorch twin for {layer!r}")
    return nn.Sequential(*layers)


def epoch_flops(net: lw.Sequential, samples: int) -> int:
    """FLOPs of one training epoch: 2·MACs forward, 4·MACs backward, 2·MACs for the first layer's backward."""
    total, first = 0, True
    for layer, shape in zip(net.layers, net.shapes, strict=True):
        if "W" not in layer.params:
            continue
        out = layer.output_shape(shape)
        positions = math.prod(out) // out[0]  # output pixels of a Conv2D, 1 for a Dense layer
        macs = layer.params["W"].size * positions
        total += (2 + (2 if first else 4)) * macs
        first = False
    return total * samples


# -- the two systems: make(seed), epoch(model, batch), predict(model) ---------------------------
class Layerwise:
    name = "layerwise"

    def __init__(self, network: str, data: dict[str, np.ndarray]) -> None:
        self.network, self.x, self.y, self.xt = network, data["x_train"], data["y_train"], data["x_test"]

    def make(self, seed: int) -> lw.Model:
        return layerwise_model(self.network, seed)

    def epoch(self, model: lw.Model, batch: int) -> None:
        model.fit(self.x, self.y, epochs=1, batch_size=batch, verbose=0)

    def predict(self, model: lw.Model) -> np.ndarray:
        return model.predict(self.xt, batch_size=1000)


class Torch:
    name = "pytorch"

    def __init__(self, network: str, data: dict[str, np.ndarray], threads: int) -> None:
        import torch

        self.torch, self.network = torch, network
        torch.set_num_threads(threads)
        self.x, self.y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
        self.xt = torch.from_numpy(data["x_test"])

    def make(self, seed: int) -> Any:
        """Same initial weights as layerwise's model for this seed, and the same order of samples:
        the accuracy guard then compares the two updates, not two initialisations."""
        twin = layerwise_model(self.network, seed)
        net = torch_twin(twin.net)
        order = self.torch.from_numpy(np.random.default_rng(twin.seed).permutation(len(self.x)))  # = Model's shuffle
        return net, self.torch.optim.Adam(net.parameters(), lr=LR), order

    def epoch(self, model: Any, batch: int) -> None:
        net, opt, order = model
        net.train()
        cross_entropy = self.torch.nn.functional.cross_entropy
        for lo in range(0, len(order), batch):
            idx = order[lo : lo + batch]
            opt.zero_grad(set_to_none=True)
            cross_entropy(net(self.x[idx]), self.y[idx]).backward()
            opt.step()

    def predict(self, model: Any) -> np.ndarray:
        net = model[0]
        net.eval()
        with self.torch.no_grad():
            chunks = [net(self.xt[lo : lo + 1000]).argmax(dim=1).numpy() for lo in range(0, len(self.xt), 1000)]
        return np.concatenate(chunks)


def load_data(limit: int | None, test_limit: int | None) -> dict[str, np.ndarray]:
    (x, y), (xt, yt) = lw.data.load("mnist")
    x, y, xt, yt = x[:limit], y[:limit], xt[:test_limit], yt[:test_limit]
    return {
        "x_train": lw.data.scale(x).reshape(len(x), 1, 28, 28),
        "y_train": y.astype(np.int64),
        "x_test": lw.data.scale(xt).reshape(len(xt), 1, 28, 28),
        "y_test": yt.astype(np.int64),
    }


# -- peak memory, in a child process ---------------------------------------------------------
def peak_rss_of_training(network: str, batch: int, limit: int | None) -> float:
    """Peak resident memory (MB) of a fresh process that loads MNIST and trains ``network`` for one epoch."""
    cmd = [sys.executable, __file__, "--rss-child", network, "--batch-sizes", str(batch)]
    if limit:
        cmd += ["--limit", str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"training {network} in a child process failed: {proc.stderr.strip()}")
    return float(proc.stdout.split()[-1])


def rss_child(network: str, batch: int, limit: int | None) -> int:
    data = load_data(limit, 1)
    layerwise_model(network, 0).fit(data["x_train"], data["y_train"], epochs=1, batch_size=batch, verbose=0)
    # The process's own high-water mark (ru_maxrss of the parent's children would include
    # the parent, whose memory a vfork'ed child borrows for a moment before exec).
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(kb / 1024)
    return 0


# -- the run -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:  # every pool alike: BLAS (NumPy and PyTorch's), layerwise's kernels, PyTorch's intra-op
        from threadpoolctl import threadpool_limits

        _fast.THREADS = args.threads
        with threadpool_limits(args.threads, user_api="blas"):
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(args.limit, args.test_limit)
    threads = blas_threads()
    n = len(data["x_train"])
    peak = matmul_gflops(1024 if args.tiny else 2048)
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "blas_threads": threads,
            "numpy": np.__version__,
            "torch": __import__("torch").__version__,
            "layerwise_kernels": "numba" if lw.kernels.numba_enabled() else "numpy",
            "layerwise_kernel_threads": _fast.threads(),
            "load_average_at_start": os.getloadavg(),  # other work on the machine skews every timing
        },
        "matmul_gflops": peak,
        "samples": n,
        "test_samples": len(data["x_test"]),
        "repeats": args.repeats,
        "networks": {},
    }
    for network in args.networks:
        flops = epoch_flops(layerwise_model(network, 0).net, n)
        systems = [Layerwise(network, data), Torch(network, data, threads)]
        entry: dict[str, Any] = {"flops_per_epoch": flops, "batches": {}}
        for batch in args.batch_sizes:
            result: dict[str, Any] = interleaved(
                systems, lambda s, m, b=batch: s.epoch(m, b), data["y_test"], args.repeats, flops, peak
            )
            result["ratio_vs_pytorch"] = result["layerwise"]["median_s"] / result["pytorch"]["median_s"]
            gap = result["layerwise"]["test_accuracy"] - result["pytorch"]["test_accuracy"]
            result["accuracy_gap_points"] = 100 * gap
            result["meets_target"] = (
                result["ratio_vs_pytorch"] <= SPEED_TARGET and abs(result["accuracy_gap_points"]) <= ACCURACY_POINTS
            )
            entry["batches"][str(batch)] = result
            print_case(network, batch, result, flops)
        results["networks"][network] = entry
    if not args.skip_rss:
        batch = max(args.batch_sizes)
        mb = peak_rss_of_training("mnist_convnet", batch, args.limit)
        results["convnet_train_peak_rss"] = {"batch_size": batch, "mb": mb, "meets_target": mb <= RSS_TARGET_MB}
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["targets"] = {"speed_ratio": SPEED_TARGET, "accuracy_points": ACCURACY_POINTS, "rss_mb": RSS_TARGET_MB}
    print_summary(results)
    return results


def print_case(network: str, batch: int, r: dict[str, Any], flops: int) -> None:
    print(f"\n{network}, batch {batch} ({flops / 1e9:.0f} GFLOP per epoch):")
    print("  system       median s  (min–max)          test acc  roofline")
    for name in ("layerwise", "pytorch"):
        s = r[name]
        print(
            f"  {name:<11} {s['median_s']:8.2f}  ({s['min_s']:.2f}–{s['max_s']:.2f})"
            f"    {s['test_accuracy']:.4f}    {100 * s['roofline_fraction']:5.1f}%"
        )
    verdict = "meets" if r["meets_target"] else "MISSES"
    print(
        f"  layerwise/pytorch: {r['ratio_vs_pytorch']:.2f}×, accuracy gap {r['accuracy_gap_points']:+.2f} points"
        f" ({verdict} the target ≤ {SPEED_TARGET}×, ±{ACCURACY_POINTS} point)"
    )


def print_summary(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"\nfloat32 matmul roofline: {results['matmul_gflops']:.1f} GFLOP/s ({m['blas_threads']} BLAS threads, "
        f"kernels: {m['layerwise_kernels']}, torch {m['torch']})"
    )
    if "convnet_train_peak_rss" in results:
        rss = results["convnet_train_peak_rss"]
        print(f"peak RSS of training mnist_convnet for an epoch (batch {rss['batch_size']}): {rss['mb']:.0f} MB")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="layerwise bench cnn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128], metavar="B")
    parser.add_argument("--repeats", type=_positive_int, default=3, help="timed epochs per system and case (default 3)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--test-limit", type=int, default=None, help="test on the first N images only")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for every system (default: NumPy's BLAS thread count)"
    )
    parser.add_argument("--tiny", action="store_true", help="smoke test: 256 images, 1 repeat (numbers meaningless)")
    parser.add_argument("--skip-rss", action="store_true", help="skip the peak-memory child process")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every figure to PATH")
    parser.add_argument("--rss-child", choices=list(NETWORKS), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rss_child:
        return rss_child(args.rss_child, args.batch_sizes[0], args.limit)
    if args.tiny:
        args.limit, args.test_limit, args.repeats = args.limit or 256, args.test_limit or 500, 1
    results = run(args)
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(results, indent=2).encode())
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
