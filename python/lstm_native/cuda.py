"""The CUDA backend's availability: ``is_available()``, ``device_count()``, ``unavailable_reason()``.

Importing this module never fails: in a CPU-only build (``lstm_native.with_cuda`` is False), or on a machine
without an NVIDIA driver or GPU, ``device_count()`` is 0 and ``is_available()`` is False.

Where it is available, ``device="cuda"`` runs an LSTM on the current CUDA device: in
``lstm_native.ops.lstm_forward`` / ``lstm_backward``, the ``LSTM`` layer and ``Sequential(..., device="cuda")``.
Per call the weights and x go to the device once and y (and the gradients) come back once; a training forward
keeps its workspace on the device until its backward. ``lstm_native.ops`` also takes x, h0, c0 and the output
gradients as arrays that already live on the current device, through ``__dlpack__`` (CuPy arrays, PyTorch CUDA
tensors), and reads them in place.
"""

from __future__ import annotations

from typing import Optional

from ._backend import core as _core

__all__ = ["DEVICES", "built", "check_device", "device_count", "is_available", "unavailable_reason"]

DEVICES = ("cpu", "cuda")


def built() -> bool:
    """Whether this build of lstm_native contains the CUDA backend (LSTM_NATIVE_CUDA at build time)."""
    return bool(_core.with_cuda)


def device_count() -> int:
    """Number of CUDA devices usable: 0 in a CPU-only build, or without a driver or a device."""
    if not built():
        return 0
    return int(_core.cuda_device_count())


def is_available() -> bool:
    """Whether the CUDA backend is built and at least one device is usable."""
    return device_count() > 0


def unavailable_reason() -> Optional[str]:
    """Why ``device="cuda"`` cannot run here, or None when it can."""
    if not built():
        return "this build of lstm_native has no CUDA backend (built with LSTM_NATIVE_CUDA=OFF or without a CUDA toolkit)"
    if device_count() == 0:
        return "no usable CUDA device (no NVIDIA driver or GPU found)"
    return None


def check_device(device: str, unavailable: type = RuntimeError) -> str:
    """``device`` if it is "cpu", or "cuda" where that can run; ValueError for any other value, and the
    exception class ``unavailable`` for "cuda" where it cannot run."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    reason = unavailable_reason() if device == "cuda" else None
    if reason:
        raise unavailable(f"device: 'cuda' is not available: {reason}")
    return device
