"""lstm_native.ops.lstm_forward / lstm_step against the float64 numpy reference (tests/reference.py).

Error measure: max_rel_error = max |core - reference| / max |reference|, per output (y, h, c).
float32 cases feed the reference the very same float32 values, upcast to float64.
"""

import numpy as np
import pytest

from lstm_native.ops import lstm_forward, lstm_step
from reference import max_rel_error, random_inputs, random_mask, random_params, reference_forward

B, T, I, H = 5, 6, 7, 9
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}

dtypes = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def assert_matches(actual, expected, dtype):
    """actual and expected: (y, h, c) triples; actual of `dtype` and of the reference's shapes."""
    for name, a, e in zip("yhc", actual, expected):
        assert a.dtype == dtype, name
        assert a.shape == e.shape, name
        assert max_rel_error(a, e) <= TOLERANCE[dtype], name


@dtypes
@pytest.mark.parametrize("masking", ["no-mask", "mask", "lengths"])
@pytest.mark.parametrize("initial_state", [False, True], ids=["zero-state", "h0-c0"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_forward_matches_reference(rng, variant, dtype, masking, initial_state, zero_output_for_mask, training):
    peephole, source = variant
    params = random_params(rng, I, H, peephole, dtype)
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    if not initial_state:
        h0 = c0 = None
    mask = lengths = None
    if masking == "mask":
        mask = random_mask(rng, B, T)
    elif masking == "lengths":
        lengths = rng.integers(0, T + 1, B)
        lengths[:2] = (0, T)
    reference_mask = mask if lengths is None else np.arange(T)[None, :] < lengths[:, None]
    out = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0,
                       mask=mask, lengths=lengths, zero_output_for_mask=zero_output_for_mask, training=training)
    expected = reference_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0,
                                 mask=reference_mask, zero_output_for_mask=zero_output_for_mask)
    assert_matches(out[:3], expected, dtype)
    assert (out.context is not None) == training


@dtypes
def test_forward_without_bias(rng, variant, dtype):
    peephole, source = variant
    params = random_params(rng, I, H, peephole, dtype)
    params["b"] = None
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    mask = random_mask(rng, B, T)
    out = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0, mask=mask)
    expected = reference_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0,
                                 mask=mask)
    assert_matches(out[:3], expected, dtype)


@dtypes
def test_steps_match_whole_sequence(rng, variant, dtype):
    peephole, source = variant
    params = random_params(rng, I, H, peephole, dtype)
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype)
    whole = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0)
    h, c = h0, c0
    for t in range(T):
        h, c = lstm_step(x[:, t], h, c, **params, peephole=peephole, output_peephole_source=source)
        assert h.dtype == c.dtype == dtype
        assert max_rel_error(h, whole.y[:, t]) <= TOLERANCE[dtype], t
    assert max_rel_error(h, whole.h) <= TOLERANCE[dtype]
    assert max_rel_error(c, whole.c) <= TOLERANCE[dtype]


@dtypes
def test_single_time_step(rng, variant, dtype):
    """T = 1: the sequence call (rows alternately masked) and lstm_step against the reference."""
    peephole, source = variant
    params = random_params(rng, I, H, peephole, dtype)
    x, h0, c0 = random_inputs(rng, B, 1, I, H, dtype)
    mask = np.arange(B)[:, None] % 2 == 1
    out = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0, mask=mask)
    expected = reference_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0,
                                 mask=mask)
    assert_matches(out[:3], expected, dtype)
    _, h_ref, c_ref = reference_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0,
                                        c0=c0)
    h, c = lstm_step(x[:, 0], h0, c0, **params, peephole=peephole, output_peephole_source=source)
    assert max_rel_error(h, h_ref) <= TOLERANCE[dtype]
    assert max_rel_error(c, c_ref) <= TOLERANCE[dtype]
