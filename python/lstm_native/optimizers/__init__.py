"""Optimizers with Keras 3's update rules, defaults and configuration, on :class:`~lstm_native.variables.Variable`.

``optimizer.apply(variables)`` makes one update from the variables' ``.grad``; see :class:`Optimizer`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from . import schedules
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "schedules", "get", "serialize",
           "deserialize"]

_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": optimizer.get_config()}``."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict) -> Optimizer:
    """The inverse of :func:`serialize`; the class name is case-insensitive."""
    cls = _OPTIMIZERS.get(str(config["class_name"]).lower())
    if cls is None:
        raise ValueError(f"Could not interpret optimizer identifier: {config['class_name']!r}")
    return cls.from_config(config.get("config", {}))


def get(identifier: Union[str, Dict[str, Any], Optimizer, None]) -> Optional[Optimizer]:
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop", "adagrad", any case: default arguments),
    a :func:`serialize` dict, or an :class:`Optimizer` (returned as is). None gives None."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier})
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")
