"""Gate traces: the per-step activations the core computes, read back from its own forward pass."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_native import layers
from lstm_native.models import Sequential
from lstm_native.ops import lstm_forward, lstm_trace
from reference import random_inputs, random_mask, random_params


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_trace_obeys_the_cell_equations(rng, variant):
    peephole, source = variant
    B, T, I, H = 4, 6, 3, 5
    x, h0, c0 = random_inputs(rng, B, T, I, H)
    params = random_params(rng, I, H, peephole)
    mask = random_mask(rng, B, T)
    trace = lstm_trace(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0, mask=mask)
    out = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0, mask=mask)
    c_prev = np.concatenate([c0[:, None], trace["c"][:, :-1]], axis=1)
    h_prev = np.concatenate([h0[:, None], trace["h"][:, :-1]], axis=1)
    valid = mask[..., None]
    np.testing.assert_allclose(trace["h"], np.where(valid, trace["o"] * np.tanh(trace["c"]), h_prev), atol=1e-12)
    np.testing.assert_allclose(trace["c"], np.where(valid, trace["f"] * c_prev + trace["i"] * trace["g"], c_prev),
                               atol=1e-12)
    for gate in "ifgo":
        assert np.all(trace[gate][~mask] == 0)
    if peephole is None:  # i = σ(x W_i + h U_i + b_i), checked against the weights directly
        z_i = np.einsum("bti,ih->bth", x, params["W"][:, :H]) + h_prev @ params["U"][:, :H] + params["b"][:H]
        np.testing.assert_allclose(np.where(valid, trace["i"], 0), np.where(valid, sigmoid(z_i), 0), atol=1e-12)
    # the training pass (time-major x W) against the inference pass (batch-first x W): the same cell, its
    # GEMMs summed in another order
    np.testing.assert_allclose(trace["h"], out.y, rtol=0, atol=1e-12)


def test_model_trace_runs_the_layers_before_the_chosen_lstm():
    rng = np.random.default_rng(0)
    model = Sequential([layers.Input(shape=(6,)), layers.Embedding(7, 3, mask_zero=True),
                        layers.LSTM(4, return_sequences=True, name="first"), layers.LSTM(5, name="second"),
                        layers.Dense(2)])
    ids = rng.integers(1, 7, (3, 6))
    ids[0, 4:] = 0
    trace = model.trace(ids, layer="second")
    assert set(trace) == set("ifgoch") and trace["h"].shape == (3, 6, 5)
    np.testing.assert_allclose(trace["h"][:, -1], Sequential(model.layers[:3]).predict(ids), rtol=0, atol=1e-6)
    assert np.all(trace["i"][0, 4:] == 0)  # the padded steps carried the state
    with pytest.raises(ValueError, match="layer"):
        model.trace(ids, layer="dense_missing")


def test_trace_refuses_zoneout_layers():
    lstm = layers.LSTM(3, zoneout_h=0.1)
    with pytest.raises(ValueError, match="zoneout"):
        lstm.trace(np.zeros((1, 2, 2), np.float32))
