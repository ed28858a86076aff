"""Layers with Keras 3 names."""

from .base import Layer
from .bidirectional import Bidirectional
from .core import Dropout, Embedding, Input, InputLayer, Masking
from .dense import Dense
from .lstm import LSTM
from .serialization import deserialize, serialize

__all__ = ["Bidirectional", "Dense", "Dropout", "Embedding", "Input", "InputLayer", "LSTM", "Layer", "Masking",
           "deserialize", "serialize"]
