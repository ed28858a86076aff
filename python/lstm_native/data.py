"""What ``fit``, ``evaluate`` and ``predict`` take as data, in batches.

* Arrays (numpy arrays, nested lists, anything with ``__array__``: torch tensors, pandas frames), cut here
  into batches of ``batch_size`` samples, shuffled per epoch when asked.
* Batches that the caller makes: a Python generator or iterator (read on across epochs, as Keras does), an
  iterable that starts afresh at every ``iter()`` (a ``tf.data.Dataset``), or a Keras-style sequence with
  ``__len__`` and ``__getitem__`` (``keras.utils.PyDataset``; its ``on_epoch_end`` is called after each
  epoch). Each batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

Bad batches raise naming the argument they came from.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import utils

Batch = Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


class BatchSequence(Protocol):
    """A Keras-style sequence of batches (``keras.utils.PyDataset``): ``len`` batches, each by index."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


# What fit, evaluate and predict take as x: arrays, or batches that the caller makes (see the docstring).
Data = Union[ArrayLike, Iterable[Any], BatchSequence]


def is_batch_source(data) -> bool:
    """True for data given as batches (a generator, iterable or sequence) rather than as one array."""
    if data is None or isinstance(data, (np.ndarray, list, tuple, str, bytes, numbers.Number)):
        return False
    if isinstance(data, dict):
        raise TypeError("x: a dict of inputs is not supported (a Sequential model has one input)")
    if hasattr(data, "__array__") or hasattr(data, "__array_interface__"):
        return False
    return hasattr(data, "__iter__") or (hasattr(data, "__getitem__") and hasattr(data, "__len__"))


def check_samples(name: str, array, expected: int) -> None:
    if array is not None and len(array) != expected:
        raise ValueError(f"{name}: expected {expected} samples (as many as x), got {len(array)}")


def finite_weights(name: str, weights) -> Optional[np.ndarray]:
    """Sample weights as float32, refused if any is negative or not finite (they would turn the loss into
    NaN, or into something no longer a weighted mean, without a word)."""
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float32)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"{name}: expected finite, non-negative weights")
    return weights


class ArrayBatches:
    """Arrays in batches of ``batch_size`` rows: one pass per epoch, in a new random order when ``shuffle``
    (drawn from the library's generator at the epoch's first batch)."""

    def __init__(self, name: str, x: np.ndarray, y, sample_weight, batch_size: int, shuffle: bool):
        self.name, self.x, self.y, self.sample_weight = name, x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = math.ceil(len(x) / batch_size)
        self.exhausted = False  # arrays never run out

    def epoch(self) -> Iterator[Batch]:
        order = utils.generator().permutation(len(self.x)) if self.shuffle else None
        for first in range(0, len(self.x), self.batch_size):
            rows = slice(first, first + self.batch_size) if order is None else order[first:first + self.batch_size]
            yield (self.x[rows], None if self.y is None else self.y[rows],
                   None if self.sample_weight is None else self.sample_weight[rows])

    def end_epoch(self) -> None:
        pass


class SourceBatches:
    """Batches from a generator, an iterable or a sequence (see the module's docstring), each x converted by
    ``prepare_x``. ``steps`` (Keras' ``steps_per_epoch``/``validation_steps``/``steps``) caps an epoch;
    without it an epoch runs to the end of the data. A generator that ends before ``steps`` batches (or
    yields nothing in a later epoch) sets ``exhausted``, with Keras' warning; ``fit`` then stops."""

    def __init__(self, data, steps: Optional[int], name: str, prepare_x: Callable[[np.ndarray], np.ndarray]):
        self.data, self.name, self.prepare_x = data, name, prepare_x
        self._sequence = not hasattr(data, "__next__") and hasattr(data, "__getitem__") and hasattr(data, "__len__")
        self._iterator = data if hasattr(data, "__next__") else None  # read on across epochs
        self.exhausted = False
        self.steps: Optional[int]
        if self._sequence:
            length = len(data)
            if steps is not None and steps > length:
                raise ValueError(f"{name}: {steps} steps asked, but the sequence holds {length} batches (len())")
            self.steps = length if steps is None else steps
        else:
            self.steps = steps

    def epoch(self) -> Iterator[Batch]:
        if self._sequence:
            assert self.steps is not None  # a sequence's steps default to its len()
            batches = (self.data[k] for k in range(self.steps))
        else:
            batches = self._iterator if self._iterator is not None else iter(self.data)
        produced = 0
        while self.steps is None or produced < self.steps:
            try:
                batch = next(batches)
            except StopIteration:
                break
            produced += 1
            x, y, sample_weight = unpack(batch, self.name)
            yield self.prepare_x(x), y, finite_weights("sample_weight", sample_weight)
        if produced == 0 or (self.steps is not None and produced < self.steps):
            self.exhausted = True
            warnings.warn(f"{self.name}: the input ran out of data after {produced} batches of this epoch; "
                          "training stops (give a generator that yields at least steps_per_epoch * epochs "
                          "batches, or a sequence)", UserWarning, stacklevel=4)

    def end_epoch(self) -> None:
        if self._sequence and hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()


def unpack(batch, name: str) -> Batch:
    """A yielded batch as (x, y or None, sample_weight or None)."""
    if isinstance(batch, (tuple, list)) and not isinstance(batch, np.ndarray):
        if not 1 <= len(batch) <= 3:
            raise ValueError(f"{name}: a batch must be x, (x,), (x, y) or (x, y, sample_weight); got a "
                             f"{type(batch).__name__} of {len(batch)} items")
        parts = tuple(None if part is None else np.asarray(part) for part in batch) + (None,) * (3 - len(batch))
        x, y, sample_weight = parts
        if x is None:
            raise ValueError(f"{name}: a batch's x is None")
        return x, y, sample_weight
    return np.asarray(batch), None, None
