"""Layers to and from their configs, ``{"class_name": ..., "config": layer.get_config()}`` (Keras' form).

Only the layer classes of this package can be rebuilt: :func:`deserialize` looks the class name up in
:data:`LAYER_CLASSES` and never imports or runs anything a config names.
"""

from __future__ import annotations

from .. import _serialization
from .base import Layer
from .bidirectional import Bidirectional
from .core import Dropout, Embedding, InputLayer, Masking
from .dense import Dense
from .lstm import LSTM

LAYER_CLASSES = {cls.__name__: cls for cls in (Bidirectional, Dense, Dropout, Embedding, InputLayer, LSTM, Masking)}

# The arguments that every layer takes through **kwargs, which no signature default types.
_BASE_ARGUMENT_TYPES = {"name": str, "trainable": bool, "dtype": str, "batch_input_shape": list}


def serialize(layer: Layer) -> dict:
    return _serialization.serialize(layer)


def deserialize(entry) -> Layer:
    """The layer (not built) that a :func:`serialize` dict describes; ValueError for anything else."""
    config = entry.get("config") if isinstance(entry, dict) else None
    for name, expected in _BASE_ARGUMENT_TYPES.items():
        if isinstance(config, dict) and name in config and not isinstance(config[name], expected):
            raise ValueError(f"layer config: {name} must be a {expected.__name__}, got {type(config[name]).__name__}")
    return _serialization.deserialize(entry, LAYER_CLASSES, "layer")
