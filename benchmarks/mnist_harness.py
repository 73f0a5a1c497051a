"""Benchmark: one MNIST training epoch of 784-140(ReLU)-10 with cross-entropy and Adam(1e-3).

Systems, timed side by side in one process and interleaved (so that a busy
machine slows all of them alike): layerwise, PyTorch on the CPU
(``torch.nn.Sequential`` + ``torch.optim.Adam``, same thread count, float32 data
already in memory) and scikit-learn's ``MLPClassifier`` (adam, ``max_iter=1``).
Each system trains a freshly initialised network for one epoch per repeat, after
one warm-up epoch; we report the median and the spread (min–max) and each
system's test accuracy after its epoch, the correctness guard.

Also: the machine's float32 matrix-product rate (a large ``a @ b``) and the
fraction of it each system reaches (an epoch costs 6·P FLOPs per sample: 2·P
forward, 4·P backward, P = 111,160 weights), inference time on the 10,000 test
images, and peak resident memory of a full ``layerwise train`` run.

Run: ``python benchmarks/bench_mnist.py`` or ``layerwise bench`` (``--help`` for options). It lives
outside the installed package: only the benchmarks use it.
PyTorch and scikit-learn come with the ``bench`` extra; the library never imports them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import layerwise as lw
import layerwise.data
from layerwise.atomic import atomic_write

HIDDEN, CLASSES, LR = 140, 10, 1e-3


def blas_threads() -> int:
    """Threads NumPy's BLAS uses (PyTorch gets the same number)."""
    try:
        from threadpoolctl import threadpool_info

        return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)
    except ImportError:
        return os.cpu_count() or 1


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an (n, n) @ (n, n) product: the roofline."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def interleaved(
    systems: list[Any], epoch: Callable[[Any, Any], None], y_test: np.ndarray, repeats: int, flops: float, peak: float
) -> dict[str, dict[str, Any]]:
    """Time ``epoch(system, fresh model)`` for every system, interleaved, after one warm-up epoch each.

    Returns per system: median/min/max seconds, every time, the median test accuracy and every one,
    and the share of the float32 matmul rate ``peak`` (GFLOP/s) that ``flops`` per epoch reach.
    """
    times: dict[str, list[float]] = {s.name: [] for s in systems}
    accuracy: dict[str, list[float]] = {s.name: [] for s in systems}
    for system in systems:  # warm-up: imports, JIT, caches, thread pools
        epoch(system, system.make(0))
    for rep in range(repeats):
        for system in systems:
            model = system.make(rep)
            times[system.name].append(_timed(lambda s=system, m=model: epoch(s, m)))
            accuracy[system.name].append(float(np.mean(system.predict(model) == y_test)))
    result: dict[str, dict[str, Any]] = {}
    for system in systems:
        t = times[system.name]
        result[system.name] = {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "max_s": max(t),
            "times_s": t,
            "test_accuracy": statistics.median(accuracy[system.name]),
            "test_accuracies": accuracy[system.name],
            "roofline_fraction": flops / statistics.median(t) / (peak * 1e9),
        }
    return result


def _timed(fn: Callable[[], Any]) -> float:
    # Let the previous system's worker threads go idle and its garbage be collected
    # first, so that no system pays for the one timed before it.
    gc.collect()
    time.sleep(0.2)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def layerwise_model(seed: int) -> lw.Model:
    """784-140(ReLU)-10 on raw uint8 pixels (scaled by 1/255 inside the network), Adam(1e-3)."""
    net = lw.NeuralNetwork(784, [(HIDDEN, "ReLU"), (CLASSES, "Linear")], seed=seed, input_scale=1 / 255)
    return lw.Model(net, loss="crossEntropyLogit", optimizer=lw.optim.Adam(LR))


# -- the three systems: each has make(seed), epoch(model, batch), accuracy(model) ----------
class Layerwise:
    name = "layerwise"

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        self.x, self.y = data["x_train_u8"], data["y_train"]
        self.xt, self.yt = data["x_test_u8"], data["y_test"]

    def make(self, seed: int) -> lw.Model:
        return layerwise_model(seed)

    def epoch(self, model: lw.Model, batch: int, limit: int | None) -> None:
        n = limit or len(self.x)
        model.fit(self.x[:n], self.y[:n], epochs=1, batch_size=batch, verbose=0)

    def predict(self, model: lw.Model) -> np.ndarray:
        return model.predict(self.xt)


class Torch:
    name = "pytorch"

    def __init__(self, data: dict[str, np.ndarray], threads: int) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        self.x = torch.from_numpy(data["x_train"])
        self.y = torch.from_numpy(data["y_train"])
        self.xt = torch.from_numpy(data["x_test"])

    def make(self, seed: int) -> Any:
        """The same initial weights as layerwise's network for this seed: the accuracy guard
        then compares the two updates, not two initialisations."""
        torch = self.torch
        torch.manual_seed(seed)  # the shuffle
        net = torch.nn.Sequential(torch.nn.Linear(784, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))
        twin = layerwise_model(seed).net
        with torch.no_grad():
            for linear, dense in zip(
                (net[0], net[2]), [lay for lay in twin.layers if isinstance(lay, lw.Dense)], strict=True
            ):
                linear.weight.copy_(torch.from_numpy(dense.W.T.copy()))
                linear.bias.copy_(torch.from_numpy(dense.b.copy()))
        return net, torch.optim.Adam(net.parameters(), lr=LR)

    def epoch(self, model: Any, batch: int, limit: int | None) -> None:
        torch = self.torch
        net, opt = model
        n = limit or len(self.x)
        order = torch.randperm(n)
        for lo in range(0, n, batch):
            idx = order[lo : lo + batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(self.x[idx]), self.y[idx])
            loss.backward()
            opt.step()

    def predict(self, model: Any) -> np.ndarray:
        with self.torch.no_grad():
            return model[0](self.xt).argmax(dim=1).numpy()


class Sklearn:
    name = "sklearn"

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        self.x, self.y, self.xt = data["x_train"], data["y_train"], data["x_test"]

    def make(self, seed: int) -> Any:
        from sklearn.neural_network import MLPClassifier

        return lambda batch: MLPClassifier(
            hidden_layer_sizes=(HIDDEN,),
            solver="adam",
            learning_rate_init=LR,
            batch_size=batch,
            max_iter=1,
            random_state=seed,
        )

    def epoch(self, model: Any, batch: int, limit: int | None) -> None:
        from sklearn.exceptions import ConvergenceWarning

        n = limit or len(self.x)
        self.fitted = model(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.fitted.fit(self.x[:n], self.y[:n])

    def predict(self, model: Any) -> np.ndarray:
        return self.fitted.predict(self.xt)


def load_data(limit: int | None) -> dict[str, np.ndarray]:
    (x_train, y_train), (x_test, y_test) = lw.data.load("mnist")
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    return {
        "x_train_u8": x_train,
        "x_test_u8": x_test,
        "x_train": lw.data.scale(x_train),
        "x_test": lw.data.scale(x_test),
        "y_train": y_train.astype(np.int64),
        "y_test": y_test.astype(np.int64),
    }


# The child reports its own high-water mark: ru_maxrss of children would include the
# parent's memory, which a vfork'ed child borrows for a moment before exec.
_REPORT_PEAK_RSS = """
import sys
from layerwise.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")), file=sys.stderr)
sys.exit(code)
"""


def peak_rss_of_train(epochs: int, limit: int | None) -> float:
    """Peak resident memory (MB) of ``layerwise train`` (784-140-10, batch 32) in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", _REPORT_PEAK_RSS, "train", "--dataset", "mnist",
               "--arch", "[(140,ReLU),(10,Linear)]", "--epochs", str(epochs), "--batch-size", "32",
               "--out", out, "--quiet"]  # fmt: skip
        if limit:
            cmd += ["--limit", str(limit)]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"layerwise train failed: {proc.stderr.strip()}")
    return int(proc.stderr.split()[-1]) / 1024  # /proc reports kB


def run(args: argparse.Namespace) -> dict[str, Any]:
    limit = args.limit
    data = load_data(limit)
    threads = blas_threads()
    systems: list[Any] = [Layerwise(data)]
    if not args.only_layerwise:
        try:
            import sklearn  # noqa: F401
            import torch  # noqa: F401
        except ImportError as e:
            raise lw.errors.ConfigError(
                f"bench: {e.name} is not installed; `pip install layerwise[bench]`, or pass --only-layerwise"
            ) from None
        systems += [Torch(data, threads), Sklearn(data)]
    n = limit or len(data["x_train"])
    flops_per_epoch = 6 * (784 * HIDDEN + HIDDEN * CLASSES) * n
    peak = matmul_gflops(1024 if args.tiny else 2048)
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "blas_threads": threads,
            "numpy": np.__version__,
            "layerwise_kernels": "numba" if lw.kernels.numba_enabled() else "numpy",
        },
        "matmul_gflops": peak,
        "samples": n,
        "repeats": args.repeats,
        "batches": {},
    }
    for batch in args.batch_sizes:
        entry: dict[str, Any] = interleaved(
            systems, lambda s, m, b=batch: s.epoch(m, b, limit), data["y_test"], args.repeats, flops_per_epoch, peak
        )
        for peer in ("pytorch", "sklearn"):
            if peer in entry:
                entry[f"ratio_vs_{peer}"] = entry["layerwise"]["median_s"] / entry[peer]["median_s"]
        results["batches"][str(batch)] = entry
        print_batch(batch, entry)
    results["inference_s"] = {}
    for system in systems:
        model = system.make(0)
        system.epoch(model, 512, limit)
        results["inference_s"][system.name] = statistics.median(
            _timed(lambda s=system, m=model: s.predict(m)) for _ in range(5)
        )
    if not args.skip_rss:
        results["train_peak_rss_mb"] = peak_rss_of_train(1 if args.tiny else 10, limit)
    print_summary(results)
    return results


def print_batch(batch: int, entry: dict[str, Any]) -> None:
    print(f"\nbatch {batch}:  system      median s  (min–max)          test acc  roofline")
    for name, r in entry.items():
        if isinstance(r, dict):
            print(
                f"  {name:<20} {r['median_s']:8.3f}  ({r['min_s']:.3f}–{r['max_s']:.3f})"
                f"    {r['test_accuracy']:.4f}    {100 * r['roofline_fraction']:5.1f}%"
            )
    ratios = ", ".join(f"{k.removeprefix('ratio_')}: {v:.2f}×" for k, v in entry.items() if k.startswith("ratio"))
    if ratios:
        print(f"  layerwise time / peer time: {ratios}")


def print_summary(results: dict[str, Any]) -> None:
    print(
        f"\nfloat32 matmul roofline: {results['matmul_gflops']:.1f} GFLOP/s "
        f"({results['machine']['blas_threads']} BLAS threads, "
        f"kernels: {results['machine']['layerwise_kernels']})"
    )
    print(
        "inference on the 10,000 test images: "
        + ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in results["inference_s"].items())
    )
    if "train_peak_rss_mb" in results:
        print(f"peak RSS of `layerwise train`: {results['train_peak_rss_mb']:.0f} MB")


class _OneLineParser(argparse.ArgumentParser):
    """Errors as one line, as the rest of the command line reports them."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"layerwise: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (0 repeats would time nothing and report medians of nothing)."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or _OneLineParser(prog="layerwise bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512], metavar="B")
    parser.add_argument(
        "--repeats", type=_positive_int, default=5, help="timed epochs per system and batch size (default 5)"
    )
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke mode for CI: 640 images, 1 repeat, batch 32 (numbers meaningless)",
    )
    parser.add_argument("--only-layerwise", action="store_true", help="skip PyTorch and scikit-learn")
    parser.add_argument("--skip-rss", action="store_true", help="skip the `layerwise train` memory run")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every figure to PATH")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_with(args)


def run_with(args: argparse.Namespace) -> int:
    if args.tiny:
        args.limit, args.repeats, args.batch_sizes = args.limit or 640, 1, [32]
    results = run(args)
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(results, indent=2).encode())
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
