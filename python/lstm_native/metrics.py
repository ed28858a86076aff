"""Stateful metrics with Keras 3 names, defaults and semantics.

A metric accumulates over ``update_state(y_true, y_pred, sample_weight=None)`` calls and reports
``result()`` (a float) until ``reset_state()``. The mean metrics do as Keras' ``Mean``: every sample's values
(e.g. the (T,) matches of a sequence) are averaged into one per-sample value, and the result is the mean of
those weighted by ``sample_weight`` (a per-sample weight of shape (B,), or one per value, e.g. (B, T), which
weighs the values within each sample).

:func:`get` resolves metric identifiers as ``model.compile(metrics=[...])`` does, "accuracy" included.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _serialization, utils
from .losses import _squeeze_or_expand, mean_absolute_error, mean_squared_error


class Metric:
    """Base class: ``update_state(...)``, ``result() -> float``, ``reset_state()``; ``name`` names it in logs."""

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def update_state(self, *args, **kwargs) -> None:
        """Adds a batch to the running state."""
        raise NotImplementedError

    def result(self) -> float:
        """The metric's value over what was added since the last reset."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forgets everything added (called at each epoch's start)."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments, as JSON values."""
        return _serialization.constructor_arguments(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.result()}>"


def _mean_over_samples(values: np.ndarray) -> np.ndarray:
    """The mean of every axis but the first (a scalar stays a scalar)."""
    return values.mean(axis=tuple(range(1, values.ndim)))


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name: str = "mean"):
        super().__init__(name)

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> None:
        # Keras' reduce_to_samplewise_values with a mean reduction
        array = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            count = array.shape[0] if array.ndim else 1
        else:
            array, weights = _squeeze_or_expand(array, np.asarray(sample_weight, dtype=np.float64))
            array = array.mean(axis=tuple(range(weights.ndim, array.ndim)))  # down to the weights' rank
            weights = np.broadcast_to(weights, array.shape)
            array = array * weights
            count = np.sum(_mean_over_samples(weights))
        self.total += float(np.sum(_mean_over_samples(array)))
        self.count += float(count)

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)``, the per-value metric function."""

    def __init__(self, fn: Callable, name: Optional[str] = None, **kwargs):
        super().__init__(name or fn.__name__)
        self._fn = fn
        self._fn_kwargs = kwargs

    # Keras' MeanMetricWrapper: (y_true, y_pred) where its base Mean takes values.
    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike,  # type: ignore[override]
                     sample_weight: Optional[ArrayLike] = None) -> None:
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)


# ------------------------------------------------------------------------------------- functions


def _as_arrays(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    return np.asarray(y_true, dtype=y_pred.dtype), y_pred


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """1.0 where y_pred equals y_true, else 0.0."""
    true, pred = _squeeze_or_expand(*_as_arrays(y_true, y_pred))
    return (true == pred).astype(np.float64)


def binary_accuracy(y_true: ArrayLike, y_pred: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """1.0 where (y_pred > threshold) equals y_true, else 0.0."""
    true, pred = _squeeze_or_expand(np.asarray(y_true), np.asarray(y_pred))
    return ((pred > threshold).astype(true.dtype) == true).astype(np.float64)


def categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """1.0 where y_pred's largest entry is y_true's (one-hot) class, else 0.0; shape y_pred.shape[:-1]."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """1.0 where y_pred's largest entry is at the label y_true (shape (...) or (..., 1)), else 0.0."""
    y_true, y_pred = utils.integer_ids(y_true, "y_true (class labels)"), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float64)


# --------------------------------------------------------------------------------------- classes


class Accuracy(MeanMetricWrapper):
    def __init__(self, name: str = "accuracy"):
        super().__init__(accuracy, name)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        super().__init__(binary_accuracy, name, threshold=threshold)
        self.threshold = threshold


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(mean_absolute_error, name)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(mean_squared_error, name)


# ------------------------------------------------------------------------------------------- get

_BY_NAME = {cls.__name__: cls for cls in (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                          SparseCategoricalAccuracy, MeanAbsoluteError, MeanSquaredError)}
_BY_NAME.update({
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
})


def _accuracy_for(y_true, y_pred) -> type:
    """Keras' choice for "accuracy": binary for one output, sparse for labels, else categorical."""
    true_shape, pred_shape = np.shape(y_true), np.shape(y_pred)
    if pred_shape[-1] == 1:
        return BinaryAccuracy
    if len(true_shape) < len(pred_shape) or (true_shape[-1] == 1 and pred_shape[-1] > 1):
        return SparseCategoricalAccuracy
    return CategoricalAccuracy


def get(identifier: Union[_serialization.Identifier, Metric], y_true: Optional[ArrayLike] = None,
        y_pred: Optional[ArrayLike] = None) -> Metric:
    """Resolves a metric as Keras' compile does; a string gives a metric named by that string.

    "accuracy" / "acc" (any case) pick binary, sparse categorical or categorical accuracy from the shapes of
    y_true and y_pred (a batch of targets and of predictions), which they then require. A plain function
    ``fn(y_true, y_pred) -> values`` is averaged by a MeanMetricWrapper named after it. A
    ``{"class_name", "config"}`` dict (a saved model's) gives that class with that config.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return _serialization.deserialize(identifier, _BY_NAME, "metric")
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            if y_true is None or y_pred is None:
                raise ValueError(f"metric {identifier!r} needs y_true and y_pred to choose between binary, "
                                 "sparse categorical and categorical accuracy")
            return _accuracy_for(y_true, y_pred)(name=identifier)
        if identifier in _BY_NAME:
            return _BY_NAME[identifier](name=identifier)
    elif callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"unknown metric {identifier!r}; known: accuracy, acc, {', '.join(sorted(_BY_NAME))}")
