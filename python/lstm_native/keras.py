"""lstm_native.keras: Keras 3's LSTM layer on lstm_native's PyTorch operator, for ``KERAS_BACKEND=torch``.

:class:`LSTM` takes ``keras.layers.LSTM``'s arguments and weights (``kernel`` (I, 4H), ``recurrent_kernel``
(H, 4H), ``bias`` (4H,), gate blocks [i, f, c, o]: Keras' own layout, so ``set_weights(keras_lstm.get_weights())``
copies a Keras LSTM), plus ours: peepholes (weights ``peephole``, (3, H) or (3, H, H), gates [i, f, o]), a
projection (``projection`` W_hr (H, P)), zoneout and weight drop. Forward and backward are those of
:func:`lstm_native.torch.functional.lstm`, one native call per sequence batch instead of Keras' step loop.

Keras fixes its backend at its first import in a process: set ``KERAS_BACKEND=torch`` before it. This module
imports on any backend (it never sets the backend); constructing the layer on another one raises RuntimeError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import keras
import torch
from torch import Tensor

from . import _arguments
from ._serialization import Identifier

if TYPE_CHECKING:
    from .layers.base import Shape
from .torch import functional

__all__ = ["LSTM"]

_PEEPHOLES = (None, "diagonal", "full")
# weight name -> the prefix of its arguments (kernel_initializer, recurrent_regularizer, peephole_constraint, ...)
_ARGUMENT_PREFIX = {"kernel": "kernel", "recurrent_kernel": "recurrent", "bias": "bias", "peephole": "peephole",
                    "projection": "projection"}


def _check_backend() -> None:
    backend = keras.backend.backend()
    if backend != "torch":
        raise RuntimeError(
            f"lstm_native.keras.LSTM runs on Keras' torch backend only, and this process runs Keras on {backend!r}: "
            "set the environment variable KERAS_BACKEND=torch before the first `import keras`")


def _native_activation(name: str, value, supported: str) -> str:
    """``supported`` if ``value`` names that activation (a string or Keras' function), else ValueError."""
    try:
        given = keras.activations.serialize(keras.activations.get(value))
    except (ValueError, TypeError):
        given = value
    if given != supported:
        raise ValueError(f"{name}: the native cell computes {name}={supported!r} only, got {value!r}")
    return supported


# functional.lstm's W, U, b, p, W_hr (None for a weight the layer lacks)
_WeightTensors = Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]


def _tensor(variable) -> Optional[Tensor]:
    return None if variable is None else variable.value


def _rate(name: str, value) -> float:
    return _arguments.number(name, value, at_least=0.0, below=1.0)


class _UnitForgetBias(keras.initializers.Initializer):
    """Keras' unit_forget_bias (as its LSTMCell builds it): the forget gate's block is ones, the other blocks
    come from ``base``."""

    def __init__(self, base, units: int):
        self.base, self.units = base, units

    def __call__(self, shape, dtype=None):
        H = self.units
        return keras.ops.concatenate([self.base((H,), dtype=dtype), keras.initializers.get("ones")((H,), dtype=dtype),
                                      self.base((2 * H,), dtype=dtype)])


def _compact(tensor: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """tensor (B, T, ...) with each sequence's steps taken in ``order`` (B, T)."""
    index = order.reshape(*order.shape, *(1,) * (tensor.dim() - 2)).expand(*order.shape, *tensor.shape[2:])
    return torch.gather(tensor, 1, index)


@keras.saving.register_keras_serializable(package="lstm_native")
class LSTM(keras.layers.Layer):
    """``keras.layers.LSTM`` on lstm_native's native passes (Keras' torch backend only), with Keras' arguments:
    ``activation`` must be "tanh" and ``recurrent_activation`` "sigmoid" (the native cell's; other values raise
    ValueError), ``unroll=True`` and ``use_cudnn=True`` raise ValueError (the native core runs whole sequences),
    ``zero_output_for_mask`` is Keras' RNN argument. Masks (from ``Masking``, ``Embedding(mask_zero=True)`` or
    ``mask=``) may mark any steps, as in Keras: masked steps carry the state, their output is the previous
    step's output (zero before the first unmasked step), or zero with ``zero_output_for_mask=True``.

    Ours, keyword-only:
        peephole: None (default: Keras' cell, its weights copy both ways), "diagonal" or "full".
        output_peephole_source: "current" (o_t peeks at c_t, default) or "previous" (c_{t-1}).
        peephole_initializer / _regularizer / _constraint: those of the ``peephole`` weights (default zeros).
        proj_size: P >= 1 projects h to P units (the output and h have P columns; ``recurrent_kernel`` is
            (P, 4H)); projection_initializer / _regularizer / _constraint: those of ``projection``.
        zoneout_h, zoneout_c, weight_drop: rates in [0, 1) of zoneout (not with a projection) and DropConnect
            on the recurrent kernel, active in training only, as ``dropout`` and ``recurrent_dropout``
            (variational: one mask per sequence, as Keras'). Their masks are drawn from ``seed`` through a
            keras.random.SeedGenerator, as Keras' dropout masks are.
    """

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Identifier = "glorot_uniform",
                 recurrent_initializer: Identifier = "orthogonal", bias_initializer: Identifier = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Optional[Identifier] = None,
                 recurrent_regularizer: Optional[Identifier] = None, bias_regularizer: Optional[Identifier] = None,
                 activity_regularizer: Optional[Identifier] = None, kernel_constraint: Optional[Identifier] = None,
                 recurrent_constraint: Optional[Identifier] = None, bias_constraint: Optional[Identifier] = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: Optional[int] = None,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 stateful: bool = False, unroll: bool = False, use_cudnn: Union[str, bool] = "auto",
                 zero_output_for_mask: bool = False, *, peephole: Optional[str] = None,
                 output_peephole_source: str = "current", peephole_initializer: Identifier = "zeros",
                 peephole_regularizer: Optional[Identifier] = None, peephole_constraint: Optional[Identifier] = None,
                 proj_size: int = 0, projection_initializer: Identifier = "glorot_uniform",
                 projection_regularizer: Optional[Identifier] = None,
                 projection_constraint: Optional[Identifier] = None, zoneout_h: float = 0.0, zoneout_c: float = 0.0,
                 weight_drop: float = 0.0, **kwargs: Any):
        _check_backend()
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = _arguments.integer("units", units, at_least=1)
        self.activation = _native_activation("activation", activation, "tanh")
        self.recurrent_activation = _native_activation("recurrent_activation", recurrent_activation, "sigmoid")
        if _arguments.boolean("unroll", unroll):
            raise ValueError("unroll: the native core runs whole sequences; unroll=True has no meaning here")
        if _arguments.choice("use_cudnn", use_cudnn, ("auto", True, False)) is True:
            raise ValueError("use_cudnn: this layer runs lstm_native's operator, never cuDNN; use_cudnn=True "
                             "cannot be honoured ('auto' or False)")
        self.peephole = _arguments.choice("peephole", peephole, _PEEPHOLES)
        self.output_peephole_source = _arguments.choice("output_peephole_source", output_peephole_source,
                                                        ("current", "previous"))
        self.proj_size = _arguments.integer("proj_size", proj_size, at_least=0)
        self.rates = {name: _rate(name, value) for name, value in
                      (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("zoneout_h", zoneout_h),
                       ("zoneout_c", zoneout_c), ("weight_drop", weight_drop))}
        if self.proj_size and (self.rates["zoneout_h"] or self.rates["zoneout_c"]):
            raise ValueError("zoneout_h, zoneout_c: zoneout is not supported with a projection (proj_size > 0)")
        for name, value in (("use_bias", use_bias), ("unit_forget_bias", unit_forget_bias),
                            ("return_sequences", return_sequences), ("return_state", return_state),
                            ("go_backwards", go_backwards), ("stateful", stateful),
                            ("zero_output_for_mask", zero_output_for_mask)):
            setattr(self, name, _arguments.boolean(name, value))
        self.use_cudnn = use_cudnn
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if any(self.rates.values()) else None
        self.initializers = {name: keras.initializers.get(value) for name, value in
                             (("kernel", kernel_initializer), ("recurrent_kernel", recurrent_initializer),
                              ("bias", bias_initializer), ("peephole", peephole_initializer),
                              ("projection", projection_initializer))}
        self.regularizers = {name: keras.regularizers.get(value) for name, value in
                             (("kernel", kernel_regularizer), ("recurrent_kernel", recurrent_regularizer),
                              ("bias", bias_regularizer), ("peephole", peephole_regularizer),
                              ("projection", projection_regularizer))}
        self.constraints = {name: keras.constraints.get(value) for name, value in
                            (("kernel", kernel_constraint), ("recurrent_kernel", recurrent_constraint),
                             ("bias", bias_constraint), ("peephole", peephole_constraint),
                             ("projection", projection_constraint))}
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)
        # (h, c) carried between calls when stateful (not weights, as in Keras)
        self.states: Optional[Tuple[Tensor, Tensor]] = None

    # Keras' LSTM exposes its rates as attributes
    dropout = property(lambda self: self.rates["dropout"], doc="The rate of input dropout.")
    recurrent_dropout = property(lambda self: self.rates["recurrent_dropout"], doc="The rate of recurrent dropout.")
    zoneout_h = property(lambda self: self.rates["zoneout_h"], doc="The rate of zoneout of h.")
    zoneout_c = property(lambda self: self.rates["zoneout_c"], doc="The rate of zoneout of c.")
    weight_drop = property(lambda self: self.rates["weight_drop"], doc="The rate of DropConnect on the recurrent kernel.")

    @property
    def output_size(self) -> int:
        """The width of the output and of h: proj_size with a projection, else units."""
        return self.proj_size or self.units

    def _add(self, name: str, shape, initializer=None):
        return self.add_weight(shape=shape, name=name, initializer=initializer or self.initializers[name],
                               regularizer=self.regularizers[name], constraint=self.constraints[name])

    def build(self, sequences_shape: Shape, initial_state_shape: Optional[Sequence[Shape]] = None) -> None:
        """Creates the weights for sequences of ``sequences_shape`` (batch, timesteps, features)."""
        H = self.units
        self.kernel = self._add("kernel", (sequences_shape[-1], 4 * H))
        self.recurrent_kernel = self._add("recurrent_kernel", (self.output_size, 4 * H))
        bias_initializer = (_UnitForgetBias(self.initializers["bias"], H) if self.unit_forget_bias
                            else self.initializers["bias"])
        self.bias = self._add("bias", (4 * H,), bias_initializer) if self.use_bias else None
        peephole_shape = {None: None, "diagonal": (3, H), "full": (3, H, H)}[self.peephole]
        self.peephole_weights = self._add("peephole", peephole_shape) if peephole_shape else None
        self.projection = self._add("projection", (H, self.proj_size)) if self.proj_size else None

    def reset_state(self) -> None:
        """Forgets the states a stateful layer carries between calls: the next call starts from zeros."""
        self.states = None

    reset_states = reset_state  # Keras' alias

    def _generator(self, device) -> torch.Generator | None:
        """A torch generator seeded from the next state of the layer's SeedGenerator, or None when no
        regularization is active. Both halves of the state make the seed (Keras' torch backend adds them, so
        that seed 7's second call draws what seed 8's first does)."""
        if self.seed_generator is None:
            return None
        first, second = (int(half) & 0xFFFFFFFF for half in self.seed_generator.next())
        return torch.Generator(device=device).manual_seed(first << 32 | second)

    def call(self, sequences: Tensor, initial_state: Optional[Sequence[Tensor]] = None, mask: Optional[Tensor] = None,
             training: Optional[bool] = False) -> Union[Tensor, List[Tensor]]:
        """The layer's outputs (and final states with ``return_state``) for ``sequences``, on the native operator."""
        x = sequences
        if initial_state is None and self.stateful and self.states is not None:
            if self.states[0].shape[0] != x.shape[0]:
                raise ValueError(f"{self.name}: a stateful layer's batch size must stay {self.states[0].shape[0]} "
                                 f"(the batch size of its carried states), got {x.shape[0]}")
            initial_state = self.states
        h0, c0 = (None, None) if initial_state is None else (
            keras.ops.convert_to_tensor(state, dtype=self.compute_dtype) for state in initial_state)
        if mask is not None:
            mask = keras.ops.convert_to_tensor(mask).to(device=x.device, dtype=torch.bool)
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask: expected shape {tuple(x.shape[:2])} (batch, timesteps), "
                                 f"got {tuple(mask.shape)}")
        if self.go_backwards:
            x = torch.flip(x, (1,))
            mask = None if mask is None else torch.flip(mask, (1,))
        weights: _WeightTensors = (self.kernel.value, self.recurrent_kernel.value, _tensor(self.bias),
                                   _tensor(self.peephole_weights), _tensor(self.projection))
        options = dict(peephole=self.peephole, output_peephole_source=self.output_peephole_source,
                       training=bool(training), **self.rates)
        if any(self.rates.values()) and training:
            options["generator"] = self._generator(x.device)
        if mask is None:
            y, h, c = functional.lstm(x, *weights, h0, c0, zero_output_for_mask=self.zero_output_for_mask, **options)
            last = h
        else:
            y, h, c = self._masked_lstm(x, mask, weights, h0, c0, options)
            last = y[:, -1]
        if self.stateful:
            self.states = (h.detach(), c.detach())
        output = y if self.return_sequences else last
        return [output, h, c] if self.return_state else output

    def _masked_lstm(self, x, mask, weights: _WeightTensors, h0, c0, options):
        """Keras' masked RNN with the operator's lengths: each sequence's unmasked steps are moved to the front
        (a stable sort keeps their order), run as a right-padded batch, and the outputs moved back; a masked
        step's output is the output of the last unmasked step before it (zero before the first one)."""
        order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)
        lengths = mask.sum(1)
        y, h, c = functional.lstm(_compact(x, order), *weights, h0, c0, lengths, zero_output_for_mask=True, **options)
        seen = torch.cumsum(mask, 1)  # unmasked steps up to and including each step
        y = _compact(y, (seen - 1).clamp(min=0))
        keep = (mask if self.zero_output_for_mask else seen > 0)[:, :, None]
        return torch.where(keep, y, torch.zeros((), dtype=y.dtype, device=y.device)), h, c

    def compute_output_shape(self, sequences_shape: Shape,
                             initial_state_shape: Optional[Sequence[Shape]] = None) -> Union[Shape, List[Shape]]:
        """The output shape (and the states' shapes with ``return_state``), as Keras' LSTM."""
        batch, time = sequences_shape[0], sequences_shape[1]
        output = (batch, time, self.output_size) if self.return_sequences else (batch, self.output_size)
        return [output, (batch, self.output_size), (batch, self.units)] if self.return_state else output

    def compute_mask(self, _: Tensor, mask: Optional[Tensor] = None) -> Union[Optional[Tensor], List[Optional[Tensor]]]:
        """The output's mask: the input's with ``return_sequences``, else None (and None for the states)."""
        output_mask = mask if self.return_sequences else None
        return [output_mask, None, None] if self.return_state else output_mask

    def get_config(self) -> Dict[str, Any]:
        def serialized(kind, table):
            return {f"{_ARGUMENT_PREFIX[name]}_{kind}": keras.saving.serialize_keras_object(value)
                    for name, value in table.items()}

        config = dict(
            units=self.units, activation=self.activation, recurrent_activation=self.recurrent_activation,
            use_bias=self.use_bias, unit_forget_bias=self.unit_forget_bias, seed=self.seed,
            return_sequences=self.return_sequences, return_state=self.return_state,
            go_backwards=self.go_backwards, stateful=self.stateful, unroll=False, use_cudnn=self.use_cudnn,
            zero_output_for_mask=self.zero_output_for_mask, peephole=self.peephole,
            output_peephole_source=self.output_peephole_source, proj_size=self.proj_size, **self.rates,
            **serialized("initializer", self.initializers), **serialized("regularizer", self.regularizers),
            **serialized("constraint", self.constraints))
        return {**super().get_config(), **config}
