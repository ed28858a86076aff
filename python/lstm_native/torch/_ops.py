"""The PyTorch operators over the native core: ``torch.ops.lstm_native.lstm_forward`` and ``lstm_backward``.

One LSTM layer in the core's layout, batch-first (lstm_native.ops states the shapes and the cell):

    x (B, T, I)   W (I, 4H)   U (Ho, 4H)   b (4H,)?   p (3, H) | (3, H, H) ?   W_hr (H, P)?
    h0 (B, Ho)?   c0 (B, H)?   mask (B, T) bool?   seed () int64

Ho = P with a projection, else H. ``peephole`` is the core's variant name ("none", "diagonal", "full").
``training`` selects the core's training pass: it draws the regularization masks from ``seed`` and returns
the workspace that ``lstm_backward`` needs; without it the workspace is empty and zoneout acts as its
expectation. The seed is a tensor so that a compiled graph draws it without a ``.item()`` in its trace.

Contiguous CPU tensors reach the core in place through ``.numpy()`` (others are made contiguous first); the
core allocates the outputs, which become tensors without a copy. Tensors on other devices raise.
The registrations (fake implementations, the autograd formula, autocast) make the forward op traceable by
``torch.compile`` and ``torch.export`` and differentiable by autograd.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._backend import core as _core

__all__ = ["lstm_forward", "lstm_backward", "lstm_backward_spending", "training_workspace_numel"]

_SEED_MODULUS = 2**64  # the core's seed is an unsigned 64-bit integer; ours is an int64 tensor


def training_workspace_numel(batch, time, input_size, hidden_size, output_size, zoneout: bool, projected: bool):
    """Elements of the core's training workspace (its ``training_workspace_size``), written with plain
    arithmetic so that it also works on the symbolic sizes of a traced graph (a test checks it against the
    core's): x time-major, the gates, h and c of every step and the one before, the pre-zoneout c with
    zoneout and the unprojected output with a projection."""
    per_step = input_size + 4 * hidden_size + (hidden_size if zoneout else 0) + (hidden_size if projected else 0)
    return time * batch * per_step + (time + 1) * batch * (output_size + hidden_size)


def _check_device(name: str, tensor: Optional[Tensor]) -> None:
    if tensor is not None and tensor.device.type != "cpu":
        raise RuntimeError(
            f"{name}: a tensor on {tensor.device}: lstm_native.torch runs on the CPU only for now (the CUDA "
            "backend is not yet reachable from PyTorch); move the module and its inputs to the CPU"
        )


def _numpy(name: str, tensor: Optional[Tensor]):
    """The tensor's memory as a numpy array (a view: contiguous tensors are not copied), or None."""
    if tensor is None:
        return None
    _check_device(name, tensor)
    return tensor.detach().contiguous().numpy()


def _seed(seed: Tensor) -> int:
    return int(seed) % _SEED_MODULUS


def _regularization(dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed: Tensor) -> dict:
    return dict(dropout=dropout, recurrent_dropout=recurrent_dropout, zoneout_h=zoneout_h, zoneout_c=zoneout_c,
                weight_drop=weight_drop, seed=_seed(seed))


def _weights(W, U, b, p, W_hr) -> dict:
    return dict(W=_numpy("W", W), U=_numpy("U", U), b=_numpy("b", b), p=_numpy("p", p), W_hr=_numpy("W_hr", W_hr))


@torch.library.custom_op("lstm_native::lstm_forward", mutates_args=())
def lstm_forward(
    x: Tensor, W: Tensor, U: Tensor, b: Optional[Tensor], p: Optional[Tensor], W_hr: Optional[Tensor],
    h0: Optional[Tensor], c0: Optional[Tensor], mask: Optional[Tensor], seed: Tensor,
    peephole: str, output_peephole_source: str, zero_output_for_mask: bool, training: bool,
    dropout: float, recurrent_dropout: float, zoneout_h: float, zoneout_c: float, weight_drop: float,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One layer's forward -> (y (B, T, Ho), h_n (B, Ho), c_n (B, H), workspace (1-d; empty unless training))."""
    x_array = _numpy("x", x)
    workspace = torch.empty(0, dtype=W.dtype)
    if training:  # the core writes into our tensor, which then travels to the backward op
        B, T, I = x.shape
        H, Ho = U.shape[1] // 4, U.shape[0]
        workspace = torch.empty(training_workspace_numel(B, T, I, H, Ho, zoneout_h > 0 or zoneout_c > 0,
                                                         W_hr is not None), dtype=W.dtype)
    y, h, c, _ = _core.forward(
        x=x_array, h0=_numpy("h0", h0), c0=_numpy("c0", c0), mask=_numpy("mask", mask), training=training,
        workspace=workspace.numpy() if training else None, peephole=peephole,
        output_peephole_source=output_peephole_source, zero_output_for_mask=zero_output_for_mask,
        **_weights(W, U, b, p, W_hr), **_regularization(dropout, recurrent_dropout, zoneout_h, zoneout_c,
                                                        weight_drop, seed),
    )
    return torch.from_numpy(y), torch.from_numpy(h), torch.from_numpy(c), workspace


@lstm_forward.register_fake
def _(x, W, U, b, p, W_hr, h0, c0, mask, seed, peephole, output_peephole_source, zero_output_for_mask, training,
      dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop):
    B, T, I = x.shape
    H, Ho = U.shape[1] // 4, U.shape[0]
    size = training_workspace_numel(B, T, I, H, Ho, zoneout_h > 0 or zoneout_c > 0, W_hr is not None)
    return (x.new_empty(B, T, Ho, dtype=W.dtype), x.new_empty(B, Ho, dtype=W.dtype),
            x.new_empty(B, H, dtype=W.dtype), x.new_empty(size if training else 0, dtype=W.dtype))


def _backward_op(name: str, spends_workspace: bool):
    """The backward operator ``name``: after ``lstm_forward(..., training=True)`` -> [dx, dh0, dc0, dW, dU, db,
    dp, dW_hr], the last three empty where the forward had no b, p or W_hr. The core spends the workspace it
    reads: ``lstm_backward`` gives it a copy, so that the graph can run backward again (retain_graph=True,
    gradcheck); ``lstm_backward_spending`` gives it the workspace itself (declared as mutated), for a backward
    that autograd runs only once."""

    def backward(
        dy: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor], workspace: Tensor, batch: int,
        time: int, W: Tensor, U: Tensor, b: Optional[Tensor], p: Optional[Tensor], W_hr: Optional[Tensor],
        mask: Optional[Tensor], seed: Tensor, peephole: str, output_peephole_source: str,
        zero_output_for_mask: bool, dropout: float, recurrent_dropout: float, zoneout_h: float, zoneout_c: float,
        weight_drop: float,
    ) -> List[Tensor]:
        _check_device("workspace", workspace)
        grads = _core.backward(
            dy=_numpy("dy", dy), dh_n=_numpy("dh_n", dh_n), dc_n=_numpy("dc_n", dc_n),
            workspace=(workspace if spends_workspace else workspace.clone()).detach().numpy(), batch=batch,
            time=time, mask=_numpy("mask", mask), peephole=peephole, output_peephole_source=output_peephole_source,
            zero_output_for_mask=zero_output_for_mask, **_weights(W, U, b, p, W_hr),
            **_regularization(dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed),
        )
        return [torch.empty(0, dtype=W.dtype) if grad is None else torch.from_numpy(grad) for grad in grads]

    op = torch.library.custom_op(name, backward, mutates_args=("workspace",) if spends_workspace else ())
    op.register_fake(_backward_fake)
    return op


def _backward_fake(dy, dh_n, dc_n, workspace, batch, time, W, U, b, p, W_hr, mask, seed, peephole,
                   output_peephole_source, zero_output_for_mask, dropout, recurrent_dropout, zoneout_h, zoneout_c,
                   weight_drop):
    I, H, Ho = W.shape[0], U.shape[1] // 4, U.shape[0]

    def like(tensor):  # contiguous, as the core's arrays (empty_like would copy a transposed view's strides)
        return W.new_empty(0) if tensor is None else W.new_empty(tensor.shape)

    return [W.new_empty(batch, time, I), W.new_empty(batch, Ho), W.new_empty(batch, H), like(W), like(U), like(b),
            like(p), like(W_hr)]


lstm_backward = _backward_op("lstm_native::lstm_backward", spends_workspace=False)
lstm_backward_spending = _backward_op("lstm_native::lstm_backward_spending", spends_workspace=True)


def _runs_once() -> bool:
    """Whether eager autograd runs the current backward once: it frees the saved tensors after it
    (retain_graph=False). A compiled graph is traced once for every later call: never assumed there."""
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)  # private: may go
    return keep_graph is not None and not torch.compiler.is_compiling() and not keep_graph()


def _setup_context(ctx, inputs, output):
    (x, W, U, b, p, W_hr, h0, c0, mask, seed, peephole, output_peephole_source, zero_output_for_mask, training,
     dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop) = inputs
    ctx.save_for_backward(W, U, b, p, W_hr, mask, seed, output[3])
    # No gradient flows into the workspace, and an output the loss does not use gets None, not a tensor of
    # zeros: the core takes an absent dy, dh_n or dc_n as zero (materializing them, the workspace's tens of MB
    # included, cost a tenth of a medium training step).
    ctx.mark_non_differentiable(output[3])
    ctx.set_materialize_grads(False)
    ctx.batch, ctx.time = x.shape[0], x.shape[1]
    ctx.has_h0, ctx.has_c0 = h0 is not None, c0 is not None
    ctx.config = (peephole, output_peephole_source, zero_output_for_mask, dropout, recurrent_dropout, zoneout_h,
                  zoneout_c, weight_drop)


def _backward(ctx, dy, dh_n, dc_n, _dworkspace):
    W, U, b, p, W_hr, mask, seed, workspace = ctx.saved_tensors
    if workspace.shape[0] == 0:
        raise RuntimeError("lstm_native::lstm_forward: gradients need its training pass (training=True)")
    (peephole, output_peephole_source, zero_output_for_mask, dropout, recurrent_dropout, zoneout_h, zoneout_c,
     weight_drop) = ctx.config
    backward = lstm_backward_spending if _runs_once() else lstm_backward
    dx, dh0, dc0, dW, dU, db, dp, dW_hr = backward(
        dy, dh_n, dc_n, workspace, ctx.batch, ctx.time, W, U, b, p, W_hr, mask, seed, peephole,
        output_peephole_source, zero_output_for_mask, dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop)
    present = lambda grad, given: grad if given else None  # noqa: E731
    return (dx, dW, dU, present(db, b is not None), present(dp, p is not None), present(dW_hr, W_hr is not None),
            present(dh0, ctx.has_h0), present(dc0, ctx.has_c0), None, None, None, None, None, None, None, None, None,
            None, None)


lstm_forward.register_autograd(_backward, setup_context=_setup_context)

if hasattr(torch.library, "register_autocast"):  # torch >= 2.5: half-precision inputs compute in float32
    torch.library.register_autocast("lstm_native::lstm_forward", "cpu", torch.float32)
    torch.library.register_autocast("lstm_native::lstm_forward", "cuda", torch.float32)
