"""A small CNN on Fashion-MNIST: ``layerwise reproduce fashion-cnn``.

::

    conv 3×3·32 pad 1 → BatchNorm → ReLU → maxpool 2 → conv 3×3·64 pad 1 → BatchNorm → ReLU → maxpool 2
    → dropout 0.25 → 128 → ReLU → dropout 0.5 → 10

Fashion-MNIST's own benchmark (Xiao, Rasul & Vollgraf 2017, and the repository's
table) lists 91–93% test accuracy for small two-layer CNNs.  Target here: ≥ 91.5%
test accuracy within 15 epochs.

Why this network and these settings (measured on all 60,000 images, seed 0):

- The network (design reasons, not a search): the MNIST convnet of ``convnet.py``
  ends in one linear layer on the pooled features, little for telling shirts from
  pullovers and coats, so a hidden layer of 128 units is added; padding 1 keeps the
  image borders, where clothes (unlike digits) have edges; BatchNorm after each
  convolution makes the early epochs fast; Dropout 0.25 / 0.5 holds back the
  over-fitting the hidden layer brings (train 95.5% vs. test 92.2% at the end).

- Adam 1e-3, batch 64, the rate decayed along half a cosine to lr/100 over the 15
  epochs: test accuracy after each epoch 85.96, 88.40, 89.61, 89.85, 90.48, 90.70,
  91.15, 91.59, 91.71, 91.69, 91.79, 91.98, 92.30, 92.42, 92.22% -- above the target
  from epoch 9 on, 0.7 points above it at the end.  Later versions' kernels do the same
  arithmetic in other orders of roundings: 92.33% (train 95.39%) with the optimizer
  kernel, 92.19% (train 95.53%) with the convolution kernels, 92.48% (train 95.33%) with
  their parallel regions, 92.07% (train 95.39%) with BatchNorm's sums as matrix products.
  About 1.5 times the convnet's work per epoch (the second convolution runs on 14×14
  instead of 11×11 pixels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .single import format_single, outputs, run_single

SPEC: dict[str, Any] = {
    "name": "fashion-cnn",
    "title": "Fashion CNN",
    "dataset": "fashion-mnist",
    "arch": (
        "[conv(32,3,pad=1),batchnorm,relu,maxpool(2),conv(64,3,pad=1),batchnorm,relu,maxpool(2),"
        "dropout(0.25),(128,ReLU),dropout(0.5),(10,Linear)]"
    ),
    "optimizer": "adam",
    "lr": 1e-3,
    "schedule": "cosine",
    "epochs": 15,
    "batch_size": 64,
    "seed": 0,
    "reference": {"source": "Fashion-MNIST, small CNNs", "test_accuracy_range": [91, 93]},
    "target": {"test_accuracy": 91.5},
}
OUTPUTS = outputs(SPEC)  # from the default number of seeds


def run(out_dir: str | Path = "runs/fashion-cnn", **options: Any) -> dict[str, Any]:
    """Train the CNN on Fashion-MNIST; write results.json, the plots and model.npz to ``out_dir``.

    options: ``epochs``, ``limit``, ``data_dir``, ``verbose``, ``log``, ``cancel``, ``seeds``, ``workers``
    (see ``single.run_single``).
    """
    return run_single(SPEC, out_dir, **options)


format_table = format_single
