"""Reproducibility: one seeded generator for everything random in the Python layer; the checks of integer
ids (labels, token ids)."""

from __future__ import annotations

import contextlib
import random
from typing import Optional

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


def generator_from_state(state) -> np.random.Generator:
    """A generator in ``state`` (what :func:`get_rng_state` returns); ValueError for anything numpy's PCG64
    does not accept as its state."""
    bit_generator = np.random.PCG64()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ValueError(f"not a PCG64 generator state: {error!r}") from None
    return np.random.Generator(bit_generator)


@contextlib.contextmanager
def using_generator(generator: np.random.Generator):
    """Within the block, :func:`generator` (without a seed) returns ``generator`` instead of the library's
    own (a data-parallel strategy draws each process' dropout masks from one of its own)."""
    global _generator
    saved, _generator = _generator, generator
    try:
        yield
    finally:
        _generator = saved


def get_rng_state() -> dict:
    """The state of the library's generator (a JSON-serializable dict), for :func:`set_rng_state`."""
    return dict(_generator.bit_generator.state)


def set_rng_state(state) -> None:
    """Puts the library's generator back into a state from :func:`get_rng_state`, so that it draws the same
    numbers again; an invalid state raises ValueError and changes nothing."""
    global _generator
    _generator = generator_from_state(state)


def integer_ids(values, what: str, upper: Optional[int] = None) -> np.ndarray:
    """``values`` (class labels, token ids) as int64, checked first: a TypeError for a dtype that holds no
    numbers (naming ``what`` and the dtype); a ValueError for floats that are not finite or not whole, and,
    given ``upper``, for values outside [0, upper), listing the offending values as given (no wrapped casts)."""
    values = np.asarray(values)
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_) \
            or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(f"{what}: expected integers, got dtype {values.dtype}")
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{what}: expected integers, got values that are not finite: "
                             f"{_some(values[~np.isfinite(values)])}")
        if np.any(np.mod(values, 1) != 0):
            raise ValueError(f"{what}: expected integers, got fractions: {_some(values[np.mod(values, 1) != 0])}")
    if upper is not None:
        outside = (values < 0) | (values >= upper)
        if np.any(outside):
            raise ValueError(f"{what}: values outside [0, {upper}): {_some(values[outside])}")
    beyond = (values > np.iinfo(np.int64).max) | (values < np.iinfo(np.int64).min)
    if np.any(beyond):
        raise ValueError(f"{what}: expected values within int64, got {_some(values[beyond])}")
    return values.astype(np.int64)


def _some(values, count: int = 8) -> str:
    """Up to `count` distinct values, as Python numbers."""
    distinct = np.unique(values)
    text = ", ".join(str(v) for v in distinct[:count].tolist())
    return f"[{text}{', ...' if len(distinct) > count else ''}]"
