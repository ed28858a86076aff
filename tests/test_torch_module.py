"""lstm_native.torch.LSTM against torch.nn.LSTM: every constructor option, PackedSequence, state dicts both
ways, a training loop with torch.optim, and bad inputs raising nn.LSTM's kinds of error.

Parity: both modules hold the same weights (our state dict loaded from a seeded nn.LSTM); the loss is a random
linear function of output, h_n and c_n, so that both see the same upstream gradients; output, h_n, c_n and
every parameter's gradient must agree to 1e-5 (float32) and 1e-10 (float64).
"""

from __future__ import annotations

import io
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_native.torch as lt

I, H, P = 3, 5, 2
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
# nn.LSTM's own notice that it computes a projection without oneDNN (pytest turns warnings into errors)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
LARGEST_ERROR = {}  # dtype -> the largest parity error seen, printed when the module's tests end (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def report_largest_parity_errors():
    yield
    for dtype, error in LARGEST_ERROR.items():
        print(f"\n[torch module parity] {dtype}: largest abs error {error:.3e}")

OPTIONS = [
    dict(),
    dict(num_layers=2),
    dict(bias=False),
    dict(batch_first=True),
    dict(bidirectional=True),
    dict(proj_size=P),
    dict(num_layers=2, dropout=0.5),  # eval mode: dropout off, as nn.LSTM
    dict(num_layers=2, bidirectional=True, proj_size=P, batch_first=True, bias=False),
]


def pair(dtype, **options):
    """(nn.LSTM seeded, ours holding its state dict), both in eval mode."""
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(I, H, **options).to(dtype).eval()
    ours = lt.LSTM(I, H, **options).to(dtype).eval()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def assert_close(name, ours, theirs, dtype):
    assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    error = (ours.detach().double() - theirs.detach().double()).abs().max().item() if ours.numel() else 0.0
    LARGEST_ERROR[dtype] = max(LARGEST_ERROR.get(dtype, 0.0), error)
    assert error <= TOLERANCE[dtype], f"{name}: max abs error {error:.3e}"


def linear_loss(tensors, generator):
    """sum(t * g) over the tensors with fixed random g: a loss whose upstream gradients are g."""
    return sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum() for t in tensors)


def run_both(theirs, ours, make_inputs, dtype):
    """Forward and backward of both modules on the same inputs; compares outputs and parameter gradients."""
    results = []
    for module in (theirs, ours):
        module.zero_grad()
        output, (h_n, c_n) = module(*make_inputs())
        data = output.data if isinstance(output, torch.nn.utils.rnn.PackedSequence) else output
        linear_loss((data, h_n, c_n), torch.Generator().manual_seed(1)).backward()
        results.append((output, data, h_n, c_n))
    for name, theirs_value, ours_value in zip(("output", "h_n", "c_n"), results[0][1:], results[1][1:]):
        assert_close(name, ours_value, theirs_value, dtype)
    their_parameters = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        assert_close(f"d{name}", parameter.grad, their_parameters[name].grad, dtype)
    return results


@DTYPES
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
def test_parity_with_nn_lstm(dtype, options, with_hx):
    theirs, ours = pair(dtype, **options)
    T, B = 4, 3
    directions = 2 if options.get("bidirectional") else 1
    layers = options.get("num_layers", 1) * directions
    generator = torch.Generator().manual_seed(2)
    x = torch.randn((B, T, I) if options.get("batch_first") else (T, B, I), generator=generator, dtype=dtype)
    hx = (torch.randn(layers, B, options.get("proj_size") or H, generator=generator, dtype=dtype),
          torch.randn(layers, B, H, generator=generator, dtype=dtype))

    def inputs():
        return (x.clone().requires_grad_(), tuple(t.clone().requires_grad_() for t in hx)) if with_hx else (x,)

    run_both(theirs, ours, inputs, dtype)


@DTYPES
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
def test_unbatched_input(dtype, with_hx):
    theirs, ours = pair(dtype, num_layers=2, proj_size=P)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(4, I, generator=generator, dtype=dtype)
    hx = (torch.randn(2, P, generator=generator, dtype=dtype), torch.randn(2, H, generator=generator, dtype=dtype))
    results = run_both(theirs, ours, lambda: (x, hx) if with_hx else (x,), dtype)
    assert results[1][0].shape == (4, P) and results[1][2].shape == (2, P)


@DTYPES
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True, proj_size=P)],
                         ids=["one_layer", "two_layers_bidirectional_projected"])
def test_packed_sequence(dtype, enforce_sorted, options):
    theirs, ours = pair(dtype, **options)
    lengths = torch.tensor([5, 4, 2, 1] if enforce_sorted else [2, 5, 1, 4])
    x = torch.randn(5, 4, I, generator=torch.Generator().manual_seed(4), dtype=dtype)

    def inputs():
        return (pack_padded_sequence(x.clone().requires_grad_(), lengths, enforce_sorted=enforce_sorted),)

    (their_output, *_), (our_output, *_) = run_both(theirs, ours, inputs, dtype)
    assert type(our_output) is type(their_output)
    assert torch.equal(our_output.batch_sizes, their_output.batch_sizes)
    for name in ("sorted_indices", "unsorted_indices"):
        ours_value, theirs_value = getattr(our_output, name), getattr(their_output, name)
        assert (ours_value is None and theirs_value is None) or torch.equal(ours_value, theirs_value), name


@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True, proj_size=P, bias=False)])
def test_state_dict_round_trip_both_ways(options):
    torch.manual_seed(5)
    theirs, ours = torch.nn.LSTM(I, H, **options), lt.LSTM(I, H, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    theirs.load_state_dict(torch.load(buffer))  # ours -> nn.LSTM, through a file
    x = torch.randn(4, 2, I)
    assert torch.allclose(theirs(x)[0], ours(x)[0], atol=1e-6)
    reloaded = lt.LSTM(I, H, **options)
    reloaded.load_state_dict(theirs.state_dict())  # nn.LSTM -> ours
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), ours.state_dict().values()))


def test_peephole_parameters_are_named_and_initialized_like_the_others():
    torch.manual_seed(6)
    diagonal = lt.LSTM(I, H, num_layers=2, bidirectional=True, peephole="diagonal")
    full = lt.LSTM(I, H, peephole="full")
    shapes = {name: tuple(p.shape) for name, p in diagonal.named_parameters() if "peephole" in name}
    assert shapes == {f"weight_peephole_l{k}{s}": (3, H) for k in (0, 1) for s in ("", "_reverse")}
    assert full.weight_peephole_l0.shape == (3, H, H)
    bound = 1 / H ** 0.5
    for parameter in itertools.chain(diagonal.parameters(), full.parameters()):
        assert parameter.abs().max() <= bound and parameter.std() > bound / 4
    with pytest.raises(RuntimeError, match="weight_peephole_l0"):  # not an nn.LSTM state dict
        torch.nn.LSTM(I, H).load_state_dict(full.state_dict())


def test_training_loop_with_optimizer_scheduler_and_clipping_decreases_the_loss():
    torch.manual_seed(7)
    model = lt.LSTM(I, 8, num_layers=2, batch_first=True, peephole="diagonal", recurrent_dropout=0.1, dropout=0.1)
    head = torch.nn.Linear(8, 2)
    parameters = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(parameters, lr=0.03)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.5)
    x = torch.randn(32, 6, I)
    target = (x[:, :, 0].sum(1) > 0).long()  # the sign of a sum over time: needs the recurrence
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        output, _ = model(x)
        loss = torch.nn.functional.cross_entropy(head(output[:, -1]), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, max_norm=1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    assert scheduler.get_last_lr()[0] == pytest.approx(0.03 * 0.5 ** 3)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_to_dtype_and_outputs_follow_it():
    model = lt.LSTM(I, H, peephole="full").double()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    output, (h_n, c_n) = model(torch.randn(3, 2, I, dtype=torch.float64))
    assert output.dtype == h_n.dtype == c_n.dtype == torch.float64
    assert model.to(torch.float32)(torch.randn(3, 2, I))[0].dtype == torch.float32


def assert_same_kind_of_error(call_ours, call_theirs, match):
    """Ours raises the exception type nn.LSTM raises, with a message matching ``match``."""
    with pytest.raises(Exception) as theirs:
        call_theirs()
    with pytest.raises(theirs.type, match=match):
        call_ours()


@pytest.mark.parametrize("case", ["dtype", "integer", "size", "rank", "hidden_shape", "cell_shape", "unbatched_hx"])
def test_bad_inputs_raise_what_nn_lstm_raises(case):
    theirs, ours = pair(torch.float32, num_layers=2)
    x = torch.randn(4, 3, I)
    zeros = torch.zeros(2, 3, H)
    inputs, match = {
        "dtype": ((x.double(),), "input: dtype torch.float64"),
        "integer": ((x.long(),), "input: dtype torch.int64"),
        "size": ((torch.randn(4, 3, I + 1),), "input.size\\(-1\\).*Expected 3, got 4"),
        "rank": ((torch.randn(4, 3, I, 1),), "Expected input to be 2D or 3D, got 4D"),
        "hidden_shape": ((x, (torch.zeros(2, 2, H), zeros)), "h_0 of size \\(2, 3, 5\\), got \\[2, 2, 5\\]"),
        "cell_shape": ((x, (zeros, torch.zeros(2, 3, H + 1))), "c_0 of size \\(2, 3, 5\\), got \\[2, 3, 6\\]"),
        "unbatched_hx": ((x[:, 0], (zeros, zeros)), "hx: for unbatched 2-D input"),
    }[case]
    assert_same_kind_of_error(lambda: ours(*inputs), lambda: theirs(*inputs), match)


def test_bad_device_raises_naming_the_input():
    theirs, ours = pair(torch.float32)
    x = torch.randn(4, 3, I, device="meta")
    assert_same_kind_of_error(lambda: ours(x), lambda: theirs(x), "input: on meta")


@pytest.mark.parametrize("arguments, error, match", [
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(input_size=2.5), TypeError, "input_size"),
    (dict(proj_size=H), ValueError, "proj_size"),
    (dict(dropout=1.5), ValueError, "dropout"),
    (dict(peephole="diag"), ValueError, "peephole"),
    (dict(output_peephole_source="next"), ValueError, "output_peephole_source"),
    (dict(zoneout_h=1.0), ValueError, "zoneout_h"),
    (dict(recurrent_dropout=-0.1), ValueError, "recurrent_dropout"),
    (dict(weight_drop=float("nan")), ValueError, "weight_drop: expected a finite number"),
    (dict(zoneout_c="0.1"), TypeError, "zoneout_c: expected a number"),  # as every rate of the library
    (dict(recurrent_dropout=True), TypeError, "recurrent_dropout: expected a number"),
    (dict(proj_size=2, zoneout_c=0.1), ValueError, "zoneout"),
])
def test_bad_constructor_arguments(arguments, error, match):
    options = dict(input_size=I, hidden_size=H)
    options.update(arguments)
    with pytest.raises(error, match=match):
        lt.LSTM(**options)
