"""Variable-length batches: the CPU passes skip the work of masked steps (the per-step products of the rows
whose step is masked, the input projection's and the reductions' rows of masked steps), which must change
no result beyond rounding, and none at all across thread counts.

Masks here: right-padded (from `lengths`, or the same as a mask), and ones with holes where a row resumes
after masked steps (a row skipped for good at its first masked step would fail every comparison)."""

from __future__ import annotations

import numpy as np
import pytest

import lstm_native
from lstm_native.ops import lengths_to_mask, lstm_backward, lstm_forward
import masks_reference
from reference import max_rel_error, random_inputs, random_params, reference_forward
from support import FLOOR, GRADIENT_OF, RTOL, SEED, central_differences

# B=37 at H=8: recurrence chunks of 16, 16 and 5 rows (the last with a row outside Eigen's groups of 4 columns).
B, T, I, H, P = 37, 9, 5, 8, 4
REGULARIZATION = dict(dropout=0.2, recurrent_dropout=0.25, zoneout_h=0.15, zoneout_c=0.1, weight_drop=0.3)


def lengths_of(rng, batch, time, shortest=1):
    lengths = rng.integers(shortest, time + 1, size=batch)
    lengths[:2] = (time, shortest)
    return lengths


def resuming_mask(rng, batch, time):
    """Right-padded rows plus rows that resume after masked steps: row 3 after a long hole, row 4 after a
    masked first step, row 5 valid at the last step only."""
    mask = lengths_to_mask(lengths_of(rng, batch, time), time)
    mask[3] = False
    mask[3, :2] = mask[3, -2:] = True
    mask[4] = True
    mask[4, 0] = False
    mask[5] = False
    mask[5, -1] = True
    mask[6:12] = rng.random((6, time)) < 0.5
    return mask


MASKS = ("lengths", "right-padded", "resuming")


def mask_arguments(rng, kind, batch=B, time=T):
    """(keyword arguments for lstm_forward, the (B, T) bool mask they mean)."""
    if kind == "lengths":
        lengths = lengths_of(rng, batch, time, shortest=0)
        return dict(lengths=lengths), lengths_to_mask(lengths, time)
    mask = lengths_to_mask(lengths_of(rng, batch, time, shortest=0), time) if kind == "right-padded" else \
        resuming_mask(rng, batch, time)
    return dict(mask=mask), mask


@pytest.fixture
def restore_threads():
    saved = lstm_native.get_num_threads()
    yield
    lstm_native.set_num_threads(saved)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
def test_forward_matches_the_reference(rng, variant, kind, zero_output_for_mask, threads, restore_threads):
    lstm_native.set_num_threads(threads)
    peephole, source = variant
    x, h0, c0 = random_inputs(rng, B, T, I, H)
    params = random_params(rng, I, H, peephole)
    given, mask = mask_arguments(rng, kind)
    expected = reference_forward(x, params["W"], params["U"], params["b"], params["p"], peephole, source, h0, c0,
                                 mask, zero_output_for_mask)
    for training in (False, True):
        out = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0,
                           zero_output_for_mask=zero_output_for_mask, training=training, **given)
        for name, got, want in zip("yhc", out[:3], expected):
            assert max_rel_error(got, want) < 1e-12, (training, name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("projected", [False, True], ids=["plain", "projection"])
def test_training_with_regularization_matches_the_reference(rng, kind, projected, threads, restore_threads):
    lstm_native.set_num_threads(threads)
    Ho = P if projected else H
    rates = dict(REGULARIZATION, zoneout_h=0.0, zoneout_c=0.0) if projected else REGULARIZATION
    x, h0, c0 = random_inputs(rng, B, T, I, H, P=P if projected else None)
    params = random_params(rng, I, H, "diagonal", P=P if projected else None)
    given, mask = mask_arguments(rng, kind)
    out = lstm_forward(x, **params, h0=h0, c0=c0, zero_output_for_mask=True, training=True, seed=SEED, **rates,
                       **given)
    masks = masks_reference.draw(SEED, B, T, I, H, P=P if projected else None, **rates)
    expected = reference_forward(x, params["W"], params["U"], params["b"], params["p"], "diagonal", "current", h0, c0,
                                 mask, True, masks=masks, W_hr=params.get("W_hr"))
    assert out.y.shape == (B, T, Ho)
    for name, got, want in zip("yhc", out[:3], expected):
        assert max_rel_error(got, want) < 1e-12, name


@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
def test_gradients_with_lengths_match_central_differences(rng, variant, zero_output_for_mask):
    peephole, source = variant
    batch, time = 5, 4
    lengths = np.array([4, 0, 2, 1, 3])
    x, h0, c0 = random_inputs(rng, batch, time, 3, 3)
    arrays = dict(x=x, h0=h0, c0=c0, **random_params(rng, 3, 3, peephole))
    gy, gh, gc = rng.standard_normal((batch, time, 3)), rng.standard_normal((batch, 3)), rng.standard_normal((batch, 3))

    def forward(training=False):
        return lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], peephole=peephole,
                            output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], lengths=lengths,
                            zero_output_for_mask=zero_output_for_mask, training=training)

    def loss():
        y, h, c, _ = forward()
        return np.sum(y * gy) + np.sum(h * gh) + np.sum(c * gc)

    gradients = lstm_backward(forward(training=True).context, gy, gh, gc)
    for name, array in arrays.items():
        if array is None:
            continue
        analytic, numeric = getattr(gradients, GRADIENT_OF[name]), central_differences(loss, array)
        error = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FLOOR)
        assert error.max() <= RTOL, name


def run(x, params, variant, h0, c0, dy, dh, dc, **kwargs):
    """(forward outputs, gradients) of one training call."""
    peephole, source = variant
    out = lstm_forward(x, **params, peephole=peephole, output_peephole_source=source, h0=h0, c0=c0, training=True,
                       **kwargs)
    return out, lstm_backward(out.context, dy, dh, dc)


@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
def test_a_row_of_a_variable_length_batch_equals_that_row_run_alone(rng, variant, zero_output_for_mask):
    """Outputs and gradients of each row against the row alone at its own length (no padding at all); the
    weights' gradients against the sum over the rows run alone."""
    x, h0, c0 = random_inputs(rng, B, T, I, H)
    params = random_params(rng, I, H, variant[0])
    lengths = lengths_of(rng, B, T)
    dy, dh, dc = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    out, grads = run(x, params, variant, h0, c0, dy, dh, dc, lengths=lengths,
                     zero_output_for_mask=zero_output_for_mask)
    summed = {name: np.zeros_like(params[name[1:]]) for name in ("dW", "dU", "db", "dp") if params[name[1:]] is not None}
    for b, length in enumerate(lengths):
        row = slice(b, b + 1)
        # past its length a row's output is its carried h (or 0): that part of dy reaches h_n
        dh_row = dh[row] + (0 if zero_output_for_mask else dy[row, length:].sum(axis=1))
        alone, alone_grads = run(x[row, :length], params, variant, h0[row], c0[row], dy[row, :length], dh_row, dc[row])
        carried = np.zeros((T - length, H)) if zero_output_for_mask else np.broadcast_to(alone.h[0], (T - length, H))
        for name, got, want in (("y", out.y[b], np.concatenate([alone.y[0], carried])), ("h", out.h[b], alone.h[0]),
                                ("c", out.c[b], alone.c[0]), ("dx", grads.dx[b, :length], alone_grads.dx[0]),
                                ("dh0", grads.dh0[b], alone_grads.dh0[0]), ("dc0", grads.dc0[b], alone_grads.dc0[0])):
            assert max_rel_error(got, want) < 1e-12, (b, name)
        assert not grads.dx[b, length:].any(), b
        for name in summed:
            summed[name] += getattr(alone_grads, name)
    for name, want in summed.items():
        assert max_rel_error(getattr(grads, name), want) < 1e-12, name


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("projected", [False, True], ids=["plain", "projection"])
def test_more_padding_changes_nothing(rng, kind, projected):
    """The batch padded with 5 more masked steps, with every regularization mask (which are indexed by row and
    step, not by the padded length): the same outputs and gradients."""
    variant = ("diagonal", "current")
    rates = dict(REGULARIZATION, zoneout_h=0.0, zoneout_c=0.0) if projected else REGULARIZATION
    Ho = P if projected else H
    x, h0, c0 = random_inputs(rng, B, T, I, H, P=P if projected else None)
    params = random_params(rng, I, H, variant[0], P=P if projected else None)
    _, mask = mask_arguments(rng, kind)
    dy, dh, dc = rng.standard_normal((B, T, Ho)), rng.standard_normal((B, Ho)), rng.standard_normal((B, H))
    extra = 5
    pad = lambda array: np.concatenate([array, np.zeros((B, extra) + array.shape[2:], array.dtype)], axis=1)
    out, grads = run(x, params, variant, h0, c0, dy, dh, dc, mask=mask, zero_output_for_mask=True, seed=SEED, **rates)
    padded, padded_grads = run(pad(x), params, variant, h0, c0, pad(dy), dh, dc, mask=pad(mask),
                               zero_output_for_mask=True, seed=SEED, **rates)
    assert not padded.y[:, T:].any() and not padded_grads.dx[:, T:].any()
    for name, got, want in (("y", padded.y[:, :T], out.y), ("h", padded.h, out.h), ("c", padded.c, out.c),
                            ("dx", padded_grads.dx[:, :T], grads.dx)):
        assert max_rel_error(got, want) < 1e-12, name
    for name, want in grads._asdict().items():
        if name != "dx" and want is not None:
            assert max_rel_error(getattr(padded_grads, name), want) < 1e-12, name


@pytest.mark.skipif(not lstm_native.with_openmp, reason="a build without OpenMP always runs on one thread")
@pytest.mark.parametrize("kind", MASKS)
def test_variable_length_results_do_not_depend_on_the_thread_count(rng, kind, restore_threads):
    """float32 at sizes where every kind of chunk comes in several pieces (see tests/test_determinism.py)."""
    batch, time, hidden = 37, 30, 64
    x, h0, c0 = random_inputs(rng, batch, time, 16, hidden, dtype=np.float32)
    params = random_params(rng, 16, hidden, "diagonal", dtype=np.float32)
    given, _ = mask_arguments(rng, kind, batch, time)
    dy = rng.standard_normal((batch, time, hidden)).astype(np.float32)
    results = []
    for threads in (1, 2):
        lstm_native.set_num_threads(threads)
        inference = lstm_forward(x, **params, h0=h0, c0=c0, **given)
        out, grads = run(x, params, ("diagonal", "current"), h0, c0, dy, None, None, seed=SEED, **REGULARIZATION,
                         **given)
        results.append([*inference[:3], *out[:3], *(g for g in grads if g is not None)])
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("extra", ["plain", "projection", "zoneout"])
def test_the_training_workspace_is_written_entirely(rng, variant, kind, extra):
    """The training forward writes every element of its workspace, masked steps included, though it skips their
    work: the workspace is handed to callers (ops' pool, the PyTorch operator's output tensor), which must
    never see what its memory held before. Prefilled with NaN, it holds none after the call."""
    from lstm_native._backend import core

    peephole, source = variant
    projected = extra == "projection"
    x, h0, c0 = random_inputs(rng, B, T, I, H, P=P if projected else None)
    params = random_params(rng, I, H, peephole, P=P if projected else None)
    rates = dict(zoneout_h=0.15, zoneout_c=0.1) if extra == "zoneout" else {}
    _, mask = mask_arguments(rng, kind)
    size = core.training_workspace_size(B, T, I, H, P if projected else 0, zoneout=bool(rates))
    workspace = np.full(size, np.nan)
    core.forward(x=x, h0=h0, c0=c0, mask=mask, training=True, workspace=workspace,
                 peephole=peephole or "none", output_peephole_source=source, **params, **rates)
    assert not np.isnan(workspace).any(), f"{np.isnan(workspace).sum()} of {size} elements left unwritten"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("given", ["mask", "lengths"])
def test_a_batch_whose_every_step_is_masked(rng, variant, given, threads, restore_threads):
    """No valid step at all (every length 0): no product has a row to compute. Each row carries its initial
    state to the end, zero outputs, the input gets no gradient and the weights none but through nothing; the
    call neither crashes (an empty product once divided by zero) nor reads what it never wrote."""
    lstm_native.set_num_threads(threads)
    batch, time = 5, 7
    x, h0, c0 = random_inputs(rng, batch, time, I, H)
    params = random_params(rng, I, H, variant[0])
    kwargs = dict(mask=np.zeros((batch, time), bool)) if given == "mask" else dict(lengths=np.zeros(batch, int))
    dy, dh, dc = (rng.standard_normal(shape) for shape in ((batch, time, H), (batch, H), (batch, H)))
    inference = lstm_forward(x, **params, peephole=variant[0], output_peephole_source=variant[1], h0=h0, c0=c0,
                             zero_output_for_mask=True, **kwargs)
    out, grads = run(x, params, variant, h0, c0, dy, dh, dc, zero_output_for_mask=True, **kwargs)
    for result in (inference, out):
        np.testing.assert_array_equal(result.y, 0)
        np.testing.assert_array_equal(result.h, h0)
        np.testing.assert_array_equal(result.c, c0)
    np.testing.assert_array_equal(grads.dx, 0)
    np.testing.assert_array_equal(grads.dh0, dh)  # the final state is the initial one: its gradient passes through
    np.testing.assert_array_equal(grads.dc0, dc)
    for name in ("dW", "dU", "db"):
        np.testing.assert_array_equal(getattr(grads, name), 0, err_msg=name)
