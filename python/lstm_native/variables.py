"""Trainable state: a Variable is a numpy array that a layer owns, its gradient, and how to regularize it.

Layers compute into ``Variable.grad`` during their backward pass; optimizers read it and update
``Variable.value`` in place (the native core sees the same memory, zero-copy).
"""

from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np


class Variable:
    """One weight tensor of a layer.

    Attributes:
        name: the weight's name inside its layer ("kernel", "recurrent_kernel", "bias", "peephole", ...);
            ``path`` is "<layer name>/<name>".
        value: the array itself (C-contiguous). Update it in place (``value[...] = ...``, ``value -= ...``)
            so that every holder of a reference sees the change.
        grad: the gradient of the loss w.r.t. ``value`` from the last backward pass (same shape and
            dtype), or None before one ran. Backward passes overwrite it.
        trainable: whether optimizers update it.
        regularizer: a callable ``regularizer(value) -> float`` penalty with a ``gradient(value)`` method,
            or None.
    """

    __slots__ = ("name", "path", "value", "grad", "trainable", "regularizer")

    def __init__(self, name: str, value: np.ndarray, *, path: Optional[str] = None, trainable: bool = True,
                 regularizer: Optional[Callable] = None):
        self.name = name
        self.path = path or name
        self.value = np.ascontiguousarray(value)
        self.grad: Optional[np.ndarray] = None
        self.trainable = trainable
        self.regularizer = regularizer

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def assign(self, new_value) -> None:
        """Copies ``new_value`` into the variable's array (shape must match)."""
        new_value = np.asarray(new_value)
        if new_value.shape != self.value.shape:
            raise ValueError(f"{self.path}: expected shape {self.value.shape}, got {new_value.shape}")
        self.value[...] = new_value

    def numpy(self) -> np.ndarray:
        return self.value.copy()

    def __repr__(self) -> str:
        return f"<Variable {self.path} shape={self.value.shape} dtype={self.value.dtype}>"


class WeightContainer:
    """Keras' get_weights / set_weights / count_params over ``self.weights`` (a list of Variables), for
    layers and models alike; ``self.name`` names the owner in errors."""

    name: str

    @property
    def weights(self) -> List[Variable]:
        """The owner's Variables (its subclasses define which)."""
        raise NotImplementedError

    def get_weights(self) -> List[np.ndarray]:
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"{self.name}: set_weights expected {len(self.weights)} arrays, got {len(weights)}")
        for variable, value in zip(self.weights, weights):
            variable.assign(value)

    def count_params(self) -> int:
        return int(sum(w.value.size for w in self.weights))
