"""Bidirectional: one recurrent layer over the sequence, a copy of it over the reversed sequence, merged."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

import copy
import reprlib

import numpy as np

from .. import _serialization
from .base import Layer, Shape, deserialize_layer
from .lstm import LSTM

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)
# The layers that a Bidirectional's config may wrap (what file_rules allows there too).
_RECURRENT_CLASSES = {"LSTM": LSTM}


def _is_recurrent(layer) -> bool:
    return hasattr(layer, "go_backwards") and hasattr(layer, "return_sequences")


def _not_recurrent(what: str, found: str) -> ValueError:
    return ValueError(f"{what}: expected a recurrent layer such as LSTM, got {found}")


def _check_recurrent(layer, what: str) -> None:
    if not _is_recurrent(layer):
        raise _not_recurrent(what, type(layer).__name__)
    if getattr(layer, "return_state", False):
        raise ValueError(f"{what}: return_state=True is not supported inside Bidirectional")
    if layer.built:
        raise ValueError(f"{what}: pass a layer that is not built yet")


class Bidirectional(Layer):
    supports_masking = True

    def __init__(self, layer: LSTM, merge_mode: Optional[str] = "concat", backward_layer: Optional[LSTM] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {_MERGE_MODES}, got {merge_mode!r}")
        _check_recurrent(layer, "layer")
        self.merge_mode = merge_mode
        self.forward_layer = layer
        if backward_layer is None:
            backward_layer = copy.deepcopy(layer)
            backward_layer.go_backwards = not layer.go_backwards
        else:
            _check_recurrent(backward_layer, "backward_layer")
            for name in ("return_sequences", "units", "proj_size"):
                if getattr(backward_layer, name, None) != getattr(layer, name, None):
                    raise ValueError(f"backward_layer: {name} must be the same as the layer's")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("backward_layer: go_backwards must be the opposite of the layer's")
        self.backward_layer = backward_layer
        name = layer.name.removeprefix("forward_")  # so that a rebuild from get_config keeps the names
        self.forward_layer.name, self.backward_layer.name = f"forward_{name}", f"backward_{name}"
        self.return_sequences = layer.return_sequences
        for sublayer in (self.forward_layer, self.backward_layer):
            sublayer.zero_output_for_mask = self.return_sequences  # as Keras forces it
        self._outputs: Optional[Tuple[np.ndarray, np.ndarray]] = None  # forward's, backward's

    def build(self, input_shape: Shape) -> None:
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self.built = True

    @property
    def weights(self):
        return self.forward_layer.weights + self.backward_layer.weights

    @property
    def trainable_weights(self):
        return self.forward_layer.trainable_weights + self.backward_layer.trainable_weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if w not in self.trainable_weights]

    def compute_output_shape(self, input_shape: Shape) -> Union[Shape, List[Shape]]:
        """The merged output's shape; with merge_mode=None, a list of the two directions' shapes (two outputs,
        which a Sequential model refuses when the layer is added)."""
        shape = self.forward_layer.compute_output_shape(input_shape)
        assert isinstance(shape, tuple)  # one output: __init__ refuses return_state
        if self.merge_mode is None:
            return [shape, shape]
        # The LSTM's output width (the last dimension) is always known; Shape allows None for any dimension.
        return shape[:-1] + (2 * shape[-1],) if self.merge_mode == "concat" else shape  # type: ignore[operator]

    def compute_mask(self, inputs: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        return mask if self.return_sequences else None

    def _align(self, y_backward):
        """The backward layer's outputs in forward time order."""
        return y_backward[:, ::-1] if self.return_sequences else y_backward

    def forward(self, x: np.ndarray, training: bool = False,
                mask: Optional[np.ndarray] = None) -> Union[np.ndarray, List[np.ndarray]]:
        y_forward = self.forward_layer.forward(x, training=training, mask=mask)
        y_backward = self._align(self.backward_layer.forward(x, training=training, mask=mask))
        assert isinstance(y_forward, np.ndarray)  # one output: __init__ refuses return_state
        if training:  # inference writes no state: many threads may run it at once
            self._outputs = (y_forward, y_backward)
        if self.merge_mode == "concat":
            return np.concatenate([y_forward, y_backward], axis=-1)
        if self.merge_mode == "sum":
            return y_forward + y_backward
        if self.merge_mode == "mul":
            return y_forward * y_backward
        if self.merge_mode == "ave":
            return (y_forward + y_backward) / 2
        return [y_forward, y_backward]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y_forward, y_backward = self._saved(self._outputs)
        if self.merge_mode == "concat":
            units = y_forward.shape[-1]
            d_forward, d_backward = dy[..., :units], dy[..., units:]
        elif self.merge_mode == "sum":
            d_forward = d_backward = dy
        elif self.merge_mode == "mul":
            d_forward, d_backward = dy * y_backward, dy * y_forward
        elif self.merge_mode == "ave":
            d_forward = d_backward = dy / 2
        else:
            d_forward, d_backward = dy
        self._outputs = None
        dx = self.forward_layer.backward(np.ascontiguousarray(d_forward))
        return dx + self.backward_layer.backward(np.ascontiguousarray(self._align(d_backward)))

    def get_config(self) -> dict:
        # the base config holds merge_mode and backward_layer; the wrapped layer is kept as forward_layer
        return {**super().get_config(), "layer": _serialization.serialize(self.forward_layer)}

    @classmethod
    def from_config(cls, config: dict) -> Bidirectional:
        config = dict(config)
        for name in ("layer", "backward_layer"):
            if config.get(name) is not None:
                config[name] = _deserialize_recurrent(config[name], name)
        return cls(**config)


def _deserialize_recurrent(entry, what: str):
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    if isinstance(class_name, str) and class_name not in _RECURRENT_CLASSES:
        raise _not_recurrent(what, reprlib.repr(class_name))
    return deserialize_layer(entry, _RECURRENT_CLASSES)


def recurrent_layers(layer) -> list:
    """The recurrent layers (LSTMs) of `layer`: a Bidirectional's two, the layer itself, or none."""
    if isinstance(layer, Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer] if _is_recurrent(layer) else []
