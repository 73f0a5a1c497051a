"""Data sets and the IDX file format.

``load(name)`` gives ``((x_train, y_train), (x_test, y_test))`` for "mnist",
"fashion-mnist" and "digits"; ``flatten`` and ``scale`` turn uint8 images into
the float rows a network takes.  ``read_idx`` / ``write_idx`` handle IDX files.
"""

from layerwise.data.datasets import DATASETS, cache_dir, flatten, load, scale
from layerwise.data.idx import load_idx_pair, parse_idx_bytes, read_idx, write_idx

__all__ = [
    "DATASETS",
    "cache_dir",
    "flatten",
    "load",
    "load_idx_pair",
    "parse_idx_bytes",
    "read_idx",
    "scale",
    "write_idx",
]
