"""Losses with Keras 3 names, defaults and semantics, each with the exact gradient of its value.

A loss first computes a per-sample loss tensor (the class axis, or the last axis, reduced), then Keras'
"sum_over_batch_size" reduction: ``sum(per_sample * sample_weight) / per_sample.size``. ``sample_weight``
broadcasts to the per-sample losses aligned on their leading axes: ``(B,)`` weighs every step of a ``(B, T)``
sequence sample, ``(B, T)`` weighs each step.

Every loss has ``__call__(y_true, y_pred, sample_weight=None) -> float`` and ``value_and_grad(...) ->
(float, dL/dy_pred)``. The three cross-entropies also have ``value_and_grad_from_logits(y_true, logits,
sample_weight=None)``: the loss of ``activation(logits)`` (``logits_activation`` names the activation)
computed from the logits, stable at any logit, as Keras' TensorFlow backend does when the model's last layer
applies that activation. The computation runs in y_pred's dtype (float32 or wider).

The function forms (``categorical_crossentropy(y_true, y_pred, ...)``, ...) return the per-sample losses.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _serialization, utils
from .activations import _floating, log_softmax, sigmoid

# Keras' backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON] before their log.
EPSILON = 1e-7


class _PerSample(NamedTuple):
    values: np.ndarray  # the per-sample losses
    vjp: Callable  # dL/dvalues -> dL/dy_pred
    valid: Optional[np.ndarray] = None  # where the loss counts (a Keras mask), None for everywhere


def _squeeze_or_expand(y_true, y_pred):
    """Keras' squeeze_or_expand_to_same_rank: reconciles ranks that differ by a trailing axis of size 1."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return (y_true, y_pred[..., None]) if y_pred.ndim == 1 else (y_true[..., 0], y_pred)
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        return (y_true[..., None], y_pred) if y_true.ndim == 1 else (y_true, y_pred[..., 0])
    return y_true, y_pred


def _dense_inputs(y_true, y_pred):
    """(y_true, y_pred) as float arrays of y_pred's dtype and of one shape, after Keras' rank reconciling."""
    y_pred = _floating(y_pred)
    y_true, y_pred = _squeeze_or_expand(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def _clip(p):
    """Keras' clip of probabilities, and where it lets the gradient through."""
    return np.clip(p, EPSILON, 1 - EPSILON), (p >= EPSILON) & (p <= 1 - EPSILON)


def _weights(sample_weight, values: np.ndarray) -> np.ndarray:
    """sample_weight broadcast to the per-sample losses' shape, aligned on the leading axes."""
    if sample_weight is None:
        return np.ones_like(values)
    weights = np.asarray(sample_weight, dtype=values.dtype)
    if weights.ndim == values.ndim + 1 and weights.shape[-1] == 1:
        weights = weights[..., 0]
    try:
        return np.broadcast_to(weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim)), values.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} does not fit per-sample losses of "
                         f"shape {values.shape}") from None


def _reduce(per_sample: _PerSample, sample_weight) -> tuple:
    """Keras' "sum_over_batch_size" reduction: (loss, dloss/dvalues)."""
    values = per_sample.values
    weights = _weights(sample_weight, values)
    size = values.dtype.type(values.size)
    if per_sample.valid is not None:
        # Keras turns a mask into weights total/valid (0 off it): the sum is divided by the count of valid.
        valid = per_sample.valid
        count = np.count_nonzero(valid)
        weights = weights * np.where(valid, size / count if count else 0, 0).astype(values.dtype)
    return float(np.sum(values * weights) / size), weights / size


# ------------------------------------------------------------------------- per-sample losses
# Each returns a _PerSample for (y_true, y_pred) and its parameters.


def _categorical(y_true, y_pred, from_logits, label_smoothing, axis) -> _PerSample:
    t, p = _dense_inputs(y_true, y_pred)
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]  # Keras divides by the last axis' size
    if from_logits:
        log_q = log_softmax(p, axis=axis)
        # d/dz of -sum t log softmax(z) = softmax(z) sum(t) - t
        return _PerSample(-np.sum(t * log_q, axis=axis),
                          lambda dv: np.expand_dims(dv, axis) * (np.exp(log_q) * np.sum(t, axis, keepdims=True) - t))
    total = np.sum(p, axis=axis, keepdims=True)
    q = p / total  # Keras renormalizes the probabilities before clipping them
    c, through = _clip(q)

    def vjp(dv):
        dq = np.where(through, np.expand_dims(dv, axis) * -t / c, 0)
        return (dq - np.sum(dq * q, axis=axis, keepdims=True)) / total  # through q = p / sum(p)

    return _PerSample(-np.sum(t * np.log(c), axis=axis), vjp)


def _sparse_from_logits(labels, logits) -> _PerSample:
    log_q = log_softmax(logits)
    one_hot = np.arange(logits.shape[-1]) == labels[..., None]
    return _PerSample(-np.take_along_axis(log_q, labels[..., None], axis=-1)[..., 0],
                      lambda dv: dv[..., None] * (np.exp(log_q) - one_hot))


def _sparse_categorical(y_true, y_pred, from_logits, ignore_class) -> _PerSample:
    y_pred = _floating(y_pred)
    labels, y_pred = _squeeze_or_expand(np.asarray(y_true), y_pred)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"y_true of shape {labels.shape} does not match y_pred of shape {y_pred.shape}: "
                         "expected y_pred's shape without its last axis")
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = np.where(valid, labels, 0)
        y_pred = np.where(valid[..., None], y_pred, 0)
    labels = utils.integer_ids(labels, "y_true (class labels)", upper=y_pred.shape[-1])
    if from_logits:
        per_sample = _sparse_from_logits(labels, y_pred)
    else:
        # Keras feeds log(clip(p)) as logits to the sparse softmax cross-entropy, which renormalizes it.
        c, through = _clip(y_pred)
        from_log = _sparse_from_logits(labels, np.log(c))
        per_sample = _PerSample(from_log.values, lambda dv: np.where(through, from_log.vjp(dv) / c, 0))
    if valid is None:
        return per_sample
    return _PerSample(np.where(valid, per_sample.values, 0),
                      lambda dv: np.where(valid[..., None], per_sample.vjp(dv), 0), valid)


def _binary(y_true, y_pred, from_logits, label_smoothing, axis) -> _PerSample:
    t, p = _dense_inputs(y_true, y_pred)
    if label_smoothing:
        t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    n = p.shape[axis]
    if from_logits:
        # TensorFlow's sigmoid_cross_entropy_with_logits: max(z, 0) - z t + log(1 + e^-|z|)
        elementwise = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        dz = sigmoid(p) - t
    else:
        c, through = _clip(p)
        elementwise = -(t * np.log(c) + (1 - t) * np.log(1 - c))
        dz = np.where(through, (c - t) / (c * (1 - c)), 0)
    return _PerSample(np.mean(elementwise, axis=axis), lambda dv: np.expand_dims(dv, axis) * dz / n)


def _regression(y_true, y_pred, elementwise, derivative) -> _PerSample:
    """The mean over the last axis of elementwise(y_pred - y_true); derivative is elementwise's."""
    t, p = _dense_inputs(y_true, y_pred)
    error = p - t
    n = error.shape[-1]
    return _PerSample(np.mean(elementwise(error), axis=-1),
                      lambda dv: np.expand_dims(dv, -1) * derivative(error) / n)


def _mean_squared_error(y_true, y_pred) -> _PerSample:
    return _regression(y_true, y_pred, np.square, lambda e: 2 * e)


def _mean_absolute_error(y_true, y_pred) -> _PerSample:
    return _regression(y_true, y_pred, np.abs, np.sign)


def _huber(y_true, y_pred, delta) -> _PerSample:
    return _regression(y_true, y_pred,
                       lambda e: np.where(np.abs(e) <= delta, 0.5 * np.square(e), delta * np.abs(e) - 0.5 * delta ** 2),
                       lambda e: np.clip(e, -delta, delta))


# ---------------------------------------------------------------------------------- function forms


def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    """Keras' function of that name: the cross-entropy of one-hot (or probability) targets, one value per sample."""
    return _categorical(y_true, y_pred, from_logits, label_smoothing, axis).values


def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                                    ignore_class: Optional[int] = None) -> np.ndarray:
    """Keras' function of that name: the cross-entropy of integer class targets, one value per sample."""
    return _sparse_categorical(y_true, y_pred, from_logits, ignore_class).values


def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1) -> np.ndarray:
    """Keras' function of that name: the cross-entropy of 0/1 targets, per element then averaged over ``axis``, one value per sample."""
    return _binary(y_true, y_pred, from_logits, label_smoothing, axis).values


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Keras' function of that name: the mean over the last axis of the squared errors, one value per sample."""
    return _mean_squared_error(y_true, y_pred).values


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Keras' function of that name: the mean over the last axis of the absolute errors, one value per sample."""
    return _mean_absolute_error(y_true, y_pred).values


def huber(y_true: ArrayLike, y_pred: ArrayLike, delta: float = 1.0) -> np.ndarray:
    """Keras' function of that name: the mean over the last axis of the Huber loss (quadratic within ``delta``, linear beyond), one value per sample."""
    return _huber(y_true, y_pred, delta).values


# ------------------------------------------------------------------------------------------ classes


def _value_and_grad(per_sample_fn: Callable, y_true, y_pred, sample_weight):
    y_pred = _floating(y_pred)
    per_sample = per_sample_fn(y_true, y_pred)
    loss, dvalues = _reduce(per_sample, sample_weight)
    return loss, per_sample.vjp(dvalues).reshape(y_pred.shape)


class Loss:
    """A loss: per-sample losses (``_per_sample(y_true, y_pred) -> _PerSample``, subclasses define it) reduced
    as Keras' "sum_over_batch_size".

    Attributes:
        name: the loss' name (Keras' default for the class).
        logits_activation: for a cross-entropy, the activation whose logits value_and_grad_from_logits takes
            ("softmax" or "sigmoid"); None for the other losses.
    """

    logits_activation: Optional[str] = None

    def __init__(self, name: str):
        self.name = name

    def _per_sample(self, y_true, y_pred) -> _PerSample:
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        return _reduce(self._per_sample(y_true, y_pred), sample_weight)[0]

    def value_and_grad(self, y_true: ArrayLike, y_pred: ArrayLike,
                       sample_weight: Optional[ArrayLike] = None) -> Tuple[float, np.ndarray]:
        """(loss, dloss/dy_pred), the gradient of y_pred's shape and dtype."""
        return _value_and_grad(self._per_sample, y_true, y_pred, sample_weight)

    def get_config(self) -> dict:
        """The constructor arguments, as JSON values: ``from_config`` rebuilds the loss."""
        return _serialization.constructor_arguments(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _CrossEntropy(Loss):
    """A cross-entropy: subclasses define ``_cross_entropy(y_true, y_pred, from_logits) -> _PerSample``."""

    def __init__(self, name: str, from_logits: bool):
        super().__init__(name)
        self.from_logits = from_logits

    def _cross_entropy(self, y_true, y_pred, from_logits: bool) -> _PerSample:
        raise NotImplementedError

    def _per_sample(self, y_true, y_pred):
        return self._cross_entropy(y_true, y_pred, self.from_logits)

    def value_and_grad_from_logits(self, y_true, logits, sample_weight=None):
        """(loss, dloss/dlogits): the loss of ``logits_activation(logits)`` computed from the logits (whatever
        from_logits says), as Keras does when y_pred comes out of that activation."""
        return _value_and_grad(lambda t, z: self._cross_entropy(t, z, True), y_true, logits, sample_weight)


class CategoricalCrossentropy(_CrossEntropy):
    logits_activation = "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 name: str = "categorical_crossentropy"):
        super().__init__(name, from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis

    def _cross_entropy(self, y_true, y_pred, from_logits):
        return _categorical(y_true, y_pred, from_logits, self.label_smoothing, self.axis)


class SparseCategoricalCrossentropy(_CrossEntropy):
    logits_activation = "softmax"

    def __init__(self, from_logits: bool = False, ignore_class: Optional[int] = None,
                 name: str = "sparse_categorical_crossentropy"):
        super().__init__(name, from_logits)
        self.ignore_class = ignore_class

    def _cross_entropy(self, y_true, y_pred, from_logits):
        return _sparse_categorical(y_true, y_pred, from_logits, self.ignore_class)


class BinaryCrossentropy(_CrossEntropy):
    logits_activation = "sigmoid"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 name: str = "binary_crossentropy"):
        super().__init__(name, from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis

    def _cross_entropy(self, y_true, y_pred, from_logits):
        return _binary(y_true, y_pred, from_logits, self.label_smoothing, self.axis)


class MeanSquaredError(Loss):
    _per_sample = staticmethod(_mean_squared_error)

    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(name)


class MeanAbsoluteError(Loss):
    _per_sample = staticmethod(_mean_absolute_error)

    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(name)


class Huber(Loss):
    def __init__(self, delta: float = 1.0, name: str = "huber_loss"):
        super().__init__(name)
        self.delta = delta

    def _per_sample(self, y_true, y_pred):
        return _huber(y_true, y_pred, self.delta)


# ---------------------------------------------------------------------------------------------- get

_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "huber": Huber,
}
_BY_NAME.update({cls.__name__: cls for cls in set(_BY_NAME.values())})


def get(identifier: Union[str, Dict[str, Any], Loss]) -> Loss:
    """Resolves a loss as Keras' compile does: a Loss passes through; a class name ("MeanSquaredError") gives
    the class with its default name; a function name or alias ("mse") gives the class named by that string;
    a ``{"class_name", "config"}`` dict (a saved model's) gives that class with that config."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return _serialization.deserialize(identifier, _BY_NAME, "loss")
    if isinstance(identifier, str) and identifier in _BY_NAME:
        cls = _BY_NAME[identifier]
        return cls() if identifier == cls.__name__ else cls(name=identifier)
    raise ValueError(f"unknown loss {identifier!r}; known: {', '.join(sorted(_BY_NAME))}")
