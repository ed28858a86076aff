"""The CUDA backend's availability: ``is_available()`` and ``device_count()``.

Importing this module never fails: in a CPU-only build (``lstm_native.with_cuda`` is False), or on a machine
without an NVIDIA driver or GPU, ``device_count()`` is 0 and ``is_available()`` is False.

In this version the GPU path is reachable from Python through ``lstm_native._core.cuda_forward`` only (host
arrays copied to the device and back once per call); the layers do not run on the GPU yet.
"""

from __future__ import annotations

from ._backend import core as _core

__all__ = ["built", "device_count", "is_available"]


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
