"""Run the MNIST training benchmark (see ``mnist_harness.py`` for what it measures).

python benchmarks/bench_mnist.py --json bench.json      (or: layerwise bench --json bench.json)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mnist_harness import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
