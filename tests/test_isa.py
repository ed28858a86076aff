"""The native builds: the portable `_core` and, on x86-64, `_core_avx2` (AVX2 + FMA) and `_core_avx512`
(AVX-512 F, DQ, VL, BW), each loaded only where the CPU runs it. They compute the same cell;
LSTM_NATIVE_ISA picks one."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lstm_native
from lstm_native import _core as portable

SCRIPT = """
import sys, numpy as np, lstm_native
from lstm_native import ops
data = np.load(sys.argv[1])
out = ops.lstm_forward(data["x"], data["W"], data["U"], data["b"], data["p"], training=True)
grads = ops.lstm_backward(out.context, dy=data["dy"])
np.savez(sys.argv[2], isa=lstm_native.isa, y=out.y, dx=grads.dx, dW=grads.dW, dU=grads.dU, dp=grads.dp)
"""


def run_with_isa(isa, inputs, tmp_path):
    result = tmp_path / f"{isa}.npz"
    env = {**os.environ, "LSTM_NATIVE_ISA": isa}
    done = subprocess.run([sys.executable, "-c", SCRIPT, inputs, result], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return np.load(result)


def test_isa_follows_the_cpu():
    expected = next((isa for isa in ("avx512", "avx2") if portable.cpu_supports(isa)), "generic")
    if os.environ.get("LSTM_NATIVE_ISA") in (None, "auto"):
        assert lstm_native.isa == expected


def test_unknown_isa_request_fails_at_import():
    done = subprocess.run([sys.executable, "-c", "import lstm_native"], capture_output=True, text=True,
                          env={**os.environ, "LSTM_NATIVE_ISA": "sse9"})
    assert done.returncode != 0 and "LSTM_NATIVE_ISA" in done.stderr


def test_cpu_supports_names_only_known_isas():
    with pytest.raises(ValueError, match="isa"):
        portable.cpu_supports("sse9")


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_every_build_computes_the_same_cell(isa, tmp_path):
    if not portable.cpu_supports(isa):
        pytest.skip(f"this CPU cannot run the {isa} build")
    rng = np.random.default_rng(7)
    B, T, I, H = 9, 12, 10, 40  # H = 40: whole 16- and 8-float packets and a tail
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=rng.standard_normal((B, T, I)).astype(np.float32),
             W=(0.3 * rng.standard_normal((I, 4 * H))).astype(np.float32),
             U=(0.3 * rng.standard_normal((H, 4 * H))).astype(np.float32),
             b=rng.standard_normal(4 * H).astype(np.float32), p=rng.standard_normal((3, H)).astype(np.float32),
             dy=rng.standard_normal((B, T, H)).astype(np.float32))
    generic, other = run_with_isa("generic", inputs, tmp_path), run_with_isa(isa, inputs, tmp_path)
    assert str(generic["isa"]) == "generic" and str(other["isa"]) == isa
    for name in ("y", "dx", "dW", "dU", "dp"):
        scale = np.abs(generic[name]).max()
        assert np.abs(generic[name] - other[name]).max() <= 1e-5 * scale, name
