"""lstm_native.set_num_threads(1) against set_num_threads(2): forward and backward, with a mask.

Observed (OpenMP build, 2-core x86-64 CPU, all six variants, float32 and float64):
- the forward outputs y, h, c are bitwise identical on 1 and 2 threads at every size tried (up to
  B=64, T=50, I=H=256);
- at B=16, T=20, I=32, H=64 the gradients are bitwise identical too;
- from H=128 on the gradients (all of dx, dh0, dc0, dW, dU, db, dp) differ by rounding only: max-abs
  difference over max-abs value (reference.max_rel_error) up to 2.4e-15 in float64 and 1.1e-6 in float32
  at the H128 size below (10 seeds), 1.8e-15 and 1.3e-6 at B=64, T=50, I=H=256.
GRADIENT_BOUND holds the core to that: 0 (bitwise) at H=64, about 10x the observed differences at H=128.
"""

import numpy as np
import pytest

import lstm_native
from lstm_native.ops import lstm_backward, lstm_forward
from reference import max_rel_error, random_inputs, random_mask, random_params

SIZES = {"H64": (16, 20, 32, 64), "H128": (16, 20, 64, 128)}  # B, T, I, H
GRADIENT_BOUND = {"H64": {np.float64: 0.0, np.float32: 0.0}, "H128": {np.float64: 2e-14, np.float32: 1e-5}}


@pytest.fixture
def restore_threads():
    saved = lstm_native.get_num_threads()
    yield
    lstm_native.set_num_threads(saved)


def forward_and_backward(threads, variant, arrays, mask, cotangents):
    """((y, h, c), (dx, dh0, dc0, dW, dU, db, dp)) computed on `threads` threads."""
    peephole, source = variant
    lstm_native.set_num_threads(threads)
    assert lstm_native.get_num_threads() == threads
    out = lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole=peephole,
                       output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], mask=mask, training=True)
    return out[:3], lstm_backward(out.context, *cotangents)


@pytest.mark.skipif(not lstm_native.with_openmp, reason="a build without OpenMP always runs on one thread")
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_one_and_two_threads_agree(rng, variant, dtype, size, restore_threads):
    B, T, I, H = SIZES[size]
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    arrays = dict(x=x, h0=h0, c0=c0, **random_params(rng, I, H, variant[0], dtype))
    mask = random_mask(rng, B, T)
    cotangents = tuple(rng.standard_normal(shape).astype(dtype) for shape in ((B, T, H), (B, H), (B, H)))
    outputs_1, gradients_1 = forward_and_backward(1, variant, arrays, mask, cotangents)
    outputs_2, gradients_2 = forward_and_backward(2, variant, arrays, mask, cotangents)
    for name, a, b in zip("yhc", outputs_1, outputs_2):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for name, a, b in zip(gradients_1._fields, gradients_1, gradients_2):
        if a is None:
            assert b is None, name
        else:
            assert max_rel_error(b, a) <= GRADIENT_BOUND[size][dtype], name
