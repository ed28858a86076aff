"""Dropout, variational recurrent dropout, zoneout and weight-drop inside the native passes.

The masks are checked against an independent numpy implementation of their contract
(tests/masks_reference.py: Philox4x32-10 and the element indexing of regularization.hpp) through the
float64 reference cell; the gradients by central differences with the masks fixed (the same seed draws the
same masks); and the statistics of the masks and of zoneout's inference-time expectation."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_native import _core
from lstm_native.ops import lstm_backward, lstm_forward
import masks_reference
from reference import max_rel_error, random_inputs, random_mask, random_params, reference_forward
from support import RATES, SEED


@pytest.mark.parametrize(("counter", "key", "expected"), [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_matches_the_published_known_answers(counter, key, expected):
    """Random123's known-answer vectors for Philox4x32-10, for the core and for the test's own version."""
    assert tuple(_core.philox4x32_10(list(counter), list(key))) == expected
    assert tuple(int(v) for v in masks_reference.philox4x32_10(np.array([counter]), key)[0]) == expected


def case(rng, variant, B=4, T=5, I=3, H=6):
    peephole, source = variant
    x, h0, c0 = random_inputs(rng, B, T, I, H)
    return dict(x=x, h0=h0, c0=c0, mask=random_mask(rng, B, T), **random_params(rng, I, H, peephole)), (B, T, I, H)


@pytest.mark.parametrize("rates", RATES.values(), ids=RATES)
def test_training_forward_applies_the_documented_masks(rng, variant, rates):
    arrays, (B, T, I, H) = case(rng, variant)
    peephole, source = variant
    out = lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole=peephole,
                       output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], mask=arrays["mask"],
                       training=True, seed=SEED, **rates)
    masks = masks_reference.draw(SEED, B, T, I, H, **rates)
    expected = reference_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole, source,
                                 arrays["h0"], arrays["c0"], arrays["mask"], masks=masks)
    for name, got, want in zip("yhc", out[:3], expected):
        assert max_rel_error(got, want) < 1e-12, name


def test_inference_applies_no_dropout_and_the_expectation_of_zoneout(rng, variant):
    arrays, (B, T, I, H) = case(rng, variant)
    peephole, source = variant
    rates = RATES["all"]
    out = lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole=peephole,
                       output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], seed=SEED, **rates)
    expectation = {"zoneout_h": np.full((T, B, H), rates["zoneout_h"]),
                   "zoneout_c": np.full((T, B, H), rates["zoneout_c"])}
    expected = reference_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole, source,
                                 arrays["h0"], arrays["c0"], masks=expectation)
    assert max_rel_error(out.y, expected[0]) < 1e-12


@pytest.mark.parametrize("rates", RATES.values(), ids=RATES)
def test_gradients_match_central_differences_with_the_masks_fixed(rng, variant, rates):
    arrays, (B, T, I, H) = case(rng, variant, B=3, T=4, I=2, H=3)
    peephole, source = variant
    gy, gh, gc = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    names = ["x", "h0", "c0", "W", "U", "b"] + (["p"] if peephole else [])

    def run(values, training_context=False):
        out = lstm_forward(values["x"], values["W"], values["U"], values["b"], values["p"], peephole=peephole,
                           output_peephole_source=source, h0=values["h0"], c0=values["c0"], mask=arrays["mask"],
                           training=True, seed=SEED, **rates)
        return out if training_context else float((out.y * gy).sum() + (out.h * gh).sum() + (out.c * gc).sum())

    grads = lstm_backward(run(arrays, training_context=True).context, gy, gh, gc)
    analytic = dict(zip(["x", "h0", "c0", "W", "U", "b", "p"], grads))
    eps = 1e-6
    for name in names:
        value = arrays[name]
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + eps
            up = run(arrays)
            value[index] = saved - eps
            down = run(arrays)
            value[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        scale = np.maximum(np.maximum(np.abs(numeric), np.abs(analytic[name])), 1e-2)
        assert np.max(np.abs(numeric - analytic[name]) / scale) < 1e-6, name


def test_masks_depend_on_the_seed_only():
    rng = np.random.default_rng(0)
    arrays, _ = case(rng, ("diagonal", "current"), B=8, T=6, I=5, H=7)

    def y(seed):
        return lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], training=True,
                            seed=seed, **RATES["all"]).y

    np.testing.assert_array_equal(y(7), y(7))
    assert not np.array_equal(y(7), y(8))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("stream", ["input", "zoneout_h"])
def test_mask_rates_and_scaling(rate, stream):
    """Over 400,000 draws the dropped fraction is the rate within 5 standard deviations; dropout keeps
    scale 1/(1-p) so that the mean multiplier is 1."""
    count = 400_000
    dropped = (masks_reference.uniforms16(99, stream, count) < masks_reference.threshold(rate)).mean()
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / count)
    # The core's input-dropout mask, seen through a linear probe: x = 1, W = identity block, no recurrence.
    B, I = 4000, 1
    x = np.ones((B, 1, I))
    W = np.zeros((I, 4)); W[0, 2] = 1e-3  # g = tanh(1e-3 · m): c_1 = i·g ≈ 0.5·1e-3·m
    out = lstm_forward(x, W, np.zeros((1, 4)), None, None, peephole=None, training=True, seed=3, dropout=rate)
    multipliers = out.c[:, 0] / (0.5 * np.tanh(1e-3 / (1 - rate)))
    kept = multipliers > 0.5
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / B)
    np.testing.assert_allclose(multipliers[kept], 1.0, rtol=1e-9)


def test_zoneout_training_averages_to_its_inference_expectation():
    """One step from the same state in every row: the training outputs' mean over rows is the inference
    output (which applies the expectation z) within sampling error."""
    rng = np.random.default_rng(1)
    B, I, H = 20000, 3, 4
    params = random_params(rng, I, H, "diagonal")
    x = np.repeat(rng.standard_normal((1, 1, I)), B, axis=0)
    h0 = np.repeat(rng.uniform(-1, 1, (1, H)), B, axis=0)
    c0 = np.repeat(rng.standard_normal((1, H)), B, axis=0)
    rates = dict(zoneout_h=0.3, zoneout_c=0.6)
    train = lstm_forward(x, **params, h0=h0, c0=c0, training=True, seed=5, **rates)
    infer = lstm_forward(x, **params, h0=h0, c0=c0, **rates)
    for got, want in ((train.h, infer.h), (train.c, infer.c)):
        spread = np.abs(got - want).max()  # each unit takes one of two values; the mean must sit at z
        assert np.all(np.abs(got.mean(axis=0) - want[0]) < 5 * spread / np.sqrt(B) + 1e-12)


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout", "zoneout_h", "zoneout_c", "weight_drop"])
@pytest.mark.parametrize("rate", [-0.1, 1.0, float("nan")])
def test_bad_rates_are_rejected_by_name(name, rate):
    arrays, _ = case(np.random.default_rng(0), ("diagonal", "current"))
    with pytest.raises(ValueError, match=name):
        lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], training=True,
                     **{name: rate})


def test_bad_seed_is_rejected():
    arrays, _ = case(np.random.default_rng(0), ("diagonal", "current"))
    for seed in (-1, 2**64, 1.5):
        with pytest.raises(ValueError, match="seed"):
            lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], seed=seed)
