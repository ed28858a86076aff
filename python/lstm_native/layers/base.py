"""The Layer protocol: Keras' construction and weights, plus an explicit backward pass.

A layer computes ``forward(x, training, mask)``; when training it keeps what its ``backward(dy)`` needs.
``backward`` returns the gradient w.r.t. its input and writes the gradients of its weights into their
``Variable.grad``. Shapes exclude nothing: ``input_shape`` tuples start with the batch dimension (None).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from typing import Any, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from .. import _serialization
from .. import activations as activations_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .._serialization import Identifier
from ..variables import Variable, WeightContainer

# An input or output shape, batch dimension first; None: not known.
Shape = Tuple[Optional[int], ...]

_LAYER_KWARGS = {"name", "trainable", "dtype", "input_shape", "input_dim", "batch_size", "batch_input_shape"}
_name_counts: dict = {}
# while loading: [the number of weights that layers built may still add, the limit], else None
_loading_budget: contextvars.ContextVar[Optional[List[int]]] = contextvars.ContextVar("loading_budget", default=None)


@contextlib.contextmanager
def zero_initialized(max_parameters: int):
    """Layers built inside get zero-filled weights instead of their initializers' values: for loading, where
    a file provides every value (no random numbers drawn, no time spent on initialization). Building more
    than ``max_parameters`` weights in all raises ValueError before they are allocated."""
    token = _loading_budget.set([max_parameters, max_parameters])
    try:
        yield
    finally:
        _loading_budget.reset(token)


def check_shape(shape, what: str) -> tuple:
    """``shape`` as a tuple, each dimension None or a positive integer."""
    shape = tuple(shape)
    if not all(d is None or isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"{what}: expected dimensions that are None or positive integers, got {shape}")
    return shape


def _unique_name(base: str) -> str:
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name: str) -> str:
    """Keras' class-name-to-layer-name rule: LSTM -> lstm, InputLayer -> input_layer."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


_Saved = TypeVar("_Saved")


class Layer(WeightContainer):
    """Base class of every layer."""

    supports_masking = False

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - _LAYER_KWARGS
        if unknown:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                             f"{ {k: kwargs[k] for k in sorted(unknown)} }")
        self.name = kwargs.get("name") or _unique_name(_snake_case(type(self).__name__))
        self.trainable = kwargs.get("trainable", True)
        self.dtype = np.dtype(kwargs.get("dtype") or "float32")
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected float32 or float64, got {self.dtype}")
        input_shape = kwargs.get("input_shape")
        if input_shape is None and kwargs.get("input_dim") is not None:
            input_shape = (kwargs["input_dim"],)
        if kwargs.get("batch_input_shape") is not None:
            self.batch_input_shape: Optional[tuple] = check_shape(kwargs["batch_input_shape"], "batch_input_shape")
        elif input_shape is not None:
            self.batch_input_shape = check_shape((kwargs.get("batch_size"),) + tuple(input_shape), "input_shape")
        else:
            self.batch_input_shape = None
        self.built = False
        self._weights: List[Variable] = []

    # -- weights -----------------------------------------------------------------------------------------
    def add_weight(self, name: str, shape: Sequence[int], initializer: Identifier = "glorot_uniform",
                   regularizer: Optional[Identifier] = None, trainable: bool = True) -> Variable:
        """Creates a weight of ``shape`` (``path`` ``<layer name>/<name>``) drawn from ``initializer``, and tracks it."""
        initializer = initializers_module.get(initializer)  # resolved (so checked) even when not called
        budget = _loading_budget.get()
        if budget is not None:
            budget[0] -= math.prod(shape)
            if budget[0] < 0:
                raise ValueError(f"{self.name}: its weight {name} {tuple(shape)} takes the model past {budget[1]} "
                                 "parameters, the limit of a model file")
        value = np.zeros(shape, self.dtype) if budget is not None else initializer(tuple(shape), dtype=self.dtype)
        variable = Variable(name, np.asarray(value, dtype=self.dtype), path=f"{self.name}/{name}",
                            trainable=trainable, regularizer=regularizers_module.get(regularizer))
        self._weights.append(variable)
        return variable

    def _saved(self, saved: Optional[_Saved]) -> _Saved:
        """What the last training forward pass kept for backward; RuntimeError when there was none."""
        if saved is None:
            raise RuntimeError(f"{self.name}: backward needs a training forward pass first")
        return saved

    @property
    def weights(self) -> List[Variable]:
        """All the layer's weights, in creation order."""
        return list(self._weights)

    @property
    def trainable_weights(self) -> List[Variable]:
        """The weights that training updates (none while ``trainable`` is False)."""
        return [w for w in self._weights if w.trainable and self.trainable]

    @property
    def non_trainable_weights(self) -> List[Variable]:
        """The weights that training leaves alone."""
        return [w for w in self._weights if not (w.trainable and self.trainable)]

    # -- computation -------------------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Creates the weights for inputs of ``input_shape`` (batch dimension first, maybe None)."""
        self.built = True

    # Any: a shape; a list of shapes for a layer of several outputs (an LSTM with return_state).
    def compute_output_shape(self, input_shape: Shape) -> Any:
        """The shape of the output for an input of ``input_shape``."""
        return input_shape

    def compute_mask(self, inputs: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """The mask of this layer's output: the input's mask passes through layers that support masking."""
        return mask if self.supports_masking else None

    # Any: an array; a list of arrays for a layer of several outputs (an LSTM with return_state).
    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None) -> Any:
        """The layer's output for the batch ``x`` (``mask``: (batch, timesteps) booleans, True = valid step)."""
        raise NotImplementedError

    # None: the input has no gradient (an Embedding's integer ids).
    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        """The gradient w.r.t. the input of the last forward(training=True); fills the weights' grads."""
        raise NotImplementedError(f"{type(self).__name__} has no backward pass")

    def __call__(self, x, training: bool = False, mask=None):
        x = np.asarray(x)
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        return self.forward(x, training=training, mask=mask)

    def get_config(self) -> dict:
        """Keras' layer config, in JSON types: the base arguments and every constructor argument (see
        _serialization.constructor_arguments); ``from_config`` rebuilds the layer from it."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        for name, value in _serialization.constructor_arguments(self).items():
            config[name] = _json_argument(value, f"{self.name}: {name}")
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        """The layer that a :meth:`get_config` dict describes."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _json_argument(value, what: str):
    """A constructor argument in JSON types: activations by name; initializers, regularizers and layers as
    ``{"class_name", "config"}`` dicts."""
    if isinstance(value, activations_module.Activation):
        return value.name
    if isinstance(value, (initializers_module.Initializer, regularizers_module.Regularizer, Layer)):
        return _serialization.serialize(value)
    if isinstance(value, (tuple, list)):
        return [_json_argument(v, what) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float, dict)):
        return value
    raise TypeError(f"{what}: {value!r} cannot be written into a config (a JSON value, a library initializer, "
                    "regularizer or activation)")


# The arguments that every layer takes through **kwargs, which no signature default types.
_BASE_ARGUMENT_TYPES = {"name": str, "trainable": bool, "dtype": str, "batch_input_shape": list}


def deserialize_layer(entry, classes: dict) -> Layer:
    """The layer (not built) that a ``{"class_name", "config"}`` dict describes, of one of ``classes`` (name ->
    class); ValueError for anything else. Nothing a config names is imported or run."""
    config = entry.get("config") if isinstance(entry, dict) else None
    for name, expected in _BASE_ARGUMENT_TYPES.items():
        if isinstance(config, dict) and name in config and not isinstance(config[name], expected):
            raise ValueError(f"layer config: {name} must be a {expected.__name__}, got {type(config[name]).__name__}")
    return _serialization.deserialize(entry, classes, "layer")


def check_last_dim(layer: Layer, input_shape, expected: Optional[int], what: str) -> int:
    """The last dimension of input_shape, which must be known (and equal `expected` when given)."""
    if len(input_shape) < 2 or input_shape[-1] is None:
        raise ValueError(f"{layer.name}: the last dimension of the input ({what}) must be known, got {input_shape}")
    if expected is not None and input_shape[-1] != expected:
        raise ValueError(f"{layer.name}: expected {what} {expected}, got input shape {input_shape}")
    return int(input_shape[-1])
