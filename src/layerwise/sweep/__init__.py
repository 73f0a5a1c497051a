"""Sweeps: a grid or random search of training runs, in parallel on Dask or one after another.

>>> import layerwise.sweep
>>> rows = layerwise.sweep.run("sweep.toml", "sweeps/mlp")  # doctest: +SKIP

``layerwise sweep SPEC.toml --out DIR`` is the command line.  ``spec`` describes the
file format, ``driver`` the output folder and resumption, ``execute`` how trials run
(Dask is imported only when a sweep runs on it: ``pip install layerwise[sweep]``).
"""

from .driver import SweepInterrupted, run
from .results import format_table
from .spec import Distribution, SweepSpec, Trial, load_spec, parse_spec

__all__ = ["Distribution", "SweepInterrupted", "SweepSpec", "Trial", "format_table", "load_spec", "parse_spec", "run"]
