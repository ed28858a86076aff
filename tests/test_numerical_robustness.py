"""Numerical robustness in float32: inputs up to |x| = 1e4 and sequences of T = 10,000 steps give finite
outputs and gradients for every peephole variant, and TerminateOnNaN stops a diverging run."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_native import callbacks, layers, ops, utils
from lstm_native.models import Sequential

VARIANTS = [(peephole, source) for peephole in ("diagonal", "full", None) for source in ("current", "previous")]


def problem(T, scale, peephole, seed=0, B=2, I=3, H=6, weight_scale=0.5):
    rng = np.random.default_rng(seed)
    x = (scale * rng.uniform(-1, 1, (B, T, I))).astype(np.float32)
    x[:, ::7] = np.float32(scale) * np.sign(x[:, ::7] + 0.5)  # the extremes themselves, +-scale
    W = (weight_scale * rng.standard_normal((I, 4 * H))).astype(np.float32)
    U = (weight_scale * rng.standard_normal((H, 4 * H))).astype(np.float32)
    b = (weight_scale * rng.standard_normal(4 * H)).astype(np.float32)
    p = None if peephole is None else (weight_scale * rng.standard_normal((3, H) if peephole == "diagonal"
                                                                          else (3, H, H))).astype(np.float32)
    return x, W, U, b, p


def forward_backward(x, W, U, b, p, peephole, source, **kwargs):
    B, T, _ = x.shape
    H = U.shape[0]
    out = ops.lstm_forward(x, W, U, b, p, peephole=peephole, output_peephole_source=source, training=True, **kwargs)
    rng = np.random.default_rng(1)
    grads = ops.lstm_backward(out.context, dy=rng.standard_normal((B, T, H)).astype(np.float32),
                              dh=np.ones((B, H), np.float32), dc=np.ones((B, H), np.float32))
    return out, grads


def assert_finite(out, grads):
    for name, value in [("y", out.y), ("h", out.h), ("c", out.c)] + [
            (name, value) for name, value in grads._asdict().items() if value is not None]:
        assert value.dtype == np.float32
        assert np.isfinite(value).all(), f"{name}: {np.count_nonzero(~np.isfinite(value))} non-finite values"


@pytest.mark.parametrize("peephole, source", VARIANTS)
@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_large_inputs_give_finite_outputs_and_gradients(peephole, source, scale):
    x, W, U, b, p = problem(50, scale, peephole, weight_scale=2.0)
    out, grads = forward_backward(x, W, U, b, p, peephole, source)
    assert_finite(out, grads)
    assert np.abs(out.y).max() <= 1.0  # h = o * tanh(c)
    # saturated gates: |c| grows by at most 1 per step
    assert np.abs(out.c).max() <= 50 + 1e-3


@pytest.mark.parametrize("peephole, source", VARIANTS)
def test_ten_thousand_steps_give_finite_outputs_and_gradients(peephole, source):
    T = 10_000
    x, W, U, b, p = problem(T, 1e4, peephole)
    mask = np.ones((2, T), bool)
    mask[1, T // 2:] = False  # one sequence half as long
    out, grads = forward_backward(x, W, U, b, p, peephole, source, mask=mask)
    assert_finite(out, grads)
    assert np.abs(out.c).max() <= T + 1
    # the same with the regularizations on
    out, grads = forward_backward(x, W, U, b, p, peephole, source, dropout=0.2, recurrent_dropout=0.2,
                                  zoneout_h=0.1, zoneout_c=0.1, weight_drop=0.2, seed=9)
    assert_finite(out, grads)


def test_long_sequence_forget_gate_open_keeps_the_cell_state_finite():
    """Forget gate forced open and input gate on: c_t grows by up to 1 per step for 10,000 steps."""
    T, H = 10_000, 4
    x = np.full((1, T, 1), 1e4, np.float32)
    W = np.zeros((1, 4 * H), np.float32)
    U = np.zeros((H, 4 * H), np.float32)
    b = np.zeros(4 * H, np.float32)
    b[:2 * H] = 50.0  # i, f saturated at 1
    b[2 * H:3 * H] = 50.0  # g = 1
    out, grads = forward_backward(x, W, U, b, np.zeros((3, H), np.float32), "diagonal", "current")
    assert_finite(out, grads)
    np.testing.assert_allclose(out.c, T, rtol=1e-3)


def test_terminate_on_nan_stops_a_diverging_run():
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5, 3)).astype(np.float32) * 100
    y = rng.standard_normal((64, 1)).astype(np.float32) * 1e3
    model = Sequential([layers.Input(shape=(5, 3)), layers.LSTM(8), layers.Dense(1)])
    from lstm_native import optimizers
    model.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=1e25))
    with np.errstate(all="ignore"):
        history = model.fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert model.stop_training
    assert len(history.history["loss"]) < 50
    assert not np.isfinite(history.history["loss"][-1])
