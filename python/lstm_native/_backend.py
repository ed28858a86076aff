"""Picks the native module for this CPU: the fastest build it can run of ``_core_avx512`` (AVX-512 F, DQ, VL,
BW), ``_core_avx2`` (AVX2 + FMA), both built on x86-64 only, and the portable ``_core``.
LSTM_NATIVE_ISA=generic|avx2|avx512 forces one (ImportError if this CPU or build cannot run it).

All compute the same cell; their float32 results differ by rounding only (FMA contracts a*b+c, and wider
packets sum in another order).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING

# OpenMP threads that spin at a barrier while another process holds a core make each parallel region wait
# a scheduler time slice: on a 2-core machine with one core busy, a training step at B=32, T=50, I=32,
# H=64 ran 20x slower on two threads (~900 sequences/s) than on one; sleeping waits keep it at ~10,000
# (bench/README.md). Read when the OpenMP runtime loads with the module below; the user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _core as _portable  # noqa: E402

ISAS = ("avx512", "avx2")  # fastest first


def _select() -> tuple[ModuleType, str]:
    requested = os.environ.get("LSTM_NATIVE_ISA", "auto")
    if requested not in ("auto", "generic") + ISAS:
        raise ImportError(f"LSTM_NATIVE_ISA: expected 'auto', 'generic', 'avx2' or 'avx512', got {requested!r}")
    for isa in ISAS:
        if requested not in ("auto", isa):
            continue
        if not _portable.cpu_supports(isa):
            if requested == isa:
                raise ImportError(f"LSTM_NATIVE_ISA={isa}: this CPU lacks its instructions")
            continue
        try:
            return importlib.import_module(f"._core_{isa}", __package__), isa
        except ModuleNotFoundError:  # a build without the variant (not x86-64)
            if requested == isa:
                raise
        except ImportError as error:  # the variant is there but broken: never fall back to a slower build silently
            raise ImportError(f"lstm_native: its {isa} build does not load ({error}); LSTM_NATIVE_ISA=generic "
                              "loads the portable one") from error
    return _portable, "generic"


if TYPE_CHECKING:
    # The variants are the same bindings built for other instruction sets: _core.pyi types them all.
    from . import _core as core

    isa: str
else:
    core, isa = _select()
