"""Picks the native module for this CPU: ``_core_avx2`` (built with AVX2 + FMA, on x86-64) where the CPU
has both, else the portable ``_core``. LSTM_NATIVE_ISA=generic forces the portable one.

Both compute the same cell; their float32 results differ by rounding only (FMA contracts a*b+c).
"""

from __future__ import annotations

import os

from . import _core as _portable


def _select():
    requested = os.environ.get("LSTM_NATIVE_ISA", "auto")
    if requested not in ("auto", "generic", "avx2"):
        raise ImportError(f"LSTM_NATIVE_ISA: expected 'auto', 'generic' or 'avx2', got {requested!r}")
    if requested != "generic" and _portable.cpu_supports_avx2_fma():
        try:
            from . import _core_avx2
        except ImportError:  # a build without the variant (not x86-64)
            if requested == "avx2":
                raise
        else:
            return _core_avx2, "avx2"
    if requested == "avx2":
        raise ImportError("LSTM_NATIVE_ISA=avx2: this CPU lacks AVX2 or FMA")
    return _portable, "generic"


core, isa = _select()
