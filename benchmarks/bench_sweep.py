"""A 4-trial sweep on Dask against the same 4 trainings run one after another, wall-clock, side by side.

python benchmarks/bench_sweep.py [--epochs 5] [--workers 2] [--json PATH]

Both sides are what a user types, timed from outside as subprocesses: four
``layerwise train`` commands one after another (NumPy's default BLAS threads), and
one ``layerwise sweep SPEC --workers N`` over the same four configurations (each
worker process single-threaded).  The network is the homework's 784-140-10 ReLU net
on all of MNIST; the trials differ in the learning rate.  Needs ``layerwise[sweep]``
and the MNIST files (``$LAYERWISE_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRS = (5e-4, 1e-3, 2e-3, 3e-3)
ARCH = "[(140,ReLU),(10,Linear)]"


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_sweep: {' '.join(command)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "layerwise"]
    with tempfile.TemporaryDirectory() as tmp:
        serial = [
            timed(
                [
                    *cli,
                    "train",
                    "--arch",
                    ARCH,
                    "--lr",
                    str(lr),
                    "--epochs",
                    str(args.epochs),
                    "--out",
                    f"{tmp}/serial-{lr}",
                    "--quiet",
                ]
            )  # fmt: skip
            for lr in LRS
        ]
        spec = Path(tmp) / "sweep.toml"
        spec.write_text(
            f'[train]\narch = "{ARCH}"\nepochs = {args.epochs}\n[grid]\nlr = [{", ".join(map(str, LRS))}]\n'
        )
        sweep = timed([*cli, "sweep", str(spec), "--out", f"{tmp}/sweep", "--workers", str(args.workers)])
        rows = json.loads((Path(tmp) / "sweep" / "results.json").read_text())
        serial_training = [
            json.loads((Path(tmp) / f"serial-{lr}" / "metrics.json").read_text())["seconds"] for lr in LRS
        ]
    result = {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "epochs": args.epochs,
        "workers": args.workers,
        "serial_seconds": serial,
        "serial_total_s": sum(serial),
        "sweep_s": sweep,
        "serial_training_s": serial_training,
        "sweep_training_s": [r["seconds"] for r in rows],
        "ratio": sweep / sum(serial),
        "statuses": [r["status"] for r in rows],
    }
    print(f"4 x layerwise train one after another: {sum(serial):.1f} s ({', '.join(f'{s:.1f}' for s in serial)})")
    print(f"layerwise sweep --workers {args.workers}:        {sweep:.1f} s")
    print(f"training time per trial (metrics.json): serial {sum(serial_training) / 4:.1f} s, "
          f"sweep {sum(r['seconds'] for r in rows) / len(rows):.1f} s")  # fmt: skip
    print(f"sweep / serial: {result['ratio']:.3f}x   (load average {result['load_average'][0]:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
