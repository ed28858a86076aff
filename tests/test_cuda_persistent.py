"""The CUDA backend's persistent small-batch inference kernel (cpp/cuda/persistent_inference_cuda.cu) against
the CPU, and against the per-step path it replaces (LSTM_NATIVE_CUDA_PERSISTENT=0): every variant it covers
(peephole None and diagonal, both output sources), masks with both zero_output modes, h0/c0, zoneout's
inference-time expectation, float32 and float64, at the batch sizes of each of its builds (1, 2, 4, 8, 16)
and at hidden sizes that give each block one unit or several. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

import lstm_native
from lstm_native import _core, cuda
from reference import max_rel_error, random_inputs, random_mask, random_params

pytestmark = pytest.mark.skipif(
    not cuda.is_available(),
    reason="no CUDA device usable" if lstm_native.with_cuda else "CPU-only build (LSTM_NATIVE_CUDA was OFF or no toolkit)")

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
COVERED = [(peephole, source) for peephole in ("diagonal", None) for source in ("current", "previous")]


def inference_case(rng, peephole, dtype, B, T, I, H, masked):
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype=dtype)
    arrays = dict(x=x, h0=h0, c0=c0, mask=random_mask(rng, B, T) if masked else None,
                  **random_params(rng, I, H, peephole, dtype=dtype))
    return arrays


def run_both(arrays, peephole, source, zero_output, rates, monkeypatch, persistent):
    """GPU and CPU inference; `persistent`: True (the kernel where it applies), False (the per-step path) or
    a number of units per block, as LSTM_NATIVE_CUDA_PERSISTENT takes them."""
    kw = dict(peephole=peephole or "none", output_peephole_source=source, zero_output_for_mask=zero_output, **rates)
    monkeypatch.setenv("LSTM_NATIVE_CUDA_PERSISTENT", str(int(persistent)))
    gpu = _core.cuda_forward(**arrays, training=False, **kw)[:3]
    cpu = _core.forward(**arrays, training=False, **kw)[:3]
    return gpu, cpu


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("B", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("zero_output", [False, True], ids=["carry", "zero_output"])
@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "per_step"])
def test_small_batch_inference_matches_cpu(rng, monkeypatch, dtype, B, zero_output, persistent):
    for peephole, source in COVERED:
        arrays = inference_case(rng, peephole, dtype, B, 7, 5, 9, masked=B >= 3)
        gpu, cpu = run_both(arrays, peephole, source, zero_output, {}, monkeypatch, persistent)
        for name, g, c in zip(("y", "h_n", "c_n"), gpu, cpu):
            assert max_rel_error(g, c) <= TOLERANCE[dtype], f"{peephole}/{source} {name}: {max_rel_error(g, c):.3g}"


@pytest.mark.parametrize(("B", "H"), [(4, 1), (16, 300), (3, 600), (8, 1024), (2, 2049)])
def test_hidden_sizes_with_several_units_per_block(rng, monkeypatch, B, H):
    """H large enough that a block owns several units (H not a multiple of them), float32; at H=2049 a block's
    slice of U outgrows shared memory and the call takes the per-step path."""
    arrays = inference_case(rng, "diagonal", np.float32, B, 12, 16, H, masked=B >= 3)
    gpu, cpu = run_both(arrays, "diagonal", "current", False, {}, monkeypatch, True)
    for name, g, c in zip(("y", "h_n", "c_n"), gpu, cpu):
        assert max_rel_error(g, c) <= 1e-5, f"{name}: {max_rel_error(g, c):.3g}"


def test_zoneout_expectation_and_no_initial_state(rng, monkeypatch):
    arrays = inference_case(rng, "diagonal", np.float32, 5, 9, 6, 33, masked=True)
    arrays.update(h0=None, c0=None)
    gpu, cpu = run_both(arrays, "diagonal", "current", False, dict(zoneout_h=0.3, zoneout_c=0.2), monkeypatch, True)
    for name, g, c in zip(("y", "h_n", "c_n"), gpu, cpu):
        assert max_rel_error(g, c) <= 1e-5, f"{name}: {max_rel_error(g, c):.3g}"


def test_the_persistent_kernel_is_the_path_taken(rng, monkeypatch):
    """At B <= 16 the two GPU paths sum h_{t-1} U in different orders: their float32 results agree to
    rounding but not bit for bit, which shows that the environment switch selects a different kernel."""
    arrays = inference_case(rng, None, np.float32, 4, 20, 32, 256, masked=False)
    persistent, cpu = run_both(arrays, None, "current", False, {}, monkeypatch, True)
    per_step, _ = run_both(arrays, None, "current", False, {}, monkeypatch, False)
    assert max_rel_error(persistent[0], cpu[0]) <= 1e-5 and max_rel_error(per_step[0], cpu[0]) <= 1e-5
    assert not np.array_equal(persistent[0], per_step[0])


@pytest.mark.parametrize("units", [2, 8, 32])
def test_every_block_shape(rng, monkeypatch, units):
    """LSTM_NATIVE_CUDA_PERSISTENT=N asks for N units per block: a column per 32 lanes (N=2) down to two lanes
    per column (N=32; at N=64 a block's slice of U outgrows shared memory at this H)."""
    arrays = inference_case(rng, "diagonal", np.float32, 3, 10, 8, 300, masked=True)
    gpu, cpu = run_both(arrays, "diagonal", "previous", False, {}, monkeypatch, units)
    per_step, _ = run_both(arrays, "diagonal", "previous", False, {}, monkeypatch, False)
    for name, g, s, c in zip(("y", "h_n", "c_n"), gpu, per_step, cpu):
        assert max_rel_error(g, c) <= 1e-5, f"{name}: {max_rel_error(g, c):.3g}"
        assert not np.array_equal(g, s), f"{name}: the per-step path's bits (was the persistent kernel skipped?)"
