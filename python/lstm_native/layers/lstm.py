"""LSTM: Keras 3's LSTM layer on the native peephole core (lstm_native.ops).

Weights: kernel W (I, 4H), recurrent_kernel U (H, 4H), bias b (4H,) with gate blocks [i, f, g, o] (Keras'
own layout, so Keras weights load unchanged), and with peepholes the weights `peephole` (3, H) for
"diagonal" or (3, H, H) for "full", gates [i, f, o].
"""

from __future__ import annotations

import numpy as np

from .. import initializers as initializers_module
from .. import ops
from .base import Layer, check_last_dim

_PEEPHOLES = ("diagonal", "full", None)


class _UnitForgetBias(initializers_module.Initializer):
    """Keras' unit_forget_bias: the bias initializer's values with the forget gate's block set to 1."""

    def __init__(self, base, units):
        self.base, self.units = initializers_module.get(base), units

    def __call__(self, shape, dtype=np.float32):
        bias = np.asarray(self.base(shape, dtype=dtype), dtype=dtype)
        bias[self.units : 2 * self.units] = 1.0
        return bias


class LSTM(Layer):
    """Long short-term memory layer (Keras 3 arguments), plus our own:

    peephole: "diagonal" (default), "full" or None (the plain LSTM of Keras and PyTorch).
    output_peephole_source: "current" (o_t peeks at c_t, default) or "previous" (c_{t-1}).
    peephole_initializer: initializer of the peephole weights (default "zeros": training starts from the
        plain LSTM).
    device: "cpu" (the CUDA backend is not part of this version).

    Masked steps carry the state unchanged; their output is the carried h, or zero with
    zero_output_for_mask=True (Keras' RNN argument; Bidirectional sets it to return_sequences).
    """

    supports_masking = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, peephole="diagonal",
                 output_peephole_source="current", peephole_initializer="zeros", peephole_regularizer=None,
                 device="cpu", zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units: expected a positive integer, got {units!r}")
        for name, value, supported in (("activation", activation, "tanh"),
                                       ("recurrent_activation", recurrent_activation, "sigmoid")):
            if value != supported:
                raise ValueError(f"{name}: the native cell computes {name}={supported!r} only, got {value!r}")
        if peephole not in _PEEPHOLES:
            raise ValueError(f"peephole: expected one of {_PEEPHOLES}, got {peephole!r}")
        if output_peephole_source not in ("current", "previous"):
            raise ValueError(f"output_peephole_source: expected 'current' or 'previous', got {output_peephole_source!r}")
        for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if value != 0:
                raise ValueError(f"{name}: not supported yet by the native cell (only 0)")
        if unroll:
            raise ValueError("unroll: the native core runs whole sequences; unroll=True has no meaning here")
        if device != "cpu":
            raise ValueError(f"device: only 'cpu' is available in this build, got {device!r}")
        self.units = int(units)
        self.use_bias, self.unit_forget_bias = use_bias, unit_forget_bias
        self.kernel_initializer, self.recurrent_initializer = kernel_initializer, recurrent_initializer
        self.bias_initializer, self.peephole_initializer = bias_initializer, peephole_initializer
        self.kernel_regularizer, self.recurrent_regularizer = kernel_regularizer, recurrent_regularizer
        self.bias_regularizer, self.peephole_regularizer = bias_regularizer, peephole_regularizer
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.stateful = go_backwards, stateful
        self.peephole, self.output_peephole_source, self.device = peephole, output_peephole_source, device
        self.seed, self.zero_output_for_mask = seed, zero_output_for_mask
        self.states = None  # [h, c] carried between calls when stateful
        self._context = None

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected input of shape (batch, timesteps, features), got {input_shape}")
        input_dim = check_last_dim(self, input_shape, None, "features")
        H = self.units
        self.kernel = self.add_weight("kernel", (input_dim, 4 * H), self.kernel_initializer, self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (H, 4 * H), self.recurrent_initializer,
                                                self.recurrent_regularizer)
        bias_init = _UnitForgetBias(self.bias_initializer, H) if self.unit_forget_bias else self.bias_initializer
        self.bias = self.add_weight("bias", (4 * H,), bias_init, self.bias_regularizer) if self.use_bias else None
        peephole_shape = {"diagonal": (3, H), "full": (3, H, H), None: None}[self.peephole]
        self.peephole_weights = (self.add_weight("peephole", peephole_shape, self.peephole_initializer,
                                                 self.peephole_regularizer) if peephole_shape else None)
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, time = input_shape[0], input_shape[1]
        output = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        return [output, (batch, self.units), (batch, self.units)] if self.return_state else output

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def reset_states(self):
        """Forgets the states a stateful layer carries between calls."""
        self.states = None

    def _weights_for_ops(self):
        return (self.kernel.value, self.recurrent_kernel.value, None if self.bias is None else self.bias.value,
                None if self.peephole_weights is None else self.peephole_weights.value)

    def forward(self, x, training=False, mask=None, initial_state=None):
        if x.ndim != 3:
            raise ValueError(f"{self.name}: expected input of shape (batch, timesteps, features), got {x.shape}")
        check_last_dim(self, x.shape, self.kernel.shape[0], "features")
        x = x.astype(self.dtype, copy=False)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
        if self.go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        if initial_state is None and self.stateful and self.states is not None:
            initial_state = self.states
        h0, c0 = (None, None) if initial_state is None else (np.asarray(s, self.dtype) for s in initial_state)
        out = ops.lstm_forward(x, *self._weights_for_ops(), peephole=self.peephole,
                               output_peephole_source=self.output_peephole_source, h0=h0, c0=c0, mask=mask,
                               zero_output_for_mask=self.zero_output_for_mask, training=training)
        self._context = out.context
        if self.stateful:
            self.states = [out.h, out.c]
        output = out.y if self.return_sequences else out.h
        return [output, out.h, out.c] if self.return_state else output

    def __call__(self, x, training=False, mask=None, initial_state=None):
        x = np.asarray(x)
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        return self.forward(x, training=training, mask=mask, initial_state=initial_state)

    def backward(self, dy, dh=None, dc=None):
        """Gradient w.r.t. the input given dy (w.r.t. the output: the sequence, or the last h) and optionally
        the gradients w.r.t. the returned states h and c."""
        if self._context is None:
            raise ValueError(f"{self.name}: backward() needs a forward pass with training=True first")
        # With go_backwards the output sequence is in processing (reversed) order, as the core computed it.
        if self.return_sequences:
            dy_seq = dy
        else:
            dy_seq, dh = None, dy if dh is None else dh + dy
        grads = ops.lstm_backward(self._context, dy=dy_seq, dh=dh, dc=dc)
        self._context = None
        self.kernel.grad, self.recurrent_kernel.grad = grads.dW, grads.dU
        if self.bias is not None:
            self.bias.grad = grads.db
        if self.peephole_weights is not None:
            self.peephole_weights.grad = grads.dp
        return grads.dx[:, ::-1] if self.go_backwards else grads.dx

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "peephole": self.peephole,
                "output_peephole_source": self.output_peephole_source, "unit_forget_bias": self.unit_forget_bias}
