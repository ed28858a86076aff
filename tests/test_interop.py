"""lstm_native.interop and lstm_native.gate_orders: weights from and to Keras 3 and PyTorch nn.LSTM give
identical predictions (max abs difference <= 1e-5, float32) both ways, and each gate order of gate_orders is
checked against the system it names (Keras and PyTorch through the imports here, TF1 through TF's
BlockLSTM kernel below, ONNX in test_onnx_parity.py and test_onnx_export.py).

Every weight is random (not the libraries' initializers, which leave biases at zero), so that every block
of every array counts.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import functools
import re
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import torch

from lstm_native import gate_orders, interop
from lstm_native import layers as our_layers
from lstm_native.models import Sequential
from lstm_native.ops import lstm_forward

B, T, I, H, C, VOCAB = 6, 7, 5, 4, 3, 9
TOL = 1e-5
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "model-files.md"

_LAYER_NAMES = ("Input", "LSTM", "Dense", "Dropout", "Embedding", "Masking", "Bidirectional")
KERAS = SimpleNamespace(**{n: getattr(keras.layers, n) for n in _LAYER_NAMES})
OURS = SimpleNamespace(**{n: getattr(our_layers, n) for n in _LAYER_NAMES})
OURS.LSTM = functools.partial(our_layers.LSTM, peephole=None)


def randomize(model, rng):
    model.set_weights([(0.5 * rng.standard_normal(np.shape(w))).astype(np.float32) for w in model.get_weights()])


def max_diff(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(np.max(np.abs(ours - theirs)))


def report(path: str, case: str, diff: float) -> None:
    print(f"[interop] {path:18s} {case:32s} max abs error {diff:.3e}")


# ----------------------------------------------------------------------------------------------- gate orders

def test_permute_moves_whole_blocks():
    ours = np.repeat(np.arange(4), 2)  # blocks i=0, f=1, g=2, o=3 of size 2
    assert gate_orders.permute(ours, gate_orders.OURS, gate_orders.ONNX).tolist() == [0, 0, 3, 3, 1, 1, 2, 2]
    assert gate_orders.permute(ours, gate_orders.OURS, gate_orders.TF1).tolist() == [0, 0, 2, 2, 1, 1, 3, 3]
    assert gate_orders.permute([0, 1, 2], gate_orders.OUR_PEEPHOLES, gate_orders.ONNX_PEEPHOLES).tolist() == [0, 2, 1]
    kernel = np.arange(3 * 8).reshape(3, 8)
    there = gate_orders.permute(kernel, gate_orders.OURS, gate_orders.ONNX, axis=1)
    np.testing.assert_array_equal(gate_orders.permute(there, gate_orders.ONNX, gate_orders.OURS, axis=1), kernel)


@pytest.mark.parametrize("source, target, length", [("ifgo", "ifgx", 8), ("ifgo", "iffo", 8), ("ifgo", "oifg", 6)])
def test_permute_rejects_bad_orders(source, target, length):
    with pytest.raises(ValueError):
        gate_orders.permute(np.zeros(length), source, target)


def test_tf1_order_matches_tensorflow_block_lstm():
    """TF1's BlockLSTM (its LSTMCell's layout) with our weights in gate_orders.TF1 computes our diagonal
    peephole cell; BlockLSTMV2 (TF2's order) does not, so the test tells the two orders apart."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, W, U, b = (0.5 * rng.standard_normal(shape).astype(np.float32)
                  for shape in ((B, T, I), (I, 4 * H), (H, 4 * H), (4 * H,)))
    p = rng.standard_normal((3, H)).astype(np.float32)
    ours = lstm_forward(x, W, U, b, p, peephole="diagonal").y
    zeros = np.zeros((B, H), np.float32)
    wci, wcf, wco = gate_orders.permute(p, gate_orders.OUR_PEEPHOLES, gate_orders.TF1_PEEPHOLES, axis=0)
    arguments = dict(seq_len_max=np.int64(T), x=x.transpose(1, 0, 2), cs_prev=zeros, h_prev=zeros,
                     w=gate_orders.permute(np.concatenate([W, U]), gate_orders.OURS, gate_orders.TF1),
                     wci=wci, wcf=wcf, wco=wco, b=gate_orders.permute(b, gate_orders.OURS, gate_orders.TF1),
                     cell_clip=-1.0, use_peephole=True)
    diff = max_diff(ours, tf.raw_ops.BlockLSTM(forget_bias=0.0, **arguments).h.numpy().transpose(1, 0, 2))
    report("TF1 BlockLSTM", "diagonal peepholes", diff)
    assert diff <= TOL
    assert max_diff(ours, tf.raw_ops.BlockLSTMV2(**arguments).h.numpy().transpose(1, 0, 2)) > 100 * TOL


# ------------------------------------------------------------------------------------------------ Keras

def sequences(rng):
    """Float sequences, some right-padded with zero steps (for Masking)."""
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    x[1, 4:] = 0
    x[2, 1:] = 0
    return x


def padded_ids(rng):
    ids = rng.integers(1, VOCAB, size=(B, T)).astype(np.int32)
    ids[1, 4:] = 0
    ids[3, :2] = 0
    return ids


def stacked(L):  # dropouts: identity at inference
    return [L.Input(shape=(T, I)), L.LSTM(H, return_sequences=True, dropout=0.2, recurrent_dropout=0.1),
            L.LSTM(H + 1), L.Dense(C, activation="softmax")]


def bidirectional(L):
    return [L.Input(shape=(T, I)), L.Bidirectional(L.LSTM(H, return_sequences=True)),
            L.Bidirectional(L.LSTM(H), merge_mode="sum"), L.Dense(C)]


def embedding_mask(L):
    return [L.Input(shape=(T,), dtype="int32"), L.Embedding(VOCAB, I, mask_zero=True),
            L.LSTM(H, return_sequences=True), L.Dropout(0.3), L.Dense(C, activation="sigmoid")]


def masking_backwards(L):
    return [L.Input(shape=(T, I)), L.Masking(), L.LSTM(H, go_backwards=True, return_sequences=True),
            L.Bidirectional(L.LSTM(H), merge_mode="ave"), L.Dense(C, activation="tanh")]


def options_masked(L):
    return [L.Input(shape=(T, I)), L.Masking(),
            L.LSTM(H, use_bias=False, unit_forget_bias=False, return_sequences=True, zero_output_for_mask=True),
            L.LSTM(H, go_backwards=True), L.Dense(C, use_bias=False, activation="relu")]


KERAS_CASES = {"stacked": (stacked, sequences), "bidirectional": (bidirectional, sequences),
               "embedding-mask": (embedding_mask, padded_ids), "masking-go-backwards": (masking_backwards, sequences),
               "options-masked": (options_masked, sequences)}


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_from_keras(case):
    spec, data = KERAS_CASES[case]
    rng = np.random.default_rng(0)
    theirs = keras.Sequential(spec(KERAS))
    randomize(theirs, rng)
    ours = interop.from_keras(theirs)
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    x = data(rng)
    diff = max_diff(ours.predict(x), theirs.predict(x, verbose=0))
    report("Keras -> ours", case, diff)
    assert diff <= TOL


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_to_keras(case):
    spec, data = KERAS_CASES[case]
    rng = np.random.default_rng(1)
    ours = Sequential(spec(OURS))
    randomize(ours, rng)
    theirs = interop.to_keras(ours)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = data(rng)
    diff = max_diff(ours.predict(x), theirs.predict(x, verbose=0))
    report("ours -> Keras", case, diff)
    assert diff <= TOL


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
@pytest.mark.parametrize("wrap", [False, True], ids=["lstm", "bidirectional"])
def test_to_keras_rejects_peepholes(peephole, wrap):
    lstm = our_layers.LSTM(H, peephole=peephole, name=f"peephole_lstm_{peephole}")
    ours = Sequential([our_layers.Input(shape=(T, I)), our_layers.Bidirectional(lstm) if wrap else lstm])
    with pytest.raises(ValueError, match=f"peephole_lstm_{peephole} has peephole='{peephole}'"):
        interop.to_keras(ours)


@pytest.mark.parametrize("rate", ["zoneout_h", "zoneout_c"])
def test_exports_reject_zoneout(rate):
    """Zoneout acts as its expectation at inference: neither Keras nor PyTorch computes that."""
    lstm = our_layers.LSTM(H, peephole=None, name=f"zoneout_lstm_{rate}", **{rate: 0.25})
    ours = Sequential([our_layers.Input(shape=(T, I)), lstm])
    for export in (interop.to_keras, lambda model: interop.to_torch_lstm(model.layers)):
        with pytest.raises(ValueError, match=f"zoneout_lstm_{rate} has {rate}=0.25"):
            export(ours)


def test_keras_export_rejects_projections():
    """Keras' LSTM has no projection; PyTorch's proj_size is tested below, the ONNX export (a Scan) in
    test_onnx_streaming.py."""
    lstm = our_layers.LSTM(H, peephole=None, proj_size=2, name="projected_lstm")
    ours = Sequential([our_layers.Input(shape=(T, I)), lstm])
    with pytest.raises(ValueError, match="projected_lstm has proj_size=2"):
        interop.to_keras(ours)


def test_from_keras_rejects_what_has_no_counterpart():
    with pytest.raises(ValueError, match="GRU"):
        interop.from_keras(keras.Sequential([keras.Input(shape=(T, I)), keras.layers.GRU(H)]))
    with pytest.raises(ValueError, match="activation"):  # our native cell computes tanh only
        interop.from_keras(keras.Sequential([keras.Input(shape=(T, I)), keras.layers.LSTM(H, activation="relu")]))
    with pytest.raises(ValueError, match="no defined input"):
        interop.from_keras(keras.Sequential([keras.layers.LSTM(H)]))


def test_from_keras_carries_regularizers_trainable_and_unroll():
    """Regularizers and trainable matter to further training; unroll only to how Keras runs the loop."""
    rng = np.random.default_rng(5)
    theirs = keras.Sequential([keras.Input(shape=(T, I)),
                               keras.layers.LSTM(H, unroll=True, kernel_regularizer=keras.regularizers.L2(0.01),
                                                 activity_regularizer=keras.regularizers.L1(0.001)),
                               keras.layers.Dense(C, bias_regularizer=keras.regularizers.L1L2(0.1, 0.2),
                                                  trainable=False)])
    randomize(theirs, rng)
    ours = interop.from_keras(theirs)
    x = sequences(rng)
    assert max_diff(ours.predict(x), theirs.predict(x, verbose=0)) <= TOL
    lstm, dense = ours.layers
    assert (lstm.kernel.regularizer.l2, lstm.activity_regularizer.l1) == pytest.approx((0.01, 0.001))
    assert (dense.bias.regularizer.l1, dense.bias.regularizer.l2) == pytest.approx((0.1, 0.2))
    assert not dense.trainable and lstm.trainable
    theirs(x)
    assert ours._penalty() == pytest.approx(float(sum(theirs.losses)), rel=1e-5)


def test_stateful_models_convert_with_their_batch_size_and_carried_states():
    rng = np.random.default_rng(6)
    first, second = (rng.standard_normal((2, T, I)).astype(np.float32) for _ in range(2))
    theirs = keras.Sequential([keras.Input(shape=(T, I), batch_size=2), keras.layers.LSTM(H, stateful=True)])
    randomize(theirs, rng)
    theirs.predict(first, verbose=0)  # carries its states into the next call
    ours = interop.from_keras(theirs)
    assert max_diff(ours.predict(second), theirs.predict(second, verbose=0)) <= TOL
    back = interop.to_keras(ours)  # ours has carried states of batch 2 too
    assert max_diff(back.predict(first, verbose=0), ours.predict(first)) <= TOL
    unbuilt_batch = Sequential([our_layers.Input(shape=(T, I)), OURS.LSTM(H, stateful=True, name="stateful_lstm")])
    with pytest.raises(ValueError, match="stateful_lstm is stateful, and Keras' stateful LSTM needs a fixed batch"):
        interop.to_keras(unbuilt_batch)


def test_from_keras_and_back_keep_float64():
    rng = np.random.default_rng(8)
    theirs = keras.Sequential([keras.Input(shape=(T, I), dtype="float64"),
                               keras.layers.Bidirectional(keras.layers.LSTM(H, dtype="float64"), dtype="float64")])
    randomize(theirs, rng)
    x = rng.standard_normal((B, T, I))
    ours = interop.from_keras(theirs)
    assert {layer.dtype for layer in ours.layers} == {np.dtype(np.float64)}
    assert max_diff(ours.predict(x), theirs.predict(x, verbose=0)) <= TOL  # Keras' float64 LSTM is not exact
    back = interop.to_keras(ours)
    assert {layer.dtype for layer in back.layers} == {"float64"}
    assert max_diff(back.predict(x, verbose=0), theirs.predict(x, verbose=0)) == 0


@pytest.mark.parametrize("layer, message", [
    (lambda: keras.layers.LSTM(H, return_state=True), "several outputs"),
    (lambda: keras.layers.LSTM(H, kernel_constraint=keras.constraints.NonNeg()), "kernel_constraint="),
    (lambda: keras.layers.LSTM(H, recurrent_constraint=keras.constraints.MaxNorm()), "recurrent_constraint="),
    (lambda: keras.layers.LSTM(H, bias_constraint=keras.constraints.UnitNorm()), "bias_constraint="),
    (lambda: keras.layers.LSTM(H, recurrent_activation="hard_sigmoid"), "recurrent_activation"),
    (lambda: keras.layers.LSTM(H, dtype="mixed_float16"), "computes in float16"),
    (lambda: keras.layers.Dense(C, kernel_constraint=keras.constraints.NonNeg()), "kernel_constraint="),
    (lambda: keras.layers.Bidirectional(keras.layers.LSTM(H, kernel_constraint=keras.constraints.NonNeg())),
     "kernel_constraint="),
])
def test_from_keras_refuses_what_it_would_drop(layer, message):
    theirs = keras.Sequential([keras.Input(shape=(T, I)), layer()])
    with pytest.raises(ValueError, match=message):
        interop.from_keras(theirs)


@pytest.mark.parametrize("argument, value", [("weight_drop", 0.2), ("activation_regularization", 0.1),
                                             ("temporal_activation_regularization", 0.1)])
def test_to_keras_refuses_what_keras_lacks(argument, value):
    ours = Sequential([our_layers.Input(shape=(T, I)), OURS.LSTM(H, name="our_lstm", **{argument: value})])
    with pytest.raises(ValueError, match=f"to_keras: our_lstm has {argument}={value}"):
        interop.to_keras(ours)


# ---------------------------------------------------------------------------------------------- PyTorch

TORCH_CASES = [(1, False, True, 0), (2, False, True, 0), (1, True, True, 0), (2, True, True, 0), (2, False, False, 0),
               (2, False, True, 2), (2, True, False, 3)]
TORCH_IDS = ["1-layer", "2-layers", "1-layer-bidirectional", "2-layers-bidirectional", "2-layers-no-bias",
             "2-layers-proj", "2-layers-bidirectional-no-bias-proj"]
PROJECTION_WARNING = "ignore:LSTM with projections is not supported with oneDNN:UserWarning"


def torch_lstm(num_layers, bidirectional, bias, rng, proj_size=0):
    lstm = torch.nn.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=True,
                         proj_size=proj_size)
    with torch.no_grad():
        for parameter in lstm.parameters():
            parameter.copy_(torch.from_numpy(0.5 * rng.standard_normal(tuple(parameter.shape))))
    return lstm


def torch_outputs(lstm, x):
    """nn.LSTM's output sequence and the last layer's h_n, its directions concatenated."""
    with torch.no_grad():
        y, (h_n, _) = lstm(torch.from_numpy(x))
    directions = 2 if lstm.bidirectional else 1
    return y.numpy(), torch.cat(list(h_n[-directions:]), dim=-1).numpy()


@pytest.mark.filterwarnings(PROJECTION_WARNING)
@pytest.mark.parametrize("num_layers, bidirectional, bias, proj_size", TORCH_CASES, ids=TORCH_IDS)
def test_from_torch(num_layers, bidirectional, bias, proj_size, request):
    rng = np.random.default_rng(2)
    lstm = torch_lstm(num_layers, bidirectional, bias, rng, proj_size)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y, h = torch_outputs(lstm, x)
    layers = interop.from_torch_lstm(lstm.state_dict())
    assert len(layers) == num_layers
    assert all(isinstance(layer, our_layers.Bidirectional) == bidirectional for layer in layers)
    for case, return_sequences, expected in (("output", True, y), ("h_n", False, h)):
        ours = Sequential(interop.from_torch_lstm(lstm.state_dict(), return_sequences=return_sequences))
        diff = max_diff(ours.predict(x), expected)
        report("PyTorch -> ours", f"{request.node.callspec.id} {case}", diff)
        assert diff <= TOL


def test_float64_carries_both_ways():
    """nn.LSTM's dtype: a double nn.LSTM gives float64 layers, and they give double tensors back."""
    rng = np.random.default_rng(7)
    lstm = torch_lstm(2, True, True, rng).double()
    x = rng.standard_normal((B, T, I))
    layers = interop.from_torch_lstm(lstm.state_dict())
    assert all(w.dtype == np.float64 for layer in layers for w in layer.get_weights())
    assert max_diff(Sequential(layers).predict(x), torch_outputs(lstm, x)[0]) <= 1e-12
    state_dict = interop.to_torch_lstm(layers)
    assert all(tensor.dtype == torch.float64 for tensor in state_dict.values())
    again = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True).double()
    again.load_state_dict(state_dict)
    assert max_diff(torch_outputs(again, x)[0], torch_outputs(lstm, x)[0]) <= 1e-12


@pytest.mark.filterwarnings(PROJECTION_WARNING)
@pytest.mark.parametrize("num_layers, bidirectional, bias, proj_size", TORCH_CASES, ids=TORCH_IDS)
def test_to_torch(num_layers, bidirectional, bias, proj_size, request):
    rng = np.random.default_rng(3)

    def layer():
        lstm = our_layers.LSTM(H, peephole=None, use_bias=bias, return_sequences=True, proj_size=proj_size)
        return our_layers.Bidirectional(lstm) if bidirectional else lstm

    ours = Sequential([our_layers.Input(shape=(T, I))] + [layer() for _ in range(num_layers)])
    randomize(ours, rng)
    lstm = torch.nn.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=True,
                         proj_size=proj_size)
    lstm.load_state_dict(interop.to_torch_lstm(ours.layers))  # strict: every key, every shape
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    diff = max_diff(ours.predict(x), torch_outputs(lstm, x)[0])
    report("ours -> PyTorch", request.node.callspec.id, diff)
    assert diff <= TOL


def built(layer):
    layer.build((None, T, I))
    return layer


@pytest.mark.parametrize("layers, message", [
    (lambda: [built(our_layers.LSTM(H))], "peephole='diagonal'"),
    (lambda: [built(our_layers.LSTM(H, peephole=None, go_backwards=True))], "go_backwards"),
    (lambda: [built(our_layers.Bidirectional(our_layers.LSTM(H, peephole=None), merge_mode="sum"))], "merge_mode"),
    (lambda: [built(our_layers.LSTM(H, peephole=None)),
              built(our_layers.Bidirectional(our_layers.LSTM(H, peephole=None)))],
     "only LSTM layers or only Bidirectional"),
    (lambda: [built(our_layers.Dense(H))], "only LSTM layers or only Bidirectional"),
], ids=["peephole", "go-backwards", "merge-sum", "mixed", "dense"])
def test_to_torch_rejects_what_nn_lstm_cannot_express(layers, message):
    with pytest.raises(ValueError, match=message):
        interop.to_torch_lstm(layers())


def test_from_torch_rejects_foreign_keys():
    with pytest.raises(ValueError, match="unexpected key 'weight'"):
        interop.from_torch_lstm(torch.nn.Linear(I, H).state_dict())


def test_guide_block_runs(tmp_path, monkeypatch):
    """The model-files guide's Interoperability example: PyTorch in, Keras, PyTorch and ONNX out, one function."""
    import onnxruntime

    block = next(b for b in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S) if "interop." in b)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)
    x = np.random.default_rng(4).standard_normal((3, T, 16)).astype(np.float32)
    expected = namespace["model"].predict(x)
    y, h = torch_outputs(namespace["torch_lstm"], x)
    assert max_diff(namespace["lstms"][-1](namespace["lstms"][0](x)), h) <= TOL
    assert max_diff(namespace["keras_model"].predict(x, verbose=0), expected) <= TOL
    session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    assert max_diff(session.run(["output"], {"input": x})[0], expected) <= TOL
