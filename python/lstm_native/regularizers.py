"""Weight penalties with Keras 3 semantics: L1 = l1·Σ|w|, L2 = l2·Σw² (no ½), L1L2 both."""

from __future__ import annotations

import numpy as np

from . import _serialization


class Regularizer:
    def __call__(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """∂penalty/∂x."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x):
        return float(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def gradient(self, x):
        return (self.l1 * np.sign(x) + 2.0 * self.l2 * x).astype(x.dtype)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """A regularizer from a Keras name ("l1", "l2", "l1_l2"), a ``{"class_name", "config"}`` dict, an
    instance, or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return _serialization.deserialize(identifier, _ALIASES, "regularizer")
    if isinstance(identifier, str) and identifier in _ALIASES:
        return _ALIASES[identifier]()
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")
