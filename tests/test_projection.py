"""The projected cell (LSTMP, Sak et al. 2014; PyTorch's proj_size) in the core: h_t = (o_t ⊙ tanh(c_t)) W_hr.

Checked against the float64 numpy reference (tests/reference.py, every peephole variant, masks, initial
states, regularization masks), float64 central differences of every gradient (W_hr included), PyTorch
nn.LSTM(proj_size=P) for peephole=None, and the step, trace and thread-count paths of the same core.
"""

import numpy as np
import pytest

import lstm_native
from lstm_native.ops import lstm_backward, lstm_forward, lstm_step, lstm_trace
from masks_reference import draw
from reference import max_rel_error, random_inputs, random_mask, random_params, reference_forward
import support
from support import FLOOR, RTOL, central_differences

B, T, I, H = 3, 4, 3, 5
SIZES = pytest.mark.parametrize("P", [2, 7], ids=["P<H", "P>H"])
GRADIENT_OF = {**support.GRADIENT_OF, "W_hr": "dW_hr"}


def problem(rng, peephole, P, dtype=np.float64):
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype, P=P)
    return dict(x=x, h0=h0, c0=c0, **random_params(rng, I, H, peephole, dtype, P=P))


def forward(arrays, variant, mask=None, **kwargs):
    peephole, source = variant
    return lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], W_hr=arrays["W_hr"],
                        peephole=peephole, output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"],
                        mask=mask, **kwargs)


def reference(arrays, variant, mask=None, **kwargs):
    return reference_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], *variant,
                             h0=arrays["h0"], c0=arrays["c0"], mask=mask, W_hr=arrays["W_hr"], **kwargs)


@SIZES
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
def test_forward_matches_reference(rng, variant, P, dtype, tolerance, zero_output_for_mask):
    arrays = problem(rng, variant[0], P, dtype)
    mask = random_mask(rng, B, T)
    expected = reference(arrays, variant, mask, zero_output_for_mask=zero_output_for_mask)
    for training in (False, True):
        y, h, c, _ = forward(arrays, variant, mask, zero_output_for_mask=zero_output_for_mask, training=training)
        assert y.shape == (B, T, P) and h.shape == (B, P) and c.shape == (B, H)
        for name, ours, theirs in zip("yhc", (y, h, c), expected):
            assert ours.dtype == dtype
            assert max_rel_error(ours, theirs) <= tolerance, (name, training)


@SIZES
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carry-output", "zero-output"])
def test_gradients_match_central_differences(rng, variant, P, zero_output_for_mask):
    arrays = problem(rng, variant[0], P)
    mask = random_mask(rng, B, T)
    gy, gh, gc = rng.standard_normal((B, T, P)), rng.standard_normal((B, P)), rng.standard_normal((B, H))

    def loss():
        y, h, c, _ = forward(arrays, variant, mask, zero_output_for_mask=zero_output_for_mask)
        return np.sum(y * gy) + np.sum(h * gh) + np.sum(c * gc)

    context = forward(arrays, variant, mask, zero_output_for_mask=zero_output_for_mask, training=True).context
    gradients = lstm_backward(context, gy, gh, gc)
    for name, array in arrays.items():
        analytic = getattr(gradients, GRADIENT_OF[name])
        if array is None:
            assert analytic is None, name
            continue
        assert analytic.shape == array.shape, name
        numeric = central_differences(loss, array)
        error = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FLOOR)
        worst = np.unravel_index(np.argmax(error), error.shape)
        assert error[worst] <= RTOL, (name, worst, analytic[worst], numeric[worst])


RATES = dict(dropout=0.3, recurrent_dropout=0.4, weight_drop=0.25)


def test_regularization_masks_size_the_projected_state(rng):
    """Recurrent dropout draws one mask element per unit of h (P of them) and weight-drop one per element of
    U (P, 4H); forward matches the reference with those masks, and backward its finite differences."""
    variant, P, seed = ("diagonal", "current"), 2, 1234
    arrays = problem(rng, variant[0], P)
    masks = draw(seed, B, T, I, H, P=P, **RATES)
    assert masks["recurrent"].shape == (B, P) and masks["U"].shape == (P, 4 * H)
    y, h, c, context = forward(arrays, variant, training=True, seed=seed, **RATES)
    for ours, theirs in zip((y, h, c), reference(arrays, variant, masks=masks)):
        assert max_rel_error(ours, theirs) <= 1e-12
    gy = rng.standard_normal((B, T, P))
    gradients = lstm_backward(context, gy)

    def loss():
        return np.sum(forward(arrays, variant, training=True, seed=seed, **RATES).y * gy)

    for name in ("W_hr", "U", "x"):
        numeric = central_differences(loss, arrays[name])
        analytic = getattr(gradients, GRADIENT_OF[name])
        error = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FLOOR)
        assert error.max() <= RTOL, name


@pytest.mark.parametrize("training", [False, True])
def test_zoneout_with_a_projection_is_refused(rng, training):
    arrays = problem(rng, "diagonal", 2)
    with pytest.raises(ValueError, match="zoneout.*projection"):
        forward(arrays, ("diagonal", "current"), training=training, zoneout_h=0.1)
    with pytest.raises(ValueError, match="zoneout.*projection"):
        lstm_step(arrays["x"][:, 0], arrays["h0"], arrays["c0"], arrays["W"], arrays["U"], arrays["b"], arrays["p"],
                  W_hr=arrays["W_hr"], zoneout_c=0.1)


def test_steps_and_trace_follow_the_sequence(rng, variant):
    arrays = problem(rng, variant[0], 2)
    y, h_n, c_n, _ = forward(arrays, variant)
    h, c = arrays["h0"], arrays["c0"]
    for t in range(T):
        h, c = lstm_step(arrays["x"][:, t], h, c, arrays["W"], arrays["U"], arrays["b"], arrays["p"],
                         W_hr=arrays["W_hr"], peephole=variant[0], output_peephole_source=variant[1])
        np.testing.assert_allclose(h, y[:, t], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(c, c_n, rtol=1e-13, atol=1e-13)
    trace = lstm_trace(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], W_hr=arrays["W_hr"],
                       peephole=variant[0], output_peephole_source=variant[1], h0=arrays["h0"], c0=arrays["c0"])
    assert trace["h"].shape == (B, T, 2) and trace["o"].shape == (B, T, H)
    np.testing.assert_allclose(trace["h"], y, rtol=1e-12, atol=1e-12)
    # h is the projection of o ⊙ tanh(c): the trace's own gates and states give it back
    np.testing.assert_allclose((trace["o"] * np.tanh(trace["c"])) @ arrays["W_hr"], y, rtol=1e-12, atol=1e-12)


def test_results_do_not_depend_on_the_thread_count(rng):
    """Large enough for the recurrence and the reductions to run in parallel chunks."""
    B_, T_, I_, H_, P_ = 64, 30, 16, 64, 24
    x, h0, c0 = random_inputs(rng, B_, T_, I_, H_, np.float32, P=P_)
    params = random_params(rng, I_, H_, "diagonal", np.float32, P=P_)
    dy = rng.standard_normal((B_, T_, P_)).astype(np.float32)
    results = []
    saved = lstm_native.get_num_threads()
    try:
        for threads in (1, 2, 3):
            lstm_native.set_num_threads(threads)
            out = lstm_forward(x, **params, h0=h0, c0=c0, training=True)
            results.append((out.y, *lstm_backward(out.context, dy)))
    finally:
        lstm_native.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_shapes_are_checked(rng):
    arrays = problem(rng, None, 2)
    variant = (None, "current")
    with pytest.raises(ValueError, match="W_hr: expected shape \\[5, 2\\]"):
        forward({**arrays, "W_hr": arrays["W_hr"][:, :1].copy()}, variant)
    with pytest.raises(ValueError, match="U: expected shape \\[H, 4H\\]"):
        forward({**arrays, "W_hr": None}, variant)
    with pytest.raises(ValueError, match="h0: expected shape \\[3, 2\\]"):
        forward({**arrays, "h0": np.zeros((B, H))}, variant)
    with pytest.raises(ValueError, match="W_hr"):
        forward({**arrays, "W_hr": np.zeros(3)}, variant)
    with pytest.raises(TypeError, match="W_hr: expected dtype float64"):
        forward({**arrays, "W_hr": arrays["W_hr"].astype(np.float32)}, variant)
    context = forward(arrays, variant, training=True).context
    with pytest.raises(ValueError, match="dy: expected shape \\[3, 4, 2\\]"):
        lstm_backward(context, np.zeros((B, T, H)))


torch = pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["float64", "float32"])
def test_matches_torch_proj_size(rng, dtype, tolerance):
    """nn.LSTM(proj_size=P): weight_ih = Wᵀ, weight_hh = Uᵀ (4H, P), weight_hr = W_hrᵀ (P, H), b = b_ih + b_hh."""
    P = 2
    arrays = problem(rng, None, P, dtype)
    lstm = torch.nn.LSTM(I, H, proj_size=P, batch_first=True).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(arrays["W"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(arrays["U"].T.copy()))
        lstm.weight_hr_l0.copy_(torch.from_numpy(arrays["W_hr"].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(arrays["b"]))
        lstm.bias_hh_l0.zero_()
    x, h0, c0 = (torch.tensor(arrays[k], requires_grad=True) for k in ("x", "h0", "c0"))
    y_t, (h_t, c_t) = lstm(x, (h0[None], c0[None]))
    ours = forward(arrays, (None, "current"), training=True)
    for name, a, b in (("y", ours.y, y_t), ("h", ours.h, h_t[0]), ("c", ours.c, c_t[0])):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=tolerance, atol=tolerance, err_msg=name)
    gy, gh, gc = (rng.standard_normal(shape).astype(dtype) for shape in ((B, T, P), (B, P), (B, H)))
    ((y_t * torch.from_numpy(gy)).sum() + (h_t[0] * torch.from_numpy(gh)).sum()
     + (c_t[0] * torch.from_numpy(gc)).sum()).backward()
    grads = lstm_backward(ours.context, gy, gh, gc)
    for name, a, b in (("dx", grads.dx, x.grad), ("dh0", grads.dh0, h0.grad), ("dc0", grads.dc0, c0.grad),
                       ("dW", grads.dW, lstm.weight_ih_l0.grad.T), ("dU", grads.dU, lstm.weight_hh_l0.grad.T),
                       ("dW_hr", grads.dW_hr, lstm.weight_hr_l0.grad.T), ("db", grads.db, lstm.bias_ih_l0.grad)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=tolerance, atol=tolerance, err_msg=name)
