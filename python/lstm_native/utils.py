"""Reproducibility: one seeded generator for everything random in the Python layer."""

from __future__ import annotations

import random

import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seeds lstm_native's generator (weight initializers, shuffling, dropout masks), Python's ``random`` and
    numpy's global generator, as ``keras.utils.set_random_seed`` does. Two runs after the same seed draw
    the same numbers."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an integer, got {type(seed).__name__}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _generator = np.random.default_rng(int(seed))


def generator(seed=None) -> np.random.Generator:
    """A generator of its own for an explicit ``seed``, else the library's seeded one."""
    return np.random.default_rng(seed) if seed is not None else _generator
