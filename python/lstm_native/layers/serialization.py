"""Layers to and from their configs, ``{"class_name": ..., "config": layer.get_config()}`` (Keras' form).

Only the layer classes of this package can be rebuilt: :func:`deserialize` looks the class name up in
:data:`LAYER_CLASSES` and never imports or runs anything a config names.
"""

from __future__ import annotations

from .. import _serialization
from .base import Layer, deserialize_layer
from .bidirectional import Bidirectional
from .core import Dropout, Embedding, InputLayer, Masking
from .dense import Dense
from .lstm import LSTM

LAYER_CLASSES = {cls.__name__: cls for cls in (Bidirectional, Dense, Dropout, Embedding, InputLayer, LSTM, Masking)}


def serialize(layer: Layer) -> dict:
    """The layer as Keras' serialized dict (``class_name`` and ``config``); :func:`deserialize` rebuilds it."""
    return _serialization.serialize(layer)


def deserialize(entry: dict) -> Layer:
    """The layer (not built) that a :func:`serialize` dict describes; ValueError for anything else."""
    return deserialize_layer(entry, LAYER_CLASSES)
