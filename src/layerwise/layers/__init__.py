"""Layers: each one's ``forward`` and ``backward`` side by side.

Samples are the first axis: a Dense layer takes x (batch, features), a Conv2D
layer takes images x (batch, channels, height, width).  ``base.py`` states the
contract every layer follows; each other module holds one kind of layer.

=================  ==================================================
``dense.py``       ``Dense``: y = x W + b
``activations.py`` ``ReLU``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``Linear``
``conv.py``        ``Conv2D``: Dense on image patches (im2col)
``pooling.py``     ``MaxPool2D``, ``AvgPool2D``
``dropout.py``     ``Dropout``
``normalization``  ``BatchNorm``
``reshaping.py``   ``Flatten``, ``Rescale``
=================  ==================================================

The seed's names ``doForward`` / ``doBackward`` are aliases of ``forward`` /
``backward`` on every layer.
"""

from .activations import ACTIVATIONS, Activation, Linear, Logistic, ReLU, Sigmoid, Softmax, Tanh, get_activation
from .base import LAYERS, Layer, float_dtype, get_layer_class, layer_from_config, register_layer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm
from .pooling import AvgPool2D, MaxPool2D
from .reshaping import Flatten, Rescale

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "Logistic",
    "MaxPool2D",
    "ReLU",
    "Rescale",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "float_dtype",
    "get_activation",
    "get_layer_class",
    "layer_from_config",
    "register_layer",
]
