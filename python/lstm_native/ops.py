"""Functional API over the native core: one LSTM layer's forward and backward on numpy arrays.

Shapes (B batch, T steps, I input size, H hidden size), all batch-first:

    x  (B, T, I)    W (I, 4H)    U (H, 4H)    b (4H,)    gate blocks [i, f, g, o]
    p  (3, H) for peephole="diagonal", (3, H, H) for "full", None for None; gates [i, f, o]
    h0, c0 (B, H)   mask (B, T) bool (True = valid step)   lengths (B,) ints in [0, T]

With a projection (LSTMP, PyTorch's ``proj_size``), ``W_hr`` (H, P) maps the cell's output to the state,
h_t = (o_t * tanh(c_t)) @ W_hr: then U is (P, 4H), and h0, y and the final h have P columns instead of H.

The cell is docs/DESIGN.md §1; ``lstm_native.lstm_native.hpp`` states it in full. Computation is float32
or float64, taken from ``W``: every other float array must have the same dtype (``TypeError`` otherwise).
Inputs that are not C-contiguous, aligned and in the machine's byte order (also read-only ones, which the
core only reads) are copied here as needed; the native module itself accepts only C-contiguous, aligned arrays
and never copies.

Threads: every function here may run from several threads at once (the native calls release the GIL). A
context is consumed by exactly one :func:`lstm_backward` call, also under races: a concurrent second call
raises ``ValueError``. A long native call (or a chunk of a few milliseconds of its steps) honours Ctrl-C:
``KeyboardInterrupt``, with the workspace pool and the arguments intact.

``device="cuda"`` (:mod:`lstm_native.cuda`) runs :func:`lstm_forward` and :func:`lstm_backward` on the current
CUDA device. There x, h0, c0 and the output gradients may also be arrays on that device, given as any
object with ``__dlpack__`` (CuPy arrays, PyTorch CUDA tensors): C-contiguous, of W's dtype, read in place.
The outputs are numpy arrays. :func:`lstm_step` and :func:`lstm_trace` run on the CPU.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple, Optional, Protocol, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import cuda
from ._backend import core as _core

__all__ = [
    "LSTMForward",
    "LSTMGradients",
    "ForwardContext",
    "lstm_forward",
    "lstm_backward",
    "lstm_step",
    "lstm_trace",
    "lengths_to_mask",
    "release_workspaces",
]

PEEPHOLES = ("diagonal", "full", None)
OUTPUT_PEEPHOLE_SOURCES = ("current", "previous")
_KDLCUDA = 2  # DLPack's device type of CUDA memory


class SupportsDLPack(Protocol):
    """An array that the core can read in place on its device (a CuPy array, a PyTorch CUDA tensor)."""

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __dlpack_device__(self) -> Tuple[int, int]: ...


# x, h0, c0 and the output gradients: anything numpy takes, or an array on the current CUDA device.
DeviceArrayLike = Union[ArrayLike, SupportsDLPack]
# The native forward and backward of each device, which take the same arguments and return the same results
# (the CUDA pair exists in a CUDA build only, where cuda.check_device admits "cuda").
_NATIVE_PASSES = {"cpu": ("forward", "backward"), "cuda": ("cuda_forward", "cuda_backward")}


def _native_passes(device: str):
    """The native (forward, backward) of ``device``."""
    return tuple(getattr(_core, name) for name in _NATIVE_PASSES[device])

# Spent training workspaces, kept for the next lstm_forward(training=True): a workspace is tens of MB
# (42 MB at B=64, T=100, I=128, H=256), above the size glibc's malloc serves from its heap, so a fresh one
# costs its page faults and zeroing on every step (~10% of a medium training step on one thread).
_SPARE_WORKSPACES: list = []
_MAX_SPARE_WORKSPACES = 4  # one per layer of a stack of up to 4
_SPARE_LOCK = threading.Lock()


def _keep_spare(workspace: np.ndarray) -> None:
    """Offers a spent training workspace (a numpy array the core has overwritten) for reuse."""
    with _SPARE_LOCK:
        if len(_SPARE_WORKSPACES) < _MAX_SPARE_WORKSPACES:
            _SPARE_WORKSPACES.append(workspace)


def _reusable_workspace(x: np.ndarray, args: dict) -> Optional[np.ndarray]:
    """A spent workspace large enough for this training call (the smallest such), or None, also when the
    arguments are malformed: the core then reports what is wrong with them."""
    U, projected = args["U"], args["W_hr"] is not None
    try:
        batch, time, features = x.shape
        size = _core.training_workspace_size(batch, time, features, U.shape[1] // 4, U.shape[0] if projected else 0,
                                             zoneout=bool(args["zoneout_h"] or args["zoneout_c"]))
    except (ValueError, IndexError):
        return None
    with _SPARE_LOCK:
        fits = [k for k, w in enumerate(_SPARE_WORKSPACES) if w.dtype == U.dtype and w.size >= size]
        if not fits:
            return None
        return _SPARE_WORKSPACES.pop(min(fits, key=lambda k: _SPARE_WORKSPACES[k].size))


def release_workspaces() -> None:
    """Frees the spent training workspaces that lstm_forward keeps for reuse."""
    with _SPARE_LOCK:
        _SPARE_WORKSPACES.clear()


class LSTMForward(NamedTuple):
    """What :func:`lstm_forward` returns."""

    y: np.ndarray  #: (B, T, H) the hidden state of every step ((B, T, P) with a projection)
    h: np.ndarray  #: (B, H) the final hidden state (of the last valid step, with a mask; (B, P) projected)
    c: np.ndarray  #: (B, H) the final cell state
    context: Optional["ForwardContext"]  #: what :func:`lstm_backward` needs; None unless training


class LSTMGradients(NamedTuple):
    """What :func:`lstm_backward` returns; ``db`` is None without a bias, ``dp`` None without peepholes,
    ``dW_hr`` None without a projection."""

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dW: np.ndarray
    dU: np.ndarray
    db: Optional[np.ndarray]
    dp: Optional[np.ndarray]
    dW_hr: Optional[np.ndarray] = None


class ForwardContext:
    """The training workspace of one forward pass (with device="cuda", a ``_core.CudaWorkspace`` that keeps it
    on the GPU). Consumed by one call of :func:`lstm_backward`: taken atomically, so that of two racing
    calls exactly one gets it."""

    __slots__ = ("_args", "_workspace", "batch", "time", "device")

    def __init__(self, args: dict, workspace: Union[np.ndarray, _core.CudaWorkspace], batch: int, time: int,
                 device: str = "cpu"):
        self._args = args
        self._workspace: Union[np.ndarray, _core.CudaWorkspace, None] = workspace  # None once consumed
        self.batch = batch
        self.time = time
        self.device = device

    @property
    def consumed(self) -> bool:
        """Whether :func:`lstm_backward` used this context already (it runs once per context)."""
        return self._workspace is None

    def _take(self):
        """The workspace, which leaves the context (ValueError if an earlier or concurrent call took it)."""
        with _CONTEXT_LOCK:
            workspace, self._workspace = self._workspace, None
        if workspace is None:
            raise ValueError("context: already consumed by an earlier (or a concurrent) lstm_backward call")
        return workspace


_CONTEXT_LOCK = threading.Lock()


def lengths_to_mask(lengths: ArrayLike, time: int) -> np.ndarray:
    """(B,) sequence lengths in [0, time] -> (B, time) bool mask of right-padded sequences."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths: expected shape (B,), got {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > time):
        raise ValueError(f"lengths: every length must lie in [0, {time}], got {lengths.min()}..{lengths.max()}")
    return np.arange(time)[None, :] < lengths[:, None]


def _compute_dtype(W) -> np.dtype:
    """The computation's dtype: W's (in the machine's byte order), float32 or float64."""
    dtype = np.asarray(W).dtype.newbyteorder("=")
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"W: expected dtype float32 or float64, got {dtype}")
    return dtype


def _float_array(name: str, value, dtype: np.dtype) -> np.ndarray:
    """``value`` as the core takes it: C-contiguous, aligned, native byte order (copied only where needed)."""
    array = np.asarray(value)
    if array.dtype.newbyteorder("=") != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of W), got {array.dtype}")
    if array.dtype == dtype and array.flags.c_contiguous and array.flags.aligned:
        return array  # the usual case, without np.require's cost: a tenth of a tiny model's call (B=1, H=32)
    return np.require(array, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])


def _optional_float_array(name: str, value, dtype: np.dtype) -> Optional[np.ndarray]:
    return None if value is None else _float_array(name, value, dtype)


def _on_cuda(value) -> bool:
    """Whether ``value`` is an array on a CUDA device by DLPack (CuPy arrays, PyTorch CUDA tensors)."""
    dlpack_device = getattr(value, "__dlpack_device__", None)
    return dlpack_device is not None and not isinstance(value, np.ndarray) and dlpack_device()[0] == _KDLCUDA


def _sequence_array(name: str, value, dtype: np.dtype, device: str):
    """x, h0, c0 or an output gradient: an array on the GPU passes to the core as it is (device="cuda", which
    checks it and reads it in place), anything else becomes a numpy array."""
    if value is None or not _on_cuda(value):
        return _optional_float_array(name, value, dtype)
    if device != "cuda":
        raise TypeError(f"{name}: an array on a CUDA device needs device='cuda'")
    return value


def _as_mask(mask, lengths, x: np.ndarray) -> Optional[np.ndarray]:
    if mask is not None and lengths is not None:
        raise ValueError("mask and lengths: give one or the other, not both")
    if lengths is not None:
        if x.ndim < 2:
            raise ValueError(f"x: expected shape (B, T, I), got {x.shape}")
        mask = lengths_to_mask(lengths, x.shape[1])
        if mask.shape[0] != x.shape[0]:
            raise ValueError(f"lengths: expected shape ({x.shape[0]},), one length per sequence, got ({mask.shape[0]},)")
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        if not (np.issubdtype(mask.dtype, np.number)) or not np.isin(mask, (0, 1)).all():
            raise ValueError("mask: expected a bool array or one of 0s and 1s")
    return np.ascontiguousarray(mask, dtype=np.uint8)


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def _check_variant(peephole, output_peephole_source) -> str:
    if peephole not in PEEPHOLES:
        raise ValueError(f"peephole: expected one of {PEEPHOLES}, got {peephole!r}")
    if output_peephole_source not in OUTPUT_PEEPHOLE_SOURCES:
        raise ValueError(
            f"output_peephole_source: expected one of {OUTPUT_PEEPHOLE_SOURCES}, got {output_peephole_source!r}"
        )
    return "none" if peephole is None else peephole


def lstm_forward(
    x: DeviceArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: Optional[ArrayLike] = None,
    p: Optional[ArrayLike] = None,
    *,
    W_hr: Optional[ArrayLike] = None,
    peephole: Optional[str] = "diagonal",
    output_peephole_source: str = "current",
    h0: Optional[DeviceArrayLike] = None,
    c0: Optional[DeviceArrayLike] = None,
    mask: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
    zero_output_for_mask: bool = False,
    training: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
    weight_drop: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    return_sequences: bool = True,
) -> LSTMForward:
    """Runs one LSTM layer over whole sequences, on ``device`` ("cpu" or "cuda": RuntimeError where CUDA is
    not available, ValueError for anything else).

    At a masked step (mask False, or past a sequence's length) the state is carried unchanged and the
    output is the carried h, or zero with ``zero_output_for_mask=True`` (as ONNX and PyTorch do).
    With ``training=True`` the result's ``context`` holds what :func:`lstm_backward` needs.

    Regularization, fused into the native passes (rates in [0, 1)): ``dropout`` on x and
    ``recurrent_dropout`` on h_{t-1} (variational: one mask per sequence, scaled by 1/(1-p)), zoneout of h
    and c (``zoneout_h``, ``zoneout_c``: each unit keeps its previous value with that probability per step),
    ``weight_drop`` (DropConnect on U, one mask per call). In training the masks are a function of ``seed``
    and the element's indices (a Philox counter-based generator): use a new seed per batch. Without
    training, dropouts are off and zoneout acts as its expectation. Zoneout is not defined with a projection
    (``W_hr``): ``ValueError``.

    ``return_sequences=False``: only the final states are wanted; ``y`` is None, and on the CPU the output
    sequence is never stored (inference then needs memory for a chunk of steps, not for all T).

    Example (B=2 sequences of T=5 steps, I=3 inputs, H=4 units, diagonal peepholes p of shape (3, H)):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 3), dtype=np.float32)
    >>> W, U = (rng.uniform(-0.5, 0.5, (n, 16)).astype(np.float32) for n in (3, 4))
    >>> out = lstm_forward(x, W, U, np.zeros(16, np.float32), np.zeros((3, 4), np.float32), lengths=[5, 3])
    >>> out.y.shape, out.h.shape, out.c.shape
    ((2, 5, 4), (2, 4), (2, 4))
    >>> bool(np.all(out.y[1, 3:] == out.y[1, 2]))  # past its length, a sequence carries its last output
    True
    """
    kind = _check_variant(peephole, output_peephole_source)
    device = cuda.check_device(device)
    dtype = _compute_dtype(W)
    args = dict(
        W=_float_array("W", W, dtype),
        U=_float_array("U", U, dtype),
        b=_optional_float_array("b", b, dtype),
        p=_optional_float_array("p", p, dtype),
        W_hr=_optional_float_array("W_hr", W_hr, dtype),
        peephole=kind,
        output_peephole_source=output_peephole_source,
        zero_output_for_mask=bool(zero_output_for_mask),
        dropout=float(dropout),
        recurrent_dropout=float(recurrent_dropout),
        zoneout_h=float(zoneout_h),
        zoneout_c=float(zoneout_c),
        weight_drop=float(weight_drop),
        seed=_seed(seed),
    )
    if x is None:
        raise TypeError("x: required, got None")
    xs, h0s, c0s = (_sequence_array(name, value, dtype, device) for name, value in (("x", x), ("h0", h0), ("c0", c0)))
    args["mask"] = _as_mask(mask, lengths, xs)
    native_forward, _ = _native_passes(device)
    spare = _reusable_workspace(xs, args) if training and device == "cpu" else None  # the pool is CPU memory
    try:
        y, h, c, workspace = native_forward(x=xs, h0=h0s, c0=c0s, training=bool(training), workspace=spare,
                                            return_sequences=bool(return_sequences), **args)
    except BaseException:
        if spare is not None:  # scratch memory: reusable whatever the call left in it
            _keep_spare(spare)
        raise
    context = ForwardContext(args, workspace, xs.shape[0], xs.shape[1], device) if training else None
    return LSTMForward(y, h, c, context)


def lstm_backward(context: ForwardContext, dy: Optional[DeviceArrayLike] = None, dh: Optional[DeviceArrayLike] = None,
                  dc: Optional[DeviceArrayLike] = None) -> LSTMGradients:
    """Gradients of a loss w.r.t. x, h0, c0 and the parameters, given its gradients w.r.t. the outputs.

    ``dy`` (B, T, H), ``dh`` and ``dc`` (B, H) (dy, dh with P columns when projected) are each optional (zero when omitted). Consumes
    ``context``: a second call with the same context raises ``ValueError``.
    """
    if not isinstance(context, ForwardContext):
        raise TypeError("context: expected the context of lstm_forward(..., training=True)")
    if context.consumed:
        raise ValueError("context: already consumed by an earlier lstm_backward call")
    args, device = context._args, context.device
    dtype = args["W"].dtype
    dy, dh, dc = (_sequence_array(name, value, dtype, device) for name, value in (("dy", dy), ("dh", dh), ("dc", dc)))
    _, native_backward = _native_passes(device)
    workspace = context._take()  # from here on no other call can use it
    spent = True
    try:
        grads = native_backward(dy=dy, dh_n=dh, dc_n=dc, workspace=workspace, batch=context.batch,
                                time=context.time, **args)
    except (ValueError, TypeError):
        context._workspace, spent = workspace, False  # the core checks its arguments before it writes
        raise
    finally:
        if spent and device == "cpu":  # overwritten by the core (to the end, or until interrupted): reusable
            _keep_spare(workspace)
    return LSTMGradients(*grads)  # with device="cuda" dropping the workspace frees its device memory


def lstm_trace(
    x: ArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: Optional[ArrayLike] = None,
    p: Optional[ArrayLike] = None,
    *,
    W_hr: Optional[ArrayLike] = None,
    peephole: Optional[str] = "diagonal",
    output_peephole_source: str = "current",
    h0: Optional[ArrayLike] = None,
    c0: Optional[ArrayLike] = None,
    mask: Optional[ArrayLike] = None,
    lengths: Optional[ArrayLike] = None,
) -> dict:
    """The activations of every step: {"i", "f", "g", "o", "c", "h"}, each (B, T, H) (h (B, T, P) with a
    projection), from the core's own
    forward pass (the training pass, whose workspace keeps them; no regularization). At a masked step the
    gates are 0 and c, h the carried states."""
    kind = _check_variant(peephole, output_peephole_source)
    dtype = _compute_dtype(W)
    x = _float_array("x", x, dtype)
    return _core.trace(x=x, W=_float_array("W", W, dtype), U=_float_array("U", U, dtype),
                       b=_optional_float_array("b", b, dtype), p=_optional_float_array("p", p, dtype),
                       W_hr=_optional_float_array("W_hr", W_hr, dtype), h0=_optional_float_array("h0", h0, dtype), c0=_optional_float_array("c0", c0, dtype),
                       mask=_as_mask(mask, lengths, x), peephole=kind, output_peephole_source=output_peephole_source)


def lstm_step(
    x: ArrayLike,
    h: ArrayLike,
    c: ArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: Optional[ArrayLike] = None,
    p: Optional[ArrayLike] = None,
    *,
    W_hr: Optional[ArrayLike] = None,
    peephole: Optional[str] = "diagonal",
    output_peephole_source: str = "current",
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """One time step for streaming inference: x (B, I), h and c (B, H) (h (B, P) with a projection)
    -> (h, c) of the next step
    (zoneout acts as its expectation, as in :func:`lstm_forward` without training)."""
    kind = _check_variant(peephole, output_peephole_source)
    dtype = _compute_dtype(W)
    return _core.step(
        x=_float_array("x", x, dtype),
        h=_float_array("h", h, dtype),
        c=_float_array("c", c, dtype),
        W=_float_array("W", W, dtype),
        U=_float_array("U", U, dtype),
        b=_optional_float_array("b", b, dtype),
        p=_optional_float_array("p", p, dtype),
        W_hr=_optional_float_array("W_hr", W_hr, dtype),
        peephole=kind,
        output_peephole_source=output_peephole_source,
        zoneout_h=float(zoneout_h),
        zoneout_c=float(zoneout_c),
    )
