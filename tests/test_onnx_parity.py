"""peephole="diagonal" against onnxruntime's ONNX LSTM operator with its peephole input P.

The ONNX LSTM operator (onnx.defs.get_schema("LSTM").doc), default activations f=Sigmoid, g=h=Tanh:
    it = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Pi (.) Ct-1 + Wbi + Rbi)
    ft = f(Xt*(Wf^T) + Ht-1*(Rf^T) + Pf (.) Ct-1 + Wbf + Rbf)
    ct = g(Xt*(Wc^T) + Ht-1*(Rc^T) + Wbc + Rbc)
    Ct = ft (.) Ct-1 + it (.) ct
    ot = f(Xt*(Wo^T) + Ht-1*(Ro^T) + Po (.) Ct + Wbo + Rbo)
    Ht = ot (.) h(Ct)
The output gate's peephole reads the CURRENT cell state Ct, the input and forget gates' read Ct-1: that is
our output_peephole_source="current" (the default); "previous" must NOT match (checked below).

Layouts: X [T,B,I] (time-major, layout=0), W [1,4H,I] and R [1,4H,H] with gate row blocks [i,o,f,c],
B [1,8H] = Wb then Rb, sequence_lens [B] int32, initial_h/initial_c [1,B,H], P [1,3H] in order [i,o,f].
Outputs Y [T,1,B,H] (zero past each sequence's length: our zero_output_for_mask=True), Y_h and Y_c [1,B,H]
(the state of each sequence's last valid step).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from lstm_native import gate_orders
from lstm_native.ops import lstm_forward

B, T, I, H = 4, 6, 3, 5
OPSET = 14
RTOL = ATOL = 1e-5

def to_onnx_weights(W, U, b, p):
    """Ours (W [I,4H], U [H,4H], b [4H], p [3,H]) -> ONNX (W [1,4H,I], R [1,4H,H], B [1,8H], P [1,3H]), in the
    gate orders of lstm_native.gate_orders (whose ONNX entries this test checks)."""
    def rows(array):
        return gate_orders.permute(array, gate_orders.OURS, gate_orders.ONNX, axis=0)

    bias = rows(b)
    # ONNX adds Wb + Rb: any split whose sum is our b (here 30% / 70%) is the same cell.
    wb = 0.3 * bias
    onnx_P = gate_orders.permute(p.reshape(-1), gate_orders.OUR_PEEPHOLES, gate_orders.ONNX_PEEPHOLES, axis=0)
    return rows(W.T)[None], rows(U.T)[None], np.concatenate([wb, bias - wb])[None], onnx_P[None]


def onnx_lstm_session():
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    inputs = [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I]),
        helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 4 * H, I]),
        helper.make_tensor_value_info("R", TensorProto.FLOAT, [1, 4 * H, H]),
        helper.make_tensor_value_info("B", TensorProto.FLOAT, [1, 8 * H]),
        helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]),
        helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, B, H]),
        helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [1, B, H]),
        helper.make_tensor_value_info("P", TensorProto.FLOAT, [1, 3 * H]),
    ]
    outputs = [
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H]),
        helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, B, H]),
        helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, B, H]),
    ]
    node = helper.make_node("LSTM", names, ["Y", "Y_h", "Y_c"], hidden_size=H, direction="forward")
    graph = helper.make_graph([node], "peephole_lstm", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def session():
    return onnx_lstm_session()


def random_problem(rng):
    def normal(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    return dict(x=normal(B, T, I), W=normal(I, 4 * H), U=normal(H, 4 * H), b=normal(4 * H),
                p=normal(3, H, scale=1.0), h0=normal(B, H), c0=normal(B, H, scale=1.5),
                lengths=np.array([T, 2, T - 1, 1]))  # one full, three shorter, unsorted


def run_onnx(session, problem):
    onnx_W, onnx_R, onnx_B, onnx_P = to_onnx_weights(problem["W"], problem["U"], problem["b"], problem["p"])
    feeds = {
        "X": np.ascontiguousarray(problem["x"].transpose(1, 0, 2)),
        "W": onnx_W, "R": onnx_R, "B": onnx_B, "P": onnx_P,
        "sequence_lens": problem["lengths"].astype(np.int32),
        "initial_h": problem["h0"][None], "initial_c": problem["c0"][None],
    }
    Y, Y_h, Y_c = session.run(["Y", "Y_h", "Y_c"], {k: np.ascontiguousarray(v) for k, v in feeds.items()})
    return Y[:, 0].transpose(1, 0, 2), Y_h[0], Y_c[0]


def ours(problem, peephole="diagonal", output_peephole_source="current"):
    p = problem["p"]
    if peephole == "full":  # the same cell written with diagonal H x H matrices
        p = np.stack([np.diag(row) for row in p])
    out = lstm_forward(problem["x"], problem["W"], problem["U"], problem["b"], p, peephole=peephole,
                       output_peephole_source=output_peephole_source, h0=problem["h0"], c0=problem["c0"],
                       lengths=problem["lengths"], zero_output_for_mask=True)
    return out.y, out.h, out.c


def max_error(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


@pytest.mark.parametrize("peephole", ["diagonal", "full"], ids=["diagonal", "full_with_diagonal_matrices"])
def test_matches_onnxruntime(rng, session, peephole):
    problem = random_problem(rng)
    expected = run_onnx(session, problem)
    actual = ours(problem, peephole)
    valid = np.arange(T)[None, :] < problem["lengths"][:, None]
    assert np.all(expected[0][~valid] == 0), "onnxruntime: Y past the length is expected to be 0"
    for name, a, e in zip(("Y", "Y_h", "Y_c"), actual, expected):
        assert a.dtype == np.float32 and a.shape == e.shape, (name, a.dtype, a.shape, e.shape)
        print(f"[onnx parity] {peephole:8s} {name:3s} max abs error {max_error(a, e):.3e}")
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL, err_msg=name)
    assert np.all(actual[0][~valid] == 0)


def test_previous_output_peephole_differs_from_onnx(rng, session):
    """The comparison is sensitive to where the output gate peeks: c_{t-1} gives a clearly different result."""
    problem = random_problem(rng)
    _, expected_h, _ = run_onnx(session, problem)
    _, h, _ = ours(problem, output_peephole_source="previous")
    assert max_error(h, expected_h) > 100 * ATOL
