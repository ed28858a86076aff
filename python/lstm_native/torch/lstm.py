"""``LSTM``: ``torch.nn.LSTM``'s constructor, forward contract and parameters, on the native core, with
peepholes and fused regularization as keyword-only additions."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import _arguments
from ..ops import _check_variant
from .functional import lstm as lstm_layer

__all__ = ["LSTM"]

_RATES = ("recurrent_dropout", "zoneout_h", "zoneout_c", "weight_drop")


def _check_size(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _reverse_within_lengths(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """x (B, T, F) with each sequence's first lengths[b] steps in reverse order (the padding stays in place);
    its own inverse. Without lengths, all T steps are reversed."""
    if lengths is None:
        return x.flip(1)
    time = x.shape[1]
    steps = torch.arange(time, device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class LSTM(nn.Module):
    """``torch.nn.LSTM`` on lstm_native's core: the same constructor, forward contract
    (``output, (h_n, c_n) = lstm(input, (h_0, c_0))``, hx optional, unbatched 2-D input, ``PackedSequence`` in
    and out) and parameters (``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, Ho), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (4H,), ``weight_hr_l{k}`` (P, H), ``_reverse`` for the second direction; gates i, f, g, o;
    Ho = proj_size or H), so that its state dict and nn.LSTM's load into each other when no peephole is used.

    Keyword-only additions:

    - ``peephole``: None (nn.LSTM's cell), ``"diagonal"`` or ``"full"``; its weights are the parameters
      ``weight_peephole_l{k}`` (and ``_reverse``), (3, H) or (3, H, H), rows for the gates i, f, o:
      peep_k(c) = p[k] * c (diagonal) or c @ p[k] (full).
    - ``output_peephole_source``: ``"current"`` (the output gate peeks at c_t) or ``"previous"`` (c_{t-1}).
    - ``recurrent_dropout``, ``zoneout_h``, ``zoneout_c``, ``weight_drop``: rates in [0, 1), active in
      ``train()`` mode only (see :func:`lstm_native.torch.functional.lstm`); masks seeded from torch's default
      generator. Zoneout is not defined with a projection.

    nn.LSTM's ``dropout`` drops each layer's output but the last's, in training, as nn.LSTM does. All
    parameters start uniform in (-1/sqrt(H), 1/sqrt(H)), as nn.LSTM's.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Union[torch.device, str, None] = None, dtype: Optional[torch.dtype] = None, *,
                 peephole: Optional[str] = None, output_peephole_source: str = "current",
                 recurrent_dropout: float = 0.0, zoneout_h: float = 0.0, zoneout_c: float = 0.0,
                 weight_drop: float = 0.0) -> None:
        super().__init__()
        self._check_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size, peephole,
                              output_peephole_source)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bool(bidirectional)
        self.dropout, self.proj_size = float(dropout), proj_size
        self.peephole, self.output_peephole_source = peephole, output_peephole_source
        for name, value in zip(_RATES, (recurrent_dropout, zoneout_h, zoneout_c, weight_drop)):
            setattr(self, name, _arguments.number(name, value, at_least=0, below=1))
        if proj_size and (self.zoneout_h or self.zoneout_c):
            raise ValueError("zoneout_h, zoneout_c: zoneout is not supported with a projection (proj_size > 0)")
        self._create_parameters(dict(device=device, dtype=dtype))
        self.reset_parameters()

    @staticmethod
    def _check_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout: float, proj_size, peephole,
                         output_peephole_source) -> None:
        """nn.LSTM's checks (its error types), and ours for the additions."""
        _check_size("input_size", input_size, 1)
        _check_size("hidden_size", hidden_size, 1)
        _check_size("num_layers", num_layers, 1)
        _check_size("proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1",
                          stacklevel=3)
        _check_variant(peephole, output_peephole_source)

    @property
    def num_directions(self) -> int:
        """2 for a bidirectional LSTM, else 1."""
        return 2 if self.bidirectional else 1

    def _suffixes(self) -> Tuple[str, ...]:
        return ("", "_reverse")[: self.num_directions]

    def _create_parameters(self, factory: dict) -> None:
        """The parameters in nn.LSTM's order (per layer and direction: weight_ih, weight_hh, bias_ih, bias_hh,
        weight_hr), each direction's peephole weights last."""
        H, Ho = self.hidden_size, self.proj_size or self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else Ho * self.num_directions
            for suffix in self._suffixes():
                shapes: Dict[str, Tuple[int, ...]] = {"weight_ih": (4 * H, layer_input), "weight_hh": (4 * H, Ho)}
                if self.bias:
                    shapes.update(bias_ih=(4 * H,), bias_hh=(4 * H,))
                if self.proj_size:
                    shapes["weight_hr"] = (self.proj_size, H)
                if self.peephole is not None:
                    shapes["weight_peephole"] = (3, H) if self.peephole == "diagonal" else (3, H, H)
                for name, shape in shapes.items():
                    self.register_parameter(f"{name}_l{layer}{suffix}", nn.Parameter(torch.empty(shape, **factory)))

    def reset_parameters(self) -> None:
        """Draws every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as nn.LSTM does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                        peephole=None, output_peephole_source="current", recurrent_dropout=0.0, zoneout_h=0.0,
                        zoneout_c=0.0, weight_drop=0.0)
        return text + "".join(f", {name}={getattr(self, name)!r}" for name, default in defaults.items()
                              if getattr(self, name) != default)

    def _layer_weights(self, layer: int, suffix: str) -> dict:
        """One direction's weights in the op's layout, computed inside the autograd graph: W = weight_ih^T,
        U = weight_hh^T, b = bias_ih + bias_hh, W_hr = weight_hr^T, p as it is."""
        weight = lambda name: getattr(self, f"{name}_l{layer}{suffix}")  # noqa: E731
        return dict(W=weight("weight_ih").t(), U=weight("weight_hh").t(),
                    b=weight("bias_ih") + weight("bias_hh") if self.bias else None,
                    W_hr=weight("weight_hr").t() if self.proj_size else None,
                    p=weight("weight_peephole") if self.peephole is not None else None)

    def _run_direction(self, x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Tensor, layer: int,
                       suffix: str) -> Tuple[Tensor, Tensor, Tensor]:
        reverse = suffix == "_reverse"
        if reverse:
            x = _reverse_within_lengths(x, lengths)
        rates = {name: getattr(self, name) for name in _RATES}
        y, h_n, c_n = lstm_layer(x, h0=h0, c0=c0, lengths=lengths, peephole=self.peephole,
                                 output_peephole_source=self.output_peephole_source, zero_output_for_mask=True,
                                 training=self.training, **rates, **self._layer_weights(layer, suffix))
        return (_reverse_within_lengths(y, lengths) if reverse else y), h_n, c_n

    def _check_input(self, x: Tensor) -> None:
        """nn.LSTM's checks on the input (its error types), naming the argument."""
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(f"input: dtype {x.dtype} does not match the weights' dtype {weight.dtype}. Convert the "
                             f"input: input.to({weight.dtype}), or the model: model.to({x.dtype})")
        if x.device != weight.device:
            raise RuntimeError(f"input: on {x.device}, the parameters on {weight.device}: they must be on the same "
                               "device")
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]}")

    def _initial_states(self, hx, batch: int, like: Tensor, batched: bool) -> Tuple[Tensor, Tensor]:
        """(h_0, c_0), each (num_layers * num_directions, B, ·), zeros when hx is None; checked as nn.LSTM does."""
        layers, H, Ho = self.num_layers * self.num_directions, self.hidden_size, self.proj_size or self.hidden_size
        if hx is None:
            return (like.new_zeros(layers, batch, Ho), like.new_zeros(layers, batch, H))
        if not isinstance(hx, (tuple, list)) or len(hx) != 2 or not all(isinstance(t, Tensor) for t in hx):
            raise TypeError(f"hx: expected a tuple (h_0, c_0) of two tensors, got {type(hx).__name__}")
        h0, c0 = hx
        dims = 3 if batched else 2
        if h0.dim() != dims or c0.dim() != dims:
            raise RuntimeError(f"hx: for {'batched 3-D' if batched else 'unbatched 2-D'} input, h_0 and c_0 should "
                               f"also be {dims}-D but got ({h0.dim()}-D, {c0.dim()}-D) tensors")
        if not batched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        for name, state, size in (("h_0", h0, Ho), ("c_0", c0, H)):
            if tuple(state.shape) != (layers, batch, size):
                raise RuntimeError(f"hx: expected {name} of size {(layers, batch, size)}, got {list(state.shape)}")
            if state.dtype != like.dtype and not torch.is_autocast_enabled(like.device.type):
                raise RuntimeError(f"hx: {name} has dtype {state.dtype}, the input {like.dtype}: they must match")
            if state.device != like.device:
                raise RuntimeError(f"hx: {name} is on {state.device}, the input on {like.device}")
        return h0, c0

    def forward(self, input: Union[Tensor, PackedSequence],
                hx: Optional[Tuple[Tensor, Tensor]] = None,
                ) -> Tuple[Union[Tensor, PackedSequence], Tuple[Tensor, Tensor]]:
        """``output, (h_n, c_n)``: output (T, B, D*Ho) ((B, T, D*Ho) with batch_first, (T, D*Ho) unbatched,
        a PackedSequence for one), h_n (L*D, B, Ho), c_n (L*D, B, H); D = 2 if bidirectional else 1."""
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        if not isinstance(input, Tensor):
            raise TypeError(f"input: expected a Tensor or a PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {input.dim()}D instead")
        self._check_input(input)
        batched = input.dim() == 3
        x = input if not batched else (input if self.batch_first else input.transpose(0, 1))
        x = x if batched else x.unsqueeze(0)
        h0, c0 = self._initial_states(hx, x.shape[0], x, batched)
        y, h_n, c_n = self._run(x, None, h0, c0)
        if not batched:
            return y.squeeze(0), (h_n.squeeze(1), c_n.squeeze(1))
        return (y if self.batch_first else y.transpose(0, 1).contiguous()), (h_n, c_n)

    def _forward_packed(self, packed: PackedSequence, hx):
        """A PackedSequence runs padded in the caller's batch order with its lengths (hx and (h_n, c_n) in that
        order too, as nn.LSTM's), and its output is packed in the input's order of sequences."""
        self._check_input(packed.data)
        x, lengths = pad_packed_sequence(packed, batch_first=True)
        h0, c0 = self._initial_states(hx, x.shape[0], x, True)
        y, h_n, c_n = self._run(x, lengths, h0, c0)
        if packed.sorted_indices is not None:
            y, lengths = y.index_select(0, packed.sorted_indices), lengths[packed.sorted_indices.cpu()]
        data = pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=True).data
        return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), (h_n, c_n)

    def _run(self, x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """All layers over batch-first x (B, T, I) -> (y (B, T, D*Ho), h_n (L*D, B, Ho), c_n (L*D, B, H))."""
        final_h: List[Tensor] = []
        final_c: List[Tensor] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes()):
                k = layer * self.num_directions + direction
                y, h_n, c_n = self._run_direction(x, lengths, h0[k], c0[k], layer, suffix)
                outputs.append(y)
                final_h.append(h_n)
                final_c.append(c_n)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, torch.stack(final_h), torch.stack(final_c)
