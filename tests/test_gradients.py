"""float64 central-difference checks of lstm_native.ops.lstm_backward, every element of every input and
parameter, with the random linear loss L = sum(y * gy) + sum(h * gh) + sum(c * gc).

Error measure, per element: |analytic - numeric| / max(|analytic|, |numeric|, FLOOR). With EPS = 1e-6 the
central differences themselves are off by up to ~2e-9 in absolute terms (measured on the numpy reference
against exact complex-step derivatives), so gradients below FLOOR are held to RTOL * FLOOR = 1e-8 absolute.
"""

import numpy as np
import pytest

from lstm_native.ops import lstm_backward, lstm_forward
from reference import random_inputs, random_mask, random_params
from support import FLOOR, GRADIENT_OF, RTOL, central_differences

B, T, I, H = 3, 4, 3, 4


def random_problem(rng, peephole, bias=True):
    """The differentiated arrays (x, h0, c0, W, U, b, p; b and p may be None), a mask and (gy, gh, gc)."""
    x, h0, c0 = random_inputs(rng, B, T, I, H)
    arrays = dict(x=x, h0=h0, c0=c0, **random_params(rng, I, H, peephole))
    if not bias:
        arrays["b"] = None
    cotangents = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    return arrays, random_mask(rng, B, T), cotangents


def forward(arrays, variant, mask, zero_output_for_mask=False, training=False):
    peephole, source = variant
    return lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole=peephole,
                        output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], mask=mask,
                        zero_output_for_mask=zero_output_for_mask, training=training)


@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_gradients_match_central_differences(rng, variant, zero_output_for_mask, bias):
    arrays, mask, (gy, gh, gc) = random_problem(rng, variant[0], bias)

    def loss():
        y, h, c, _ = forward(arrays, variant, mask, zero_output_for_mask)
        return np.sum(y * gy) + np.sum(h * gh) + np.sum(c * gc)

    gradients = lstm_backward(forward(arrays, variant, mask, zero_output_for_mask, training=True).context,
                              gy, gh, gc)
    for name, array in arrays.items():
        analytic = getattr(gradients, GRADIENT_OF[name])
        if array is None:
            assert analytic is None, name
            continue
        assert analytic.shape == array.shape and analytic.dtype == np.float64, name
        numeric = central_differences(loss, array)
        error = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FLOOR)
        worst = np.unravel_index(np.argmax(error), error.shape)
        assert error[worst] <= RTOL, (name, worst, analytic[worst], numeric[worst])


@pytest.mark.parametrize("omitted", [("dy",), ("dh",), ("dc",), ("dy", "dh", "dc")], ids="+".join)
def test_omitted_output_gradients_act_as_zeros(rng, variant, omitted):
    arrays, mask, (gy, gh, gc) = random_problem(rng, variant[0])
    given = dict(dy=gy, dh=gh, dc=gc)
    with_zeros = {name: np.zeros_like(value) if name in omitted else value for name, value in given.items()}
    without = {name: value for name, value in given.items() if name not in omitted}
    expected = lstm_backward(forward(arrays, variant, mask, training=True).context, **with_zeros)
    actual = lstm_backward(forward(arrays, variant, mask, training=True).context, **without)
    for name, a, e in zip(expected._fields, actual, expected):
        if e is None:
            assert a is None, name
        else:
            np.testing.assert_array_equal(a, e, err_msg=name)


def test_consumed_context_raises(rng, variant):
    arrays, mask, (gy, gh, gc) = random_problem(rng, variant[0])
    context = forward(arrays, variant, mask, training=True).context
    assert not context.consumed
    lstm_backward(context, gy, gh, gc)
    assert context.consumed
    with pytest.raises(ValueError):
        lstm_backward(context, gy, gh, gc)
