"""LSTM: Keras 3's LSTM layer on the native peephole core (lstm_native.ops).

Weights: kernel W (I, 4H), recurrent_kernel U (H, 4H), bias b (4H,) with gate blocks [i, f, g, o] (Keras'
own layout, so Keras weights load unchanged), and with peepholes the weights `peephole` (3, H) for
"diagonal" or (3, H, H) for "full", gates [i, f, o]. With proj_size = P >= 1 the weights `projection`
W_hr (H, P) project the state, h_t = (o_t ⊙ tanh(c_t)) W_hr, and U is (P, 4H).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import threading

import numpy as np

from .. import cuda
from .. import initializers as initializers_module
from .. import ops, utils
from .. import regularizers as regularizers_module
from .._serialization import Identifier
from .base import Layer, Shape, check_last_dim

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
    device: "cpu" (default) or "cuda": the forward and backward passes run on the current CUDA device (each
        call uploads the weights and the batch once and brings the results back once; see lstm_native.cuda).
        ValueError where CUDA is not available. Not part of get_config: a saved model loads on any machine.
    proj_size: P >= 1 projects the state to P units (LSTMP, Sak et al. 2014; PyTorch's proj_size): the
        layer's output and h have P columns, U shrinks to (P, 4H), at the cost of W_hr (H, P). 0: none.
        projection_initializer / projection_regularizer: those of W_hr. Zoneout is not defined with it.

    Regularization, fused into the native passes (see lstm_native.ops.lstm_forward): Keras' `dropout` and
    `recurrent_dropout` (variational: one mask per sequence), plus `zoneout_h`, `zoneout_c` (Krueger et al.
    2016; their expectation at inference) and `weight_drop` (DropConnect on the recurrent kernel, Merity et
    al. 2017). Each training call draws fresh masks from `seed` (or lstm_native.utils' seeded generator).
    Activity penalties on the output sequence h_1..h_T: Keras' `activity_regularizer` (on the layer's
    output, divided by the batch size as Keras does), and Merity et al.'s activation regularization
    `activation_regularization` = α (α·mean(h_t²)) and temporal activation regularization
    `temporal_activation_regularization` = β (β·mean((h_t - h_{t-1})²)).

    Masked steps carry the state unchanged; their output is the carried h, or zero with
    zero_output_for_mask=True (Keras' RNN argument; Bidirectional sets it to return_sequences).
    """

    supports_masking = True

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Identifier = "glorot_uniform",
                 recurrent_initializer: Identifier = "orthogonal", bias_initializer: Identifier = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Optional[Identifier] = None,
                 recurrent_regularizer: Optional[Identifier] = None, bias_regularizer: Optional[Identifier] = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 seed: Optional[int] = None, peephole: Optional[str] = "diagonal",
                 output_peephole_source: str = "current", peephole_initializer: Identifier = "zeros",
                 peephole_regularizer: Optional[Identifier] = None, device: str = "cpu",
                 zero_output_for_mask: bool = False, zoneout_h: float = 0.0, zoneout_c: float = 0.0,
                 weight_drop: float = 0.0, activity_regularizer: Optional[Identifier] = None,
                 activation_regularization: float = 0.0, temporal_activation_regularization: float = 0.0,
                 proj_size: int = 0, projection_initializer: Identifier = "glorot_uniform",
                 projection_regularizer: Optional[Identifier] = None, **kwargs: Any) -> None:
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
        rates = dict(dropout=dropout, recurrent_dropout=recurrent_dropout, zoneout_h=zoneout_h, zoneout_c=zoneout_c,
                     weight_drop=weight_drop)
        for name, rate in rates.items():
            if not 0 <= rate < 1:
                raise ValueError(f"{name}: expected a rate in [0, 1), got {rate!r}")
        for name, coefficient in (("activation_regularization", activation_regularization),
                                  ("temporal_activation_regularization", temporal_activation_regularization)):
            if not coefficient >= 0:
                raise ValueError(f"{name}: expected a coefficient >= 0, got {coefficient!r}")
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError(f"proj_size: expected an integer >= 0 (0: no projection), got {proj_size!r}")
        if proj_size and (zoneout_h or zoneout_c):
            raise ValueError("zoneout_h, zoneout_c: zoneout is not supported with a projection (proj_size > 0)")
        if unroll:
            raise ValueError("unroll: the native core runs whole sequences; unroll=True has no meaning here")
        cuda.check_device(device, unavailable=ValueError)
        self.units, self.proj_size = int(units), int(proj_size)
        self.projection_initializer, self.projection_regularizer = projection_initializer, projection_regularizer
        self.use_bias, self.unit_forget_bias = use_bias, unit_forget_bias
        self.kernel_initializer, self.recurrent_initializer = kernel_initializer, recurrent_initializer
        self.bias_initializer, self.peephole_initializer = bias_initializer, peephole_initializer
        self.kernel_regularizer, self.recurrent_regularizer = kernel_regularizer, recurrent_regularizer
        self.bias_regularizer, self.peephole_regularizer = bias_regularizer, peephole_regularizer
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.stateful = go_backwards, stateful
        self.peephole, self.output_peephole_source, self.device = peephole, output_peephole_source, device
        self.seed, self.zero_output_for_mask = seed, zero_output_for_mask
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.zoneout_h, self.zoneout_c, self.weight_drop = float(zoneout_h), float(zoneout_c), float(weight_drop)
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        self.activation_regularization = float(activation_regularization)
        self.temporal_activation_regularization = float(temporal_activation_regularization)
        self._losses_by_thread: Dict[int, list] = {}  # thread id -> the activity penalties of its last forward pass
        self._outputs: Optional[Tuple[np.ndarray, np.ndarray]] = None  # the sequence, the output
        self.states: Optional[List[np.ndarray]] = None  # [h, c] carried between calls when stateful
        self._context: Optional[ops.ForwardContext] = None

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected input of shape (batch, timesteps, features), got {input_shape}")
        input_dim = check_last_dim(self, input_shape, None, "features")
        H = self.units
        self.kernel = self.add_weight("kernel", (input_dim, 4 * H), self.kernel_initializer, self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.output_size, 4 * H),
                                                self.recurrent_initializer, self.recurrent_regularizer)
        bias_init = _UnitForgetBias(self.bias_initializer, H) if self.unit_forget_bias else self.bias_initializer
        self.bias = self.add_weight("bias", (4 * H,), bias_init, self.bias_regularizer) if self.use_bias else None
        peephole_shape = {"diagonal": (3, H), "full": (3, H, H), None: None}[self.peephole]
        self.peephole_weights = (self.add_weight("peephole", peephole_shape, self.peephole_initializer,
                                                 self.peephole_regularizer) if peephole_shape else None)
        self.projection = (self.add_weight("projection", (H, self.proj_size), self.projection_initializer,
                                           self.projection_regularizer) if self.proj_size else None)
        self.built = True

    @property
    def output_size(self) -> int:
        """The width of the output and of h: proj_size with a projection, else units."""
        return self.proj_size or self.units

    def projection_saving(self) -> int:
        """Parameters the projection saves against the same layer without one: U shrinks from (H, 4H) to
        (P, 4H) and W_hr (H, P) is added (negative when P is too large to save anything)."""
        return (self.units - self.proj_size) * 4 * self.units - self.units * self.proj_size if self.proj_size else 0

    def compute_output_shape(self, input_shape: Shape) -> Union[Shape, List[Shape]]:
        batch, time, width = input_shape[0], input_shape[1], self.output_size
        output = (batch, time, width) if self.return_sequences else (batch, width)
        return [output, (batch, width), (batch, self.units)] if self.return_state else output

    def compute_mask(self, inputs: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        return mask if self.return_sequences else None

    def reset_states(self) -> None:
        """Forgets the states a stateful layer carries between calls."""
        self.states = None

    def _weights_for_ops(self):
        return (self.kernel.value, self.recurrent_kernel.value, None if self.bias is None else self.bias.value,
                None if self.peephole_weights is None else self.peephole_weights.value)

    def _projection_for_ops(self):
        return None if self.projection is None else self.projection.value

    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None,
                initial_state: Optional[Sequence[np.ndarray]] = None) -> Union[np.ndarray, List[np.ndarray]]:
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
        seed = int((self._rng or utils.generator()).integers(0, 2**63)) if training and self._regularized() else 0
        # Without return_sequences the core keeps no output sequence, unless a penalty on it needs one.
        sequence_needed = (self.return_sequences or self.activation_regularization
                           or self.temporal_activation_regularization)
        out = ops.lstm_forward(x, *self._weights_for_ops(), W_hr=self._projection_for_ops(), peephole=self.peephole,
                               output_peephole_source=self.output_peephole_source, h0=h0, c0=c0, mask=mask,
                               zero_output_for_mask=self.zero_output_for_mask, training=training, seed=seed,
                               device=self.device, return_sequences=bool(sequence_needed), **self.rates)
        if self.stateful:
            self.states = [out.h, out.c]
        output = out.y if self.return_sequences else out.h
        self.losses = self._activity_losses(out.y, output)
        if training:  # inference writes no state shared between threads (stateful layers aside)
            self._context = out.context
            self._outputs = (out.y, output)
        return [output, out.h, out.c] if self.return_state else output

    @property
    def losses(self) -> list:
        """The activity penalties of this thread's last forward pass (per thread, so that threads evaluating
        one model at once each see their own)."""
        return self._losses_by_thread.get(threading.get_ident(), [])

    @losses.setter
    def losses(self, values) -> None:
        self._losses_by_thread[threading.get_ident()] = list(values)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["device"]  # the machine's choice, not the model's: a file saved on a GPU machine loads anywhere
        return config

    @property
    def rates(self) -> dict:
        """The fused regularizers' rates, as lstm_native.ops.lstm_forward takes them."""
        return dict(dropout=self.dropout, recurrent_dropout=self.recurrent_dropout, zoneout_h=self.zoneout_h,
                    zoneout_c=self.zoneout_c, weight_drop=self.weight_drop)

    def trace(self, x: np.ndarray, mask: Optional[np.ndarray] = None,
              initial_state: Optional[Sequence[np.ndarray]] = None) -> dict:
        """Gate traces: {"i", "f", "g", "o", "c", "h"} of every step, each (batch, timesteps, units) (h:
        (batch, timesteps, proj_size) with a projection), for the
        input x (batch, timesteps, features), computed by the native forward pass. The steps are in
        processing order (reversed with go_backwards). Zoneout layers are refused: their inference applies
        zoneout's expectation, which the trace pass does not."""
        if self.zoneout_h or self.zoneout_c:
            raise ValueError(f"{self.name}: trace does not support zoneout (zoneout_h, zoneout_c)")
        x = np.asarray(x)
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        if x.ndim != 3:
            raise ValueError(f"{self.name}: expected input of shape (batch, timesteps, features), got {x.shape}")
        check_last_dim(self, x.shape, self.kernel.shape[0], "features")
        x = x.astype(self.dtype, copy=False)
        mask = None if mask is None else np.asarray(mask, dtype=bool)
        if self.go_backwards:
            x, mask = x[:, ::-1], None if mask is None else mask[:, ::-1]
        h0, c0 = (None, None) if initial_state is None else (np.asarray(s, self.dtype) for s in initial_state)
        return ops.lstm_trace(x, *self._weights_for_ops(), W_hr=self._projection_for_ops(), peephole=self.peephole,
                              output_peephole_source=self.output_peephole_source, h0=h0, c0=c0, mask=mask)

    def _regularized(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def _activity_losses(self, sequence, output):
        losses = []
        if self.activity_regularizer is not None:
            losses.append(self.activity_regularizer(output) / len(output))
        if self.activation_regularization:
            losses.append(self.activation_regularization * float(np.mean(np.square(sequence))))
        if self.temporal_activation_regularization and sequence.shape[1] > 1:
            losses.append(self.temporal_activation_regularization * float(np.mean(np.square(np.diff(sequence, axis=1)))))
        return losses

    def _activity_gradients(self, dy_seq, dy_out):
        """Adds the activity penalties' gradients to those w.r.t. the sequence and the output."""
        sequence, output = self._saved(self._outputs)
        if self.activity_regularizer is not None:
            dy_out = dy_out + self.activity_regularizer.gradient(output) / len(output)
        if not (self.activation_regularization or self.temporal_activation_regularization):
            return dy_seq, dy_out
        extra = np.zeros_like(sequence)
        if self.activation_regularization:
            extra += 2 * self.activation_regularization * sequence / sequence.size
        if self.temporal_activation_regularization and sequence.shape[1] > 1:
            step = np.diff(sequence, axis=1)
            g = 2 * self.temporal_activation_regularization * step / step.size
            extra[:, 1:] += g
            extra[:, :-1] -= g
        return (extra if dy_seq is None else dy_seq + extra), dy_out

    def __call__(self, x, training=False, mask=None, initial_state=None):
        x = np.asarray(x)
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        return self.forward(x, training=training, mask=mask, initial_state=initial_state)

    def backward(self, dy: np.ndarray, dh: Optional[np.ndarray] = None, dc: Optional[np.ndarray] = None) -> np.ndarray:
        """Gradient w.r.t. the input given dy (w.r.t. the output: the sequence, or the last h) and optionally
        the gradients w.r.t. the returned states h and c."""
        context = self._saved(self._context)
        # With go_backwards the output sequence is in processing (reversed) order, as the core computed it.
        dy_seq, dy_out = self._activity_gradients(None, dy)
        if self.return_sequences:
            dy_seq = dy_out if dy_seq is None else dy_seq + dy_out
        else:
            dh = dy_out if dh is None else dh + dy_out
        self._outputs = None
        grads = ops.lstm_backward(context, dy=dy_seq, dh=dh, dc=dc)
        self._context = None
        self.kernel.grad, self.recurrent_kernel.grad = grads.dW, grads.dU
        if self.bias is not None:
            self.bias.grad = grads.db
        if self.peephole_weights is not None:
            self.peephole_weights.grad = grads.dp
        if self.projection is not None:
            self.projection.grad = grads.dW_hr
        return grads.dx[:, ::-1] if self.go_backwards else grads.dx
