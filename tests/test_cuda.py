"""The CUDA backend against the CPU backend: forward (inference and training) and every gradient, for all six
cell variants, with masks, h0/c0, zero_output_for_mask and every regularizer under the same seed (so both
draw the same masks), float32 (<= 1e-5 relative to the largest value) and float64.

The GPU comparisons need a CUDA build (lstm_native.with_cuda) and a GPU; elsewhere they are skipped with the
reason. The availability API is tested everywhere."""

from __future__ import annotations

import numpy as np
import pytest

import lstm_native
from lstm_native import _core, cuda
import test_regularization
from reference import max_rel_error, random_inputs, random_mask, random_params

requires_gpu = pytest.mark.skipif(
    not cuda.is_available(),
    reason="no CUDA device usable" if lstm_native.with_cuda else "CPU-only build (LSTM_NATIVE_CUDA was OFF or no toolkit)")

GRAD_NAMES = ("dx", "dh0", "dc0", "dW", "dU", "db", "dp", "dW_hr")
RATES = {"none": {}, **test_regularization.RATES}
SEED = test_regularization.SEED
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def test_availability_api_never_raises():
    assert isinstance(lstm_native.with_cuda, bool)
    assert cuda.built() is lstm_native.with_cuda
    count = cuda.device_count()
    assert isinstance(count, int) and count >= 0
    assert cuda.is_available() == (count > 0)
    if not lstm_native.with_cuda:
        assert count == 0 and not cuda.is_available()
        assert not hasattr(_core, "cuda_forward")


def test_cpu_only_build_reports_no_device():
    if lstm_native.with_cuda:
        pytest.skip("a CUDA build: the device count is the machine's")
    assert _core.cuda_device_count() == 0


def test_gpu_call_without_a_device_raises_cleanly(rng):
    """A CUDA build on a machine without a usable GPU: the GPU path raises RuntimeError, it does not crash."""
    if not lstm_native.with_cuda or cuda.is_available():
        pytest.skip("needs a CUDA build on a machine without a usable GPU")
    arrays, _ = case(rng, "diagonal", np.float32)
    with pytest.raises(RuntimeError, match="CUDA"):
        _core.cuda_forward(**arrays)


def test_layer_rejects_cuda_with_a_clear_message():
    from lstm_native.layers import LSTM

    with pytest.raises(ValueError, match="device"):
        LSTM(4, device="cuda")


def case(rng, peephole, dtype, B=5, T=6, I=7, H=8, masked=True, P=None):
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype=dtype, P=P)
    params = random_params(rng, I, H, peephole, dtype=dtype, P=P)
    mask = random_mask(rng, B, T) if masked else None
    Ho = H if P is None else P
    dy = rng.standard_normal((B, T, Ho)).astype(dtype)
    dh_n = rng.standard_normal((B, Ho)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)
    return dict(x=x, h0=h0, c0=c0, mask=mask, **params), dict(dy=dy, dh_n=dh_n, dc_n=dc_n)


def cpu_run(arrays, grads_in, peephole, source, zero_output, training, rates):
    kw = dict(peephole=peephole or "none", output_peephole_source=source, zero_output_for_mask=zero_output, **rates)
    y, h, c, ws = _core.forward(**arrays, training=training, seed=SEED, **kw)
    if not training:
        return (y, h, c)
    B, T = arrays["x"].shape[:2]
    weights = {k: arrays.get(k) for k in ("W", "U", "b", "p", "W_hr")}
    grads = _core.backward(**weights, mask=arrays["mask"], **grads_in, workspace=ws, batch=B, time=T, seed=SEED, **kw)
    return (y, h, c) + tuple(grads[:8])


def gpu_run(arrays, grads_in, peephole, source, zero_output, training, rates):
    kw = dict(peephole=peephole or "none", output_peephole_source=source, zero_output_for_mask=zero_output, **rates)
    extra = grads_in if training else {}
    return _core.cuda_forward(**arrays, training=training, seed=SEED, **kw, **extra)


def assert_close(got, want, dtype, names):
    for name, g, w in zip(names, got, want):
        if w is None:
            assert g is None, name
            continue
        assert g.shape == w.shape and g.dtype == w.dtype, name
        assert max_rel_error(g, w) <= TOLERANCE[dtype], f"{name}: {max_rel_error(g, w):.3g}"


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("zero_output", [False, True], ids=["carry", "zero_output"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_gpu_matches_cpu_forward_and_gradients(rng, variant, dtype, zero_output, masked):
    peephole, source = variant
    arrays, grads_in = case(rng, peephole, dtype, masked=masked)
    for training in (False, True):
        want = cpu_run(arrays, grads_in, peephole, source, zero_output, training, {})
        got = gpu_run(arrays, grads_in, peephole, source, zero_output, training, {})
        assert_close(got, want, dtype, ("y", "h_n", "c_n") + (GRAD_NAMES if training else ()))


@requires_gpu
@pytest.mark.parametrize("rates", RATES.values(), ids=RATES)
def test_gpu_draws_the_cpus_masks(rng, variant, rates):
    """Training with every regularizer under one seed: identical masks, so identical results."""
    peephole, source = variant
    arrays, grads_in = case(rng, peephole, np.float32)
    want = cpu_run(arrays, grads_in, peephole, source, False, True, rates)
    got = gpu_run(arrays, grads_in, peephole, source, False, True, rates)
    assert_close(got, want, np.float32, ("y", "h_n", "c_n") + GRAD_NAMES)
    # inference: no dropout, zoneout as its expectation
    want = cpu_run(arrays, grads_in, peephole, source, False, False, rates)
    got = gpu_run(arrays, grads_in, peephole, source, False, False, rates)
    assert_close(got, want, np.float32, ("y", "h_n", "c_n"))


@requires_gpu
@pytest.mark.parametrize(("B", "T", "I", "H"), [(1, 1, 1, 1), (3, 17, 33, 65), (64, 20, 128, 256)])
def test_gpu_matches_cpu_at_other_sizes(rng, B, T, I, H):
    """Odd sizes (one element, H not a multiple of anything) and a medium one, float32, diagonal peepholes."""
    arrays, grads_in = case(rng, "diagonal", np.float32, B=B, T=T, I=I, H=H, masked=B >= 3 and T >= 2)
    want = cpu_run(arrays, grads_in, "diagonal", "current", False, True, dict(zoneout_h=0.1, recurrent_dropout=0.2))
    got = gpu_run(arrays, grads_in, "diagonal", "current", False, True, dict(zoneout_h=0.1, recurrent_dropout=0.2))
    assert_close(got, want, np.float32, ("y", "h_n", "c_n") + GRAD_NAMES)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("zero_output", [False, True], ids=["carry", "zero_output"])
@pytest.mark.parametrize("rates", [{}, dict(dropout=0.2, recurrent_dropout=0.3, weight_drop=0.4)],
                         ids=["plain", "regularized"])
def test_gpu_matches_cpu_with_a_projection(rng, variant, dtype, zero_output, rates):
    """LSTMP (P=3 < H=8): h_t = (o ⊙ tanh(c_t)) W_hr, and ∂L/∂W_hr (zoneout is not defined with it)."""
    peephole, source = variant
    arrays, grads_in = case(rng, peephole, dtype, P=3)
    for training in (False, True):
        want = cpu_run(arrays, grads_in, peephole, source, zero_output, training, rates)
        got = gpu_run(arrays, grads_in, peephole, source, zero_output, training, rates)
        assert_close(got, want, dtype, ("y", "h_n", "c_n") + (GRAD_NAMES if training else ()))


@requires_gpu
def test_gpu_rejects_bad_arguments(rng):
    arrays, _ = case(rng, "diagonal", np.float32)
    with pytest.raises(ValueError, match="x"):
        _core.cuda_forward(**{**arrays, "x": arrays["x"][:, :, :3].copy()})
    with pytest.raises(ValueError, match="zoneout"):
        P = 3
        U = rng.standard_normal((P, 32)).astype(np.float32)
        W_hr = rng.standard_normal((8, P)).astype(np.float32)
        _core.cuda_forward(**{**arrays, "U": U, "h0": None, "W_hr": W_hr}, zoneout_h=0.1)
