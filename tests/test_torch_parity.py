"""peephole=None against PyTorch nn.LSTM / nn.LSTMCell: outputs and every gradient, from the same weights.

Weight mapping (ours -> torch, one layer, batch_first=True):
    weight_ih_l0 = W.T   (4H, I)      weight_hh_l0 = U.T   (4H, H)      b_ih + b_hh = b
Both use the gate blocks [i, f, g, o], so no permutation is needed; torch has two biases whose sum is ours.
Torch's h0/c0 and h_n/c_n carry a leading num_layers axis of size 1.

Gradients: the loss is a random linear function of the outputs, sum(y * gy) + sum(h_n * gh) + sum(c_n * gc),
so torch autograd and lstm_backward(context, dy=gy, dh=gh, dc=gc) see the same upstream gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_native.ops import lstm_backward, lstm_forward, lstm_step

B, T, I, H = 4, 7, 5, 6

# (rtol, atol) per dtype: float64 agrees to rounding; float32 to float32 rounding of two implementations.
TOLERANCES = {np.float64: (1e-10, 1e-10), np.float32: (1e-5, 1e-5)}
DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def assert_close(name, ours, theirs, dtype):
    rtol, atol = TOLERANCES[dtype]
    ours = np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.dtype == dtype, f"{name}: dtype {ours.dtype}, expected {np.dtype(dtype)}"
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape}, torch {theirs.shape}"
    error = np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)), initial=0.0)
    print(f"[torch parity] {np.dtype(dtype).name:8s} {name:6s} max abs error {error:.3e}")
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=name)


def random_problem(rng, dtype, bias):
    """Our arrays (x, W, U, b, h0, c0) and torch's split of b into (b_ih, b_hh) for the bias mode."""
    def normal(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    x, W, U, h0, c0 = normal(B, T, I), normal(I, 4 * H), normal(H, 4 * H), normal(B, H), normal(B, H)
    if bias == "none":
        return (x, W, U, None, h0, c0), None
    if bias == "all_in_b_ih":
        b_ih = normal(4 * H)
        b_hh = np.zeros(4 * H, dtype)
    else:  # "random_split": b = b_ih + b_hh, computed in float64 and rounded once
        b_ih, b_hh = normal(4 * H), normal(4 * H)
    # In float32 torch's b_ih + b_hh may differ from our b by one rounding: far inside the tolerance.
    b = (b_ih.astype(np.float64) + b_hh.astype(np.float64)).astype(dtype)
    return (x, W, U, b, h0, c0), (b_ih, b_hh)


def torch_lstm(W, U, biases, dtype):
    """nn.LSTM (one layer, batch_first) holding our weights: weight_ih_l0 = W.T, weight_hh_l0 = U.T."""
    lstm = torch.nn.LSTM(I, H, num_layers=1, bias=biases is not None, batch_first=True)
    lstm = lstm.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(U.T)))
        if biases is not None:
            lstm.bias_ih_l0.copy_(torch.from_numpy(biases[0]))
            lstm.bias_hh_l0.copy_(torch.from_numpy(biases[1]))
    return lstm


def linear_loss(outputs, upstream):
    """sum(output * upstream): its gradient w.r.t. each output is that output's upstream gradient."""
    return sum((output * torch.from_numpy(grad)).sum() for output, grad in zip(outputs, upstream))


def leaf(array):
    return torch.tensor(array, requires_grad=True)


def assert_parameter_gradients(lstm, grads, biases, dtype):
    assert_close("dW", grads.dW, lstm.weight_ih_l0.grad.T, dtype)
    assert_close("dU", grads.dU, lstm.weight_hh_l0.grad.T, dtype)
    if biases is None:
        assert grads.db is None
    else:
        # z depends on b_ih and b_hh only through their sum: both torch gradients are our db.
        assert_close("db", grads.db, lstm.bias_ih_l0.grad, dtype)
        assert_close("db", grads.db, lstm.bias_hh_l0.grad, dtype)
    assert grads.dp is None


@DTYPES
@pytest.mark.parametrize("bias", ["all_in_b_ih", "random_split", "none"])
def test_full_sequences_match_torch(rng, dtype, bias):
    (x, W, U, b, h0, c0), biases = random_problem(rng, dtype, bias)
    gy, gh, gc = (rng.standard_normal(shape).astype(dtype) for shape in ((B, T, H), (B, H), (B, H)))

    out = lstm_forward(x, W, U, b, peephole=None, h0=h0, c0=c0, training=True)
    grads = lstm_backward(out.context, dy=gy, dh=gh, dc=gc)

    lstm = torch_lstm(W, U, biases, dtype)
    tx, th0, tc0 = leaf(x), leaf(h0), leaf(c0)
    ty, (th, tc) = lstm(tx, (th0[None], tc0[None]))
    linear_loss((ty, th[0], tc[0]), (gy, gh, gc)).backward()

    assert_close("y", out.y, ty, dtype)
    assert_close("h_n", out.h, th[0], dtype)
    assert_close("c_n", out.c, tc[0], dtype)
    assert_close("dx", grads.dx, tx.grad, dtype)
    assert_close("dh0", grads.dh0, th0.grad, dtype)
    assert_close("dc0", grads.dc0, tc0.grad, dtype)
    assert_parameter_gradients(lstm, grads, biases, dtype)


@DTYPES
def test_omitted_initial_state_is_zero_state_of_torch(rng, dtype):
    """h0=c0=None is torch's default zero state; dh0/dc0 are still the gradients w.r.t. that zero state."""
    (x, W, U, b, _, _), biases = random_problem(rng, dtype, "random_split")
    gy = rng.standard_normal((B, T, H)).astype(dtype)

    out = lstm_forward(x, W, U, b, peephole=None, training=True)
    grads = lstm_backward(out.context, dy=gy)

    lstm = torch_lstm(W, U, biases, dtype)
    tx, th0, tc0 = leaf(x), leaf(np.zeros((B, H), dtype)), leaf(np.zeros((B, H), dtype))
    ty, (th, tc) = lstm(tx, (th0[None], tc0[None]))
    linear_loss((ty,), (gy,)).backward()

    assert_close("y", out.y, ty, dtype)
    assert_close("h_n", out.h, th[0], dtype)
    assert_close("c_n", out.c, tc[0], dtype)
    assert_close("dx", grads.dx, tx.grad, dtype)
    assert_close("dh0", grads.dh0, th0.grad, dtype)
    assert_close("dc0", grads.dc0, tc0.grad, dtype)
    assert_parameter_gradients(lstm, grads, biases, dtype)


@DTYPES
@pytest.mark.parametrize("zero_output_for_mask", [True, False], ids=["zero_output", "carried_output"])
def test_variable_lengths_match_packed_sequences(rng, dtype, zero_output_for_mask):
    """lengths= against torch's pack_padded_sequence (unsorted lengths, one full, several shorter).

    Torch's pad_packed_sequence puts 0 at padded steps: our zero_output_for_mask=True, where the upstream
    gradient at padded steps must flow nowhere. With zero_output_for_mask=False our padded outputs are the
    carried h, i.e. torch's h_n of that sequence, and their upstream gradient flows into it; the torch side
    of that case is built as where(valid, y_padded, h_n) so autograd routes it the same way.
    """
    (x, W, U, b, h0, c0), biases = random_problem(rng, dtype, "random_split")
    lengths = np.array([3, T, 1, 5])  # unsorted; torch packed sequences need lengths >= 1
    valid = np.arange(T)[None, :] < lengths[:, None]
    x[~valid] = 1e3  # garbage in the padding must not matter to either side
    gy, gh, gc = (rng.standard_normal(shape).astype(dtype) for shape in ((B, T, H), (B, H), (B, H)))

    out = lstm_forward(x, W, U, b, peephole=None, h0=h0, c0=c0, lengths=lengths,
                       zero_output_for_mask=zero_output_for_mask, training=True)
    grads = lstm_backward(out.context, dy=gy, dh=gh, dc=gc)

    lstm = torch_lstm(W, U, biases, dtype)
    tx, th0, tc0 = leaf(x), leaf(h0), leaf(c0)
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.from_numpy(lengths), batch_first=True,
                                                     enforce_sorted=False)
    packed_y, (th, tc) = lstm(packed, (th0[None], tc0[None]))
    ty, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_y, batch_first=True, total_length=T)
    if not zero_output_for_mask:
        ty = torch.where(torch.from_numpy(valid)[:, :, None], ty, th[0][:, None, :])
    linear_loss((ty, th[0], tc[0]), (gy, gh, gc)).backward()

    if zero_output_for_mask:
        assert np.all(out.y[~valid] == 0), "padded outputs must be exactly 0 with zero_output_for_mask=True"
    assert_close("y", out.y, ty, dtype)
    assert_close("h_n", out.h, th[0], dtype)
    assert_close("c_n", out.c, tc[0], dtype)
    assert_close("dx", grads.dx, tx.grad, dtype)
    assert np.all(grads.dx[~valid] == 0), "dx at padded steps must be exactly 0"
    assert_close("dh0", grads.dh0, th0.grad, dtype)
    assert_close("dc0", grads.dc0, tc0.grad, dtype)
    assert_parameter_gradients(lstm, grads, biases, dtype)


@DTYPES
def test_step_matches_torch_lstm_cell(rng, dtype):
    (x, W, U, b, h0, c0), biases = random_problem(rng, dtype, "random_split")
    cell = torch.nn.LSTMCell(I, H).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        cell.weight_hh.copy_(torch.from_numpy(np.ascontiguousarray(U.T)))
        cell.bias_ih.copy_(torch.from_numpy(biases[0]))
        cell.bias_hh.copy_(torch.from_numpy(biases[1]))

    h, c = lstm_step(x[:, 0], h0, c0, W, U, b, peephole=None)
    with torch.no_grad():
        th, tc = cell(torch.from_numpy(x[:, 0]), (torch.from_numpy(h0), torch.from_numpy(c0)))

    assert_close("h", h, th, dtype)
    assert_close("c", c, tc, dtype)
