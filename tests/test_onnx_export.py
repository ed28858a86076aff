"""lstm_native.onnx.export: the exported graph run by onnxruntime gives our model's predictions (max abs
difference <= 1e-5, float32) on random weights and inputs, for diagonal and no peepholes, stacked and
bidirectional LSTMs (every merge mode), return_sequences, go_backwards, Dense on sequences with each
exported activation, Embedding and Masking masks, any batch size and several opsets; what ONNX's LSTM
operator cannot express (full peepholes, output_peephole_source="previous", zoneout, proj_size) exports as a
Scan, checked the same way; what has no export raises a ValueError naming the variant.

Masks: padded steps at the end of each sequence, and masks of any pattern (left padding, gaps, the first or
last step alone, a sequence that is all padding), which the graph compacts before ONNX's sequence_lens.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import onnxruntime
import pytest

import lstm_native
from lstm_native.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking
from lstm_native.models import Sequential

B, T, I, H, C, VOCAB = 5, 7, 3, 4, 3, 9
TOL = 1e-5
LENGTHS = np.array([T, 4, 1, 0, 6])  # valid steps of each sequence, the rest padding


def randomize(model, rng):
    """Random weights everywhere, peepholes and biases included (their initializers give zeros)."""
    model.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])


def padded(x, fill=0):
    x = x.copy()
    for row, length in enumerate(LENGTHS):
        x[row, length:] = fill
    return x


def sequences(rng, batch=B):
    return rng.standard_normal((batch, T, I)).astype(np.float32)


def padded_sequences(rng):
    return padded(sequences(rng))


def padded_ids(rng):
    return padded(rng.integers(1, VOCAB, size=(B, T)))


# Masked steps of any pattern: left padding, gaps, all but one step, all padding, none.
GAPS = np.ones((B, T), bool)
GAPS[0, :3] = False
GAPS[1, [1, 2, 5]] = False
GAPS[2, :-1] = False
GAPS[3] = False
GAPS[4, 1::2] = False


def gapped_sequences(rng):
    return np.where(GAPS[..., None], sequences(rng), 0).astype(np.float32)


def gapped_ids(rng):
    return np.where(GAPS, rng.integers(1, VOCAB, size=(B, T)), 0)


def export_and_run(model, x, path, **options):
    lstm_native.onnx.export(model, path, **options)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def check(model, x, path, case, **options):
    """Exports the model with random weights and compares onnxruntime's output with predict's."""
    randomize(model, np.random.default_rng(0))
    got = export_and_run(model, x, path, **options)
    expected = model.predict(x)
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    print(f"[onnx export] {case:44s} max abs error {diff:.3e}")
    assert got.shape == expected.shape and diff <= TOL
    return got


def lstm_dense(peephole):
    return [Input(shape=(T, I)), LSTM(H, peephole=peephole), Dense(C, activation="softmax")]


def stacked_dense_on_sequences():
    return [Input(shape=(T, I)), LSTM(H, return_sequences=True), Dropout(0.5),
            LSTM(H + 1, peephole=None, return_sequences=True), Dense(C, activation="relu")]


def bidirectional(merge_mode, return_sequences):
    return [Input(shape=(T, I)), Bidirectional(LSTM(H, return_sequences=return_sequences), merge_mode=merge_mode)]


def masking(go_backwards, return_sequences):
    return [Input(shape=(T, I)), Masking(), LSTM(H, go_backwards=go_backwards, return_sequences=return_sequences)]


def masking_bidirectional_stacked():
    return [Input(shape=(T, I)), Masking(), Bidirectional(LSTM(H, return_sequences=True), merge_mode="ave"),
            Bidirectional(LSTM(H, peephole=None)), Dense(C)]


def go_backwards_sequences():
    return [Input(shape=(T, I)), LSTM(H, go_backwards=True, return_sequences=True)]


def embedding():
    return [Input(shape=(T,), dtype="int64"), Embedding(VOCAB, I, mask_zero=True), LSTM(H, return_sequences=True),
            LSTM(H, return_sequences=True), Dense(C, activation="sigmoid")]


CASES = {
    "lstm-diagonal-dense-softmax": (partial(lstm_dense, "diagonal"), sequences),
    "lstm-no-peepholes-dense-softmax": (partial(lstm_dense, None), sequences),
    "stacked-return-sequences-dense-on-sequences": (stacked_dense_on_sequences, sequences),
    **{f"bidirectional-{mode}{'-sequences' * seq}": (partial(bidirectional, mode, seq), sequences)
       for mode in ("concat", "sum", "mul", "ave") for seq in (False, True)},
    **{f"masking-lstm{'-go-backwards' * back}{'-sequences' * seq}": (partial(masking, back, seq), padded_sequences)
       for back in (False, True) for seq in (False, True)},
    "masking-bidirectional-stacked": (masking_bidirectional_stacked, padded_sequences),
    "embedding-mask-stacked-sequences": (embedding, padded_ids),
    "go-backwards-sequences": (go_backwards_sequences, sequences),
    **{f"gaps-masking-lstm{'-go-backwards' * back}{'-sequences' * seq}": (partial(masking, back, seq),
                                                                           gapped_sequences)
       for back in (False, True) for seq in (False, True)},
    "gaps-masking-zero-output-sequences": (
        lambda: [Input(shape=(T, I)), Masking(), LSTM(H, return_sequences=True, zero_output_for_mask=True)],
        gapped_sequences),
    "gaps-masking-bidirectional-stacked": (masking_bidirectional_stacked, gapped_sequences),
    **{f"gaps-bidirectional-{mode}": (lambda mode=mode: [Input(shape=(T, I)), Masking(), Bidirectional(
        LSTM(H, return_sequences=True, peephole=None), merge_mode=mode), Dense(C)], gapped_sequences)
       for mode in ("concat", "sum", "mul", "ave")},
    "gaps-embedding-mask-stacked-sequences": (embedding, gapped_ids),
    # what ONNX's LSTM operator cannot express, as a Scan (see also tests/test_onnx_streaming.py)
    **{f"scan-{name}{'-gaps' * gaps}": (lambda arguments=arguments, gaps=gaps: [
        Input(shape=(T, I)), *([Masking()] * gaps), LSTM(H, return_sequences=True, **arguments), Dense(C)],
        gapped_sequences if gaps else sequences)
       for name, arguments in (("full", {"peephole": "full"}), ("previous", {"output_peephole_source": "previous"}),
                               ("zoneout", {"zoneout_h": 0.3, "zoneout_c": 0.25}),
                               ("full-previous-go-backwards", {"peephole": "full", "output_peephole_source": "previous",
                                                               "go_backwards": True}),
                               ("projected-go-backwards", {"proj_size": 2, "go_backwards": True}))
       for gaps in (False, True)},
    **{f"scan-gaps-bidirectional-full-{mode}{'-sequences' * seq}": (
        lambda mode=mode, seq=seq: [Input(shape=(T, I)), Masking(), Bidirectional(
            LSTM(H, return_sequences=seq, peephole="full"), merge_mode=mode), Dense(C)], gapped_sequences)
       for mode in ("concat", "sum", "mul", "ave") for seq in (False, True)},
    **{f"scan-bidirectional-reversed-directions{'-sequences' * seq}": (lambda seq=seq: [
        Input(shape=(T, I)), Masking(), Bidirectional(LSTM(H, go_backwards=True, return_sequences=seq)), Dense(C)],
        gapped_sequences) for seq in (False, True)},
    "scan-bidirectional-projected-stacked": (lambda: [
        Input(shape=(T, I)), Bidirectional(LSTM(H, proj_size=2, return_sequences=True)),
        Bidirectional(LSTM(H, proj_size=3, output_peephole_source="previous")), Dense(C)], sequences),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_onnxruntime(case, tmp_path):
    layers, data = CASES[case]
    check(Sequential(layers()), data(np.random.default_rng(1)), tmp_path / "model.onnx", case)


def test_padded_steps_repeat_the_last_valid_output(tmp_path):
    """ONNX's LSTM outputs zeros past a sequence's length; the graph restores ours (Keras'): the last valid h."""
    x = padded_sequences(np.random.default_rng(2))
    y = check(Sequential(masking(go_backwards=False, return_sequences=True)), x, tmp_path / "model.onnx", "padded")
    for row, length in enumerate(LENGTHS):
        expected = np.zeros(H, np.float32) if length == 0 else y[row, length - 1]
        np.testing.assert_array_equal(y[row, length:], np.broadcast_to(expected, y[row, length:].shape))
    assert np.abs(y[0]).min() > 0


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu",
                                        "softplus", "softsign", "exponential", "hard_sigmoid"])
def test_dense_activations(activation, tmp_path):
    model = Sequential([Input(shape=(T, I)), LSTM(H, return_sequences=True), Dense(C, activation=activation)])
    check(model, sequences(np.random.default_rng(3)), tmp_path / "model.onnx", f"dense-{activation}")


@pytest.mark.parametrize("opset", [11, 13, 17, 18, 21])
def test_opsets(opset, tmp_path):
    """Reductions, Unsqueeze and Squeeze take their axes, Split its sizes, as attributes in old opsets and as
    inputs in new ones (the projected LSTM is a Scan)."""
    model = Sequential([Input(shape=(T, I)), Masking(), Bidirectional(LSTM(H, return_sequences=True), merge_mode="sum"),
                        LSTM(H, proj_size=2, return_sequences=True), Bidirectional(LSTM(H), merge_mode="mul"),
                        Dense(C, activation="softmax")])
    check(model, padded_sequences(np.random.default_rng(4)), tmp_path / "model.onnx", f"opset-{opset}", opset=opset)
    check(model, gapped_sequences(np.random.default_rng(4)), tmp_path / "model.onnx", f"opset-{opset}-gaps",
          opset=opset)
    assert onnx.load(tmp_path / "model.onnx").opset_import[0].version == opset


def test_dynamic_batch_and_time(tmp_path):
    model = Sequential([Input(shape=(None, I)), LSTM(H, return_sequences=True), Dense(C)])
    randomize(model, np.random.default_rng(5))
    exported = lstm_native.onnx.export(model, tmp_path / "model.onnx")
    dims = [d.dim_param or d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "timesteps", I]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, time in ((1, 3), (9, T), (2, 12)):
        x = np.random.default_rng(batch).standard_normal((batch, time, I)).astype(np.float32)
        np.testing.assert_allclose(session.run(["output"], {"input": x})[0], model.predict(x), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("layer, message", [
    (lambda: Dense(C, activation="gelu"), "activation 'gelu'"),
])
def test_what_onnx_cannot_express_raises(layer, message, tmp_path):
    model = Sequential([Input(shape=(T, I)), layer()])
    with pytest.raises(ValueError, match=message):
        lstm_native.onnx.export(model, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_carried_states_are_refused(tmp_path):
    model = Sequential([Input(shape=(T, I), batch_size=B), LSTM(H, stateful=True, name="stateful_lstm")])
    x = sequences(np.random.default_rng(6))
    model.predict(x)
    with pytest.raises(ValueError, match="stateful_lstm: stateful, it carries states from earlier calls"):
        lstm_native.onnx.export(model, tmp_path / "model.onnx")
    model.layers[0].reset_states()
    check(model, x, tmp_path / "model.onnx", "stateful-reset")


def test_previous_source_without_peepholes_exports(tmp_path):
    """Without peepholes the output gate peeks at nothing, so output_peephole_source does not matter."""
    model = Sequential([Input(shape=(T, I)), LSTM(H, peephole=None, output_peephole_source="previous")])
    check(model, sequences(np.random.default_rng(6)), tmp_path / "model.onnx", "no-peepholes-previous")


def test_rejects_unbuilt_models_and_opsets_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="build the model"):
        lstm_native.onnx.export(Sequential([LSTM(H)]), tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="opset"):
        lstm_native.onnx.export(Sequential(lstm_dense(None)), tmp_path / "model.onnx", opset=9)
