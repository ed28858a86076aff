"""Dense: y = activation(x K + b) on the last axis (any leading axes, as Keras)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import activations as activations_module
from .._serialization import Identifier
from .base import Layer, Shape, check_last_dim


class Dense(Layer):
    supports_masking = True

    def __init__(self, units: int, activation: Optional[Identifier] = None, use_bias: bool = True,
                 kernel_initializer: Identifier = "glorot_uniform", bias_initializer: Identifier = "zeros",
                 kernel_regularizer: Optional[Identifier] = None, bias_regularizer: Optional[Identifier] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units: expected a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = activations_module.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self._cache: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None  # x, logits, y

    def build(self, input_shape: Shape) -> None:
        input_dim = check_last_dim(self, input_shape, None, "input dimension")
        self.kernel = self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer)
                     if self.use_bias else None)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None) -> np.ndarray:
        check_last_dim(self, x.shape, self.kernel.shape[0], "input dimension")
        logits = x.astype(self.dtype, copy=False) @ self.kernel.value
        if self.bias is not None:
            logits += self.bias.value
        y = self.activation.forward(logits)
        if training:  # inference writes no state: many threads may run it at once
            self._cache = (x, logits, y)
        return y

    @property
    def last_logits(self):
        """The pre-activation of the last training forward pass (for losses fused with the activation)."""
        return self._saved(self._cache)[1]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, logits, y = self._saved(self._cache)
        return self.backward_from_logits(self.activation.backward(logits, y, dy))

    def backward_from_logits(self, dlogits: np.ndarray) -> np.ndarray:
        """backward() given the gradient w.r.t. the pre-activation x K + b."""
        x = self._saved(self._cache)[0]
        x2d, d2d = x.reshape(-1, x.shape[-1]), dlogits.reshape(-1, self.units)
        self.kernel.grad = x2d.T.astype(self.dtype, copy=False) @ d2d
        if self.bias is not None:
            self.bias.grad = d2d.sum(axis=0)
        self._cache = None
        return dlogits @ self.kernel.value.T
