"""One training run as a library function: ``train_run(RunConfig(...), out_dir)``.

Used by ``layerwise train``, ``layerwise reproduce`` and ``layerwise sweep`` alike.
"""

from .config import RunConfig
from .folder import RunFolder
from .train import CancelToken, RunResult, build_model, load_run_data, train_run

__all__ = ["CancelToken", "RunConfig", "RunFolder", "RunResult", "build_model", "load_run_data", "train_run"]
