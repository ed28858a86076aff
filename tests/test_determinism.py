"""Results depend on the inputs only: not on the thread count, nor on where the arrays lie in memory.

Threads (lstm_native.set_num_threads):
The core cuts its work into chunks whose bounds depend only on the shapes (batch rows for the recurrence,
rows and columns of the large GEMMs), never on the thread count, and Eigen itself runs single-threaded;
so 1, 2 and 3 threads must give bitwise-identical outputs and gradients. The sizes make every kind of chunk
come in several pieces, the last one partial: B=37 gives 3 recurrence chunks at H=64, T*B=333 six row blocks
of x W and dZ Wᵀ (56 rows, the last 53), 4H=256 two reduction chunks.
"""

import numpy as np
import pytest

import lstm_native
from lstm_native.ops import lstm_backward, lstm_forward
from reference import random_inputs, random_mask, random_params

SIZES = {"B37-H64": (37, 9, 32, 64), "B40-H256": (40, 7, 16, 256)}  # B, T, I, H
THREADS = (1, 2, 3)


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
def test_thread_count_does_not_change_results(rng, variant, dtype, size, restore_threads):
    B, T, I, H = SIZES[size]
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    arrays = dict(x=x, h0=h0, c0=c0, **random_params(rng, I, H, variant[0], dtype))
    mask = random_mask(rng, B, T)
    cotangents = tuple(rng.standard_normal(shape).astype(dtype) for shape in ((B, T, H), (B, H), (B, H)))
    outputs_1, gradients_1 = forward_and_backward(1, variant, arrays, mask, cotangents)
    for threads in THREADS[1:]:
        outputs, gradients = forward_and_backward(threads, variant, arrays, mask, cotangents)
        for name, a, b in zip("yhc", outputs_1, outputs):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} on {threads} threads")
        for name, a, b in zip(gradients_1._fields, gradients_1, gradients):
            if a is None:
                assert b is None, name
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name} on {threads} threads")


def at_offset(array, elements):
    """A copy of `array` starting `elements` elements past a 64-byte boundary."""
    buffer = np.empty(array.size + 64, array.dtype)
    start = (-buffer.ctypes.data // array.itemsize) % (64 // array.itemsize) + elements
    copy = buffer[start : start + array.size].reshape(array.shape)
    copy[...] = array
    return copy


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_memory_alignment_does_not_change_results(rng, variant, dtype):
    """Vectorized code may treat the elements before the first aligned address differently; the core's
    results must not depend on it (Eigen's packets are 16 to 64 bytes wide)."""
    B, T, I, H = 5, 4, 3, 13
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    arrays = dict(x=x, h0=h0, c0=c0, **random_params(rng, I, H, variant[0], dtype))
    arrays = {k: v for k, v in arrays.items() if v is not None}
    mask = random_mask(rng, B, T)
    cotangents = tuple(rng.standard_normal(shape).astype(dtype) for shape in ((B, T, H), (B, H), (B, H)))
    results = set()
    for offset in range(8):
        shifted = {k: at_offset(v, offset) for k, v in arrays.items()}
        shifted.setdefault("b", None)
        shifted.setdefault("p", None)
        outputs, gradients = forward_and_backward(lstm_native.get_num_threads(), variant, shifted, mask,
                                                  tuple(at_offset(c, offset) for c in cotangents))
        results.add(tuple(a.tobytes() for a in (*outputs, *gradients) if a is not None))
    assert len(results) == 1
