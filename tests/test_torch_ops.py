"""The PyTorch operators under lstm_native.torch: gradcheck of every cell variant, the float64 numpy reference,
torch.compile(fullgraph=True) and torch.export, seeded regularization, autocast, repeated backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstm_native.torch as lt
from lstm_native._backend import core
from lstm_native.torch import _ops
from lstm_native.torch.functional import lstm
from reference import VARIANTS, random_inputs, random_params, reference_forward

B, T, I, H, P = 3, 4, 2, 3, 2


def tensors(rng, peephole, projected=False, dtype=np.float64):
    """Leaf tensors x, W, U, b, p, W_hr, h0, c0 (p, W_hr None where absent), requiring grad."""
    params = random_params(rng, I, H, peephole, dtype=dtype, P=P if projected else None)
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype=dtype, P=P if projected else None)
    arrays = (x, params["W"], params["U"], params["b"], params["p"], params.get("W_hr"), h0, c0)
    return [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("shape", [(3, 5, 4, 6, 6, False, False), (2, 7, 3, 5, 5, True, False),
                                   (2, 7, 3, 5, 2, False, True)], ids=["plain", "zoneout", "projected"])
def test_workspace_size_is_the_cores(shape):
    batch, time, features, hidden, output, zoneout, projected = shape
    assert _ops.training_workspace_numel(*shape) == core.training_workspace_size(
        batch, time, features, hidden, output if projected else 0, zoneout=zoneout)


@pytest.mark.parametrize("projected", [False, True], ids=["", "projected"])
def test_gradcheck_every_variant(rng, variant, projected):
    peephole, source = variant
    inputs = [t for t in tensors(rng, peephole, projected) if t is not None]
    names = [n for n, t in zip("x W U b p W_hr h0 c0".split(), tensors(rng, peephole, projected)) if t is not None]

    def function(*values):
        return lstm(**dict(zip(names, values)), peephole=peephole, output_peephole_source=source)

    assert torch.autograd.gradcheck(function, inputs)


def test_gradcheck_with_lengths_and_regularization(rng):
    """Right-padded sequences (one of length 0), and training with every rate: the backward uses the masks
    its forward drew from the seed tensor."""
    x, W, U, b, p, _, h0, c0 = tensors(rng, "diagonal")
    lengths = torch.tensor([4, 0, 2])
    seed = torch.tensor(123)

    def function(x, W, U, b, p, h0, c0):
        mask = torch.arange(T)[None, :] < lengths[:, None]
        return torch.ops.lstm_native.lstm_forward(x, W, U, b, p, None, h0, c0, mask, seed, "diagonal", "current",
                                                  True, True, 0.2, 0.3, 0.2, 0.1, 0.25)[:3]

    assert torch.autograd.gradcheck(function, (x, W, U, b, p, h0, c0))
    assert torch.autograd.gradcheck(lambda *v: lstm(*v[:5], h0=v[5], c0=v[6], lengths=lengths, peephole="diagonal"),
                                    (x, W, U, b, p, h0, c0))


def test_gradcheck_through_the_module_with_packed_sequences():
    torch.manual_seed(0)
    model = lt.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, peephole="full").double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, 4, 1])

    def function(x):
        output, (h_n, c_n) = model(pack_padded_sequence(x, lengths, enforce_sorted=False))
        return output.data, h_n, c_n

    assert torch.autograd.gradcheck(function, (x,))


@pytest.mark.parametrize("used", [0, 1, 2], ids=["y", "h_n", "c_n"])
def test_outputs_the_loss_leaves_unused_get_no_gradient_tensor(rng, used):
    """An output the loss does not use reaches the backward as None (the core takes it as zero), never as a
    materialized tensor of zeros; the workspace output takes no gradient. The gradients equal those with
    explicit zero gradients for the other outputs, and gradcheck holds for each output alone."""
    x, W, U, b, p, _, h0, c0 = tensors(rng, "diagonal")
    seed = torch.tensor(5)
    outputs = torch.ops.lstm_native.lstm_forward(x, W, U, b, p, None, h0, c0, None, seed, "diagonal", "current",
                                                 False, True, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert not outputs[3].requires_grad
    inputs = (x, W, U, b, p, h0, c0)
    alone = torch.autograd.grad(outputs[used].sum(), inputs, retain_graph=True)
    explicit = torch.autograd.grad(outputs[:3], inputs, [torch.ones_like(o) if k == used else torch.zeros_like(o)
                                                         for k, o in enumerate(outputs[:3])])
    for got, want in zip(alone, explicit):
        assert torch.equal(got, want)
    assert torch.autograd.gradcheck(lambda *v: lstm(*v[:5], h0=v[5], c0=v[6], peephole="diagonal")[used], inputs)


def test_backward_twice_through_a_retained_graph_gives_the_same_gradients(rng):
    """The core spends its workspace: the op must work on a copy for the graph to run backward again."""
    x, W, U, b, p, _, h0, c0 = tensors(rng, "full")
    y, h_n, c_n = lstm(x, W, U, b, p, h0=h0, c0=c0, peephole="full")
    loss = y.sum() + h_n.sum() + c_n.sum()
    first = torch.autograd.grad(loss, (x, W, U, p), retain_graph=True)
    second = torch.autograd.grad(loss, (x, W, U, p))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("peephole, source", [v for v in VARIANTS if v[0] is not None])
def test_bidirectional_peephole_module_against_the_numpy_reference(peephole, source):
    """Each direction of each sequence, within its length, against tests/reference.py in float64."""
    torch.manual_seed(1)
    model = lt.LSTM(I, H, bidirectional=True, batch_first=True, peephole=peephole, output_peephole_source=source)
    model = model.double().eval()
    x = torch.randn(B, T, I, dtype=torch.float64)
    lengths = torch.tensor([2, 4, 3])
    with torch.no_grad():
        packed, (h_n, c_n) = model(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    y, _ = pad_packed_sequence(packed, batch_first=True)
    for direction, suffix in enumerate(("", "_reverse")):
        weights = {name: getattr(model, f"{name}_l0{suffix}").detach().numpy()
                   for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole")}
        for row, length in enumerate(lengths.tolist()):
            sequence = x[row:row + 1, :length].numpy()
            sequence = sequence[:, ::-1] if direction else sequence
            ref_y, ref_h, ref_c = reference_forward(sequence, weights["weight_ih"].T, weights["weight_hh"].T,
                                                    weights["bias_ih"] + weights["bias_hh"],
                                                    weights["weight_peephole"], peephole, source)
            ref_y = ref_y[:, ::-1] if direction else ref_y
            ours_y = y[row:row + 1, :length, direction * H:(direction + 1) * H].numpy()
            np.testing.assert_allclose(ours_y, ref_y, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(h_n[direction, row].numpy(), ref_h[0], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(c_n[direction, row].numpy(), ref_c[0], rtol=1e-12, atol=1e-12)
        assert not y[lengths < T, T - 1].any()  # padding steps output zero, as nn.LSTM's unpacked output


REGULARIZATION = dict(recurrent_dropout=0.3, zoneout_h=0.2, zoneout_c=0.2, weight_drop=0.3)


def training_output(seed, **rates):
    torch.manual_seed(0)
    model = lt.LSTM(I, H, num_layers=2, dropout=0.3, peephole="diagonal", **rates).train()
    x = torch.randn(T, B, I)
    torch.manual_seed(seed)
    return model(x)[0]


@pytest.mark.parametrize("rate", list(REGULARIZATION) + ["all"])
def test_torch_manual_seed_makes_training_reproducible(rate):
    rates = REGULARIZATION if rate == "all" else {rate: REGULARIZATION[rate]}
    first, again, other = training_output(10, **rates), training_output(10, **rates), training_output(11, **rates)
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-3


def test_regularization_is_off_in_eval_mode():
    torch.manual_seed(0)
    model = lt.LSTM(I, H, recurrent_dropout=0.5, weight_drop=0.5).eval()
    plain = lt.LSTM(I, H).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(T, B, I)
    assert torch.equal(model(x)[0], plain(x)[0])
    assert not torch.equal(model.train()(x)[0], plain(x)[0])


def test_gradients_of_eval_mode_zoneout_raise():
    model = lt.LSTM(I, H, zoneout_h=0.1).eval()
    with pytest.raises(ValueError, match="zoneout_h, zoneout_c"):
        model(torch.randn(T, B, I))[0].sum().backward()
    with torch.no_grad():  # inference: zoneout acts as its expectation
        assert model(torch.randn(T, B, I))[0].shape == (T, B, H)


def compiled_model(**options):
    torch.manual_seed(2)
    return lt.LSTM(I, H, batch_first=True, peephole="diagonal", **options).double()


# Inductor compiles C++ kernels for the ops around ours (seconds each on 2 cores): it gets the one-layer
# model; the two-layer bidirectional one goes through AOT autograd without inductor ("aot_eager").
@pytest.mark.parametrize("backend, options", [("inductor", {}), ("aot_eager", dict(num_layers=2, bidirectional=True))],
                         ids=["inductor", "aot_eager-bidirectional"])
# inductor's own modules use the deprecated torch.jit.script_method (pytest turns warnings into errors)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_fullgraph_gives_the_eager_result_and_gradients(backend, options):
    model = compiled_model(**options)
    states = 2 * options.get("num_layers", 1) if options.get("bidirectional") else 1
    x = torch.randn(B, T, I, dtype=torch.float64)
    hx = (torch.randn(states, B, H, dtype=torch.float64), torch.randn(states, B, H, dtype=torch.float64))
    compiled = torch.compile(model, fullgraph=True, backend=backend)  # a graph break would raise
    eager_output, (eager_h, _) = model(x, hx)
    (eager_output.sum() + eager_h.sum()).backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    output, (h_n, _) = compiled(x, hx)
    (output.sum() + h_n.sum()).backward()
    torch.testing.assert_close(output, eager_output, rtol=0, atol=1e-12)
    for grad, eager_grad in zip((p.grad for p in model.parameters()), eager_grads):
        torch.testing.assert_close(grad, eager_grad, rtol=0, atol=1e-12)


def test_torch_compile_fullgraph_of_the_functional_form_with_lengths(rng):
    x, W, U, b, p, _, h0, c0 = tensors(rng, "full")
    lengths = torch.tensor([1, 4, 3])

    def function(x, W, U, b, p):
        return lstm(x, W, U, b, p, lengths=lengths, peephole="full", zero_output_for_mask=True)

    compiled = torch.compile(function, fullgraph=True, backend="aot_eager")
    for ours, eager in zip(compiled(x, W, U, b, p), function(x, W, U, b, p)):
        torch.testing.assert_close(ours, eager, rtol=0, atol=0)


def test_torch_export_gives_the_eager_result():
    model = compiled_model(num_layers=2, bidirectional=True).eval()
    x = torch.randn(B, T, I, dtype=torch.float64)
    program = torch.export.export(model, (x,))
    assert any("lstm_native.lstm_forward" in str(node.target) for node in program.graph.nodes)
    exported_output, (exported_h, exported_c) = program.module()(x)
    output, (h_n, c_n) = model(x)
    for ours, eager in ((exported_output, output), (exported_h, h_n), (exported_c, c_n)):
        torch.testing.assert_close(ours, eager, rtol=0, atol=0)


def test_autocast_computes_half_precision_input_in_float32():
    torch.manual_seed(3)
    model = lt.LSTM(I, H, peephole="diagonal")
    x = torch.randn(T, B, I).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, (h_n, c_n) = model(x)
    assert output.dtype == h_n.dtype == c_n.dtype == torch.float32
    torch.testing.assert_close(output, model(x.float())[0], rtol=0, atol=0)


def test_functional_bad_inputs_name_the_argument(rng):
    x, W, U, b, p, _, h0, c0 = tensors(rng, "diagonal")
    with pytest.raises(TypeError, match="h0: expected dtype torch.float64"):
        lstm(x, W, U, b, p, h0=h0.float(), peephole="diagonal")
    with pytest.raises(ValueError, match="lengths: every length must lie in \\[0, 4\\]"):
        lstm(x, W, U, b, p, lengths=torch.tensor([1, 5, 2]), peephole="diagonal")
    with pytest.raises(ValueError, match="lengths: expected shape \\(3,\\)"):
        lstm(x, W, U, b, p, lengths=torch.tensor([1, 2]), peephole="diagonal")
    with pytest.raises(ValueError, match="x: expected shape \\(B, T, I\\)"):
        lstm(x[0], W, U, b, p, peephole="diagonal")
    with pytest.raises(ValueError, match="peephole"):
        lstm(x, W, U, b, p, peephole="diag")


def test_opcheck_of_the_operators(rng):
    """torch.library.opcheck: schemas (the spending backward declares its mutation), fake implementations."""
    x, W, U, b, p, _, h0, c0 = (t if t is None else t.detach() for t in tensors(rng, "diagonal"))
    forward = (x, W, U, b, p, None, h0, c0, None, torch.tensor(7), "diagonal", "current", False, True, 0.1, 0.2, 0.0,
               0.0, 0.3)
    torch.library.opcheck(torch.ops.lstm_native.lstm_forward.default, forward)
    y, _, _, workspace = torch.ops.lstm_native.lstm_forward(*forward)
    for op in (torch.ops.lstm_native.lstm_backward, torch.ops.lstm_native.lstm_backward_spending):
        backward = (y, None, None, workspace.clone(), B, T, W, U, b, p, None, None, torch.tensor(7), "diagonal",
                    "current", False, 0.1, 0.2, 0.0, 0.0, 0.3)
        torch.library.opcheck(op.default, backward, test_utils=("test_schema", "test_faketensor"))
