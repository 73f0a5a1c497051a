"""Architecture strings: the seed's ``"[(140,ReLU),(10,Linear)]"``, the short ``"140:relu,10"``, and CNNs.

A small hand-written parser (never ``eval``) that reports the character position of
the first thing it cannot read.  One string describes a whole network::

    [conv(6,5,pad=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),(120,ReLU),(84,ReLU),(10,Linear)]

Grammar (spaces allowed between tokens, names case-insensitive)::

    arch     := "[" item ("," item)* ","? "]"  |  item ("," item)*
    item     := "(" units "," name ")"               Dense(units) + activation (the seed's notation)
              | units (":" name)?                    the same, short; no name means linear
              | "dense(" units ("," name)? ")"       the same, spelled out
              | "conv(" filters "," kernel ("," "stride=" n)? ("," "pad=" (n | "same" | "valid"))? ")"
              | "maxpool(" size ("," "stride=" n)? ")"  |  "avgpool(" size ("," "stride=" n)? ")"
              | "dropout(" rate ")"  |  "flatten"  |  "batchnorm"  |  name
    name     := an activation (linear, relu, sigmoid, tanh, softmax...), optionally in '...' or "..."
    n        := a positive integer, or "HxW" for a (height, width) pair (kernel, size, stride, pad)

A ``Flatten`` is put in automatically before the first Dense layer that follows
image layers (conv, pooling), as ``[...,flatten,(120,ReLU),...]`` would.  The
stride of a pool defaults to its size (PyTorch, Keras); ``pad`` defaults to 0
("valid"), ``"same"`` keeps the image size at stride 1 (Keras).  Aliases:
``conv2d``, ``maxpool2d``, ``avgpool2d``, ``bn``, ``padding=``.

Modules: ``parser`` (``parse_layers`` reads the whole grammar into ``LayerSpec``
items; ``parse_architecture`` keeps the seed's result for MLPs, ``[(140, "relu"),
(10, "linear")]``; ``format_layers`` writes the canonical string) and ``build``
(``build_network(text, input_shape, seed)`` gives the ``Sequential``).
"""

from .build import build_layers, build_network
from .parser import (
    IMAGE_KINDS,
    LAYER_WORDS,
    MAX_UNITS_DIGITS,
    Architecture,
    LayerSpec,
    format_architecture,
    format_layers,
    input_rank,
    is_mlp,
    parse_architecture,
    parse_layers,
    takes_images,
)

__all__ = [
    "IMAGE_KINDS",
    "LAYER_WORDS",
    "MAX_UNITS_DIGITS",
    "Architecture",
    "LayerSpec",
    "build_layers",
    "build_network",
    "format_architecture",
    "format_layers",
    "input_rank",
    "is_mlp",
    "parse_architecture",
    "parse_layers",
    "takes_images",
]
