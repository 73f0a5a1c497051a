"""Run the MNIST training benchmark (see ``layerwise.bench`` for what it measures).

python benchmarks/bench_mnist.py --json bench.json
"""

import sys

from layerwise.bench import main

if __name__ == "__main__":
    sys.exit(main())
