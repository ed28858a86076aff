"""One LSTM layer on torch tensors in the core's layout, differentiable: :func:`lstm`."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..ops import _check_variant
from . import _ops  # noqa: F401  (registers torch.ops.lstm_native.*, which lstm() calls)

__all__ = ["lstm"]

_SEED_BOUND = 2**63 - 1  # seeds are drawn as non-negative int64 values


def _check_dtypes(W: Tensor, named: dict) -> None:
    """The tensors' dtypes: all W's, float32 or float64; any under autocast, whose op casts them to float32."""
    if torch.is_autocast_enabled(W.device.type):
        return
    if W.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"W: expected dtype torch.float32 or torch.float64, got {W.dtype}")
    for name, tensor in named.items():
        if tensor is not None and tensor.dtype != W.dtype:
            raise TypeError(f"{name}: expected dtype {W.dtype} (the dtype of W), got {tensor.dtype}")


def _lengths_mask(lengths, x: Tensor) -> Tensor:
    """(B,) sequence lengths -> (B, T) bool mask of right-padded sequences (True = valid step)."""
    lengths = torch.as_tensor(lengths, device=x.device)
    if lengths.dim() != 1 or lengths.shape[0] != x.shape[0]:
        raise ValueError(f"lengths: expected shape ({x.shape[0]},), one length per sequence, got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected an integer tensor, got dtype {lengths.dtype}")
    time = x.shape[1]
    if not torch.compiler.is_compiling() and lengths.numel() and (lengths.min() < 0 or lengths.max() > time):
        raise ValueError(f"lengths: every length must lie in [0, {time}], got {int(lengths.min())}..{int(lengths.max())}")
    return torch.arange(time, device=x.device)[None, :] < lengths[:, None]


def _requires_grad(tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def lstm(
    x: Tensor,
    W: Tensor,
    U: Tensor,
    b: Optional[Tensor] = None,
    p: Optional[Tensor] = None,
    W_hr: Optional[Tensor] = None,
    h0: Optional[Tensor] = None,
    c0: Optional[Tensor] = None,
    lengths=None,
    *,
    peephole: Optional[str] = None,
    output_peephole_source: str = "current",
    zero_output_for_mask: bool = False,
    training: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
    weight_drop: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Runs one LSTM layer over whole sequences -> (y (B, T, Ho), h_n (B, Ho), c_n (B, H)).

    The names, shapes and semantics are those of :func:`lstm_native.ops.lstm_forward` (batch-first x (B, T, I),
    W (I, 4H), U (Ho, 4H), b (4H,), p (3, H) for ``peephole="diagonal"`` or (3, H, H) for ``"full"``, W_hr
    (H, P), h0 (B, Ho), c0 (B, H); Ho = P with a projection, else H), except that ``peephole`` defaults to
    None (PyTorch's cell) and the inputs are tensors. ``lengths`` (B,) marks each sequence's valid steps
    (right padding): past its length a sequence carries its state, its output is the carried h, or zero with
    ``zero_output_for_mask=True``. Differentiable w.r.t. x, W, U, b, p, W_hr, h0 and c0.

    The regularization rates act with ``training=True`` only (else the dropouts are off and zoneout acts as
    its expectation); their masks come from a seed drawn from ``generator`` (torch's default one when None,
    so ``torch.manual_seed`` makes a run reproducible). Gradients with ``training=False`` and zoneout are
    not defined by the core (ValueError).
    """
    kind = _check_variant(peephole, output_peephole_source)
    _check_dtypes(W, dict(x=x, U=U, b=b, p=p, W_hr=W_hr, h0=h0, c0=c0))
    if x.dim() != 3:
        raise ValueError(f"x: expected shape (B, T, I), got {tuple(x.shape)}")
    mask = None if lengths is None else _lengths_mask(lengths, x)
    rates = dict(dropout=float(dropout), recurrent_dropout=float(recurrent_dropout), zoneout_h=float(zoneout_h),
                 zoneout_c=float(zoneout_c), weight_drop=float(weight_drop))
    needs_grad = _requires_grad((x, W, U, b, p, W_hr, h0, c0))
    if not training:  # dropouts are off; zoneout acts as its expectation, which only the inference pass computes
        rates.update(dropout=0.0, recurrent_dropout=0.0, weight_drop=0.0)
        if needs_grad and (rates["zoneout_h"] or rates["zoneout_c"]):
            raise ValueError("zoneout_h, zoneout_c: gradients need training=True with zoneout (its expectation, "
                             "computed without training, has no backward in the core)")
    regularized = training and any(rates.values())
    seed = (torch.randint(0, _SEED_BOUND, (), generator=generator, dtype=torch.int64) if regularized
            else torch.zeros((), dtype=torch.int64))
    y, h_n, c_n, _ = torch.ops.lstm_native.lstm_forward(
        x, W, U, b, p, W_hr, h0, c0, mask, seed, kind, output_peephole_source, bool(zero_output_for_mask),
        needs_grad or regularized, rates["dropout"], rates["recurrent_dropout"], rates["zoneout_h"],
        rates["zoneout_c"], rates["weight_drop"])
    return y, h_n, c_n
