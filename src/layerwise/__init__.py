"""layerwise: a NumPy neural-network framework in which every layer does its own forward and backward pass.

>>> import layerwise as lw
>>> net = lw.NeuralNetwork(784, [(140, "ReLU"), (10, "Linear")], seed=0)
>>> model = lw.Model(net, loss="crossEntropyLogit", optimizer=lw.optim.Adam(1e-3))
"""

from . import callbacks, errors, losses, optim, schedules
from .arch import format_architecture, parse_architecture
from .gradcheck import gradcheck
from .io import load
from .layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    Linear,
    Logistic,
    MaxPool2D,
    ReLU,
    Rescale,
    Sigmoid,
    Softmax,
    Tanh,
    register_layer,
)
from .losses import MSE, CrossEntropyLogit, Loss, softmax, softmax_jacobian
from .losses import Logistic as LogisticLoss
from .model import Model
from .network import NeuralNetwork, Sequential

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dropout",
    "Flatten",
    "MaxPool2D",
    "register_layer",
    "CrossEntropyLogit",
    "Dense",
    "Layer",
    "Linear",
    "Logistic",
    "LogisticLoss",
    "Loss",
    "MSE",
    "Model",
    "NeuralNetwork",
    "ReLU",
    "Rescale",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "callbacks",
    "errors",
    "format_architecture",
    "gradcheck",
    "load",
    "losses",
    "optim",
    "parse_architecture",
    "schedules",
    "softmax",
    "softmax_jacobian",
]
