"""lstm_native.set_num_threads(1) against set_num_threads(2): forward and backward at a moderate size.

Observed (OpenMP build, 2-core x86-64 CPU): every output and gradient is bitwise identical on 1 and 2 threads,
for all six variants in float32 and float64, with a mask. The test holds the core to that.
"""

import numpy as np
import pytest

import lstm_native
from lstm_native.ops import lstm_backward, lstm_forward
from reference import random_inputs, random_mask, random_params

B, T, I, H = 16, 20, 32, 64


@pytest.fixture
def restore_threads():
    saved = lstm_native.get_num_threads()
    yield
    lstm_native.set_num_threads(saved)


def forward_and_backward(threads, variant, arrays, mask, cotangents):
    """(y, h, c, dx, dh0, dc0, dW, dU, db, dp) computed on `threads` threads."""
    peephole, source = variant
    lstm_native.set_num_threads(threads)
    assert lstm_native.get_num_threads() == threads
    out = lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole=peephole,
                       output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], mask=mask, training=True)
    return out[:3] + tuple(lstm_backward(out.context, *cotangents))


@pytest.mark.skipif(not lstm_native.with_openmp, reason="a build without OpenMP always runs on one thread")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_one_and_two_threads_agree(rng, variant, dtype, restore_threads):
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    arrays = dict(x=x, h0=h0, c0=c0, **random_params(rng, I, H, variant[0], dtype))
    mask = random_mask(rng, B, T)
    cotangents = tuple(rng.standard_normal(shape).astype(dtype) for shape in ((B, T, H), (B, H), (B, H)))
    one = forward_and_backward(1, variant, arrays, mask, cotangents)
    two = forward_and_backward(2, variant, arrays, mask, cotangents)
    names = ("y", "h", "c", "dx", "dh0", "dc0", "dW", "dU", "db", "dp")
    for name, a, b in zip(names, one, two):
        if a is None:
            assert b is None, name
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
