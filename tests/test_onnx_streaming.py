"""lstm_native.onnx.export(..., streaming=True) and the Scan export of what ONNX's LSTM operator cannot express.

A streaming graph takes "input" plus the initial states h0_<k>, c0_<k> of the k-th LSTM and gives "output" plus
the final states h_n_<k>, c_n_<k>. Run by onnxruntime over a sequence cut into chunks of different lengths (one
step included), each chunk's final states fed to the next, it gives predict's output on the whole sequence
(max abs difference <= 1e-5): the concatenated chunk outputs with return_sequences=True, the last chunk's output
otherwise, Dense layers after the LSTMs included, masks of any pattern included.

Projected LSTMs (proj_size), full peepholes, output_peephole_source="previous" and zoneout export as a Scan of
standard operators, checked against predict (streaming or not, with and without masks) and against the float64
reference of tests/reference.py from given initial states. Bidirectional and go_backwards refuse to stream.
"""

from __future__ import annotations

import lstm_native
import numpy as np
import onnx
import onnxruntime
import pytest
from lstm_native.layers import LSTM, Bidirectional, Dense, Embedding, Input, Masking
from lstm_native.models import Sequential
from reference import random_mask, reference_forward

B, T, I, H, P, C, VOCAB = 4, 9, 3, 5, 3, 2, 7
TOL = 1e-5
CHUNKS = [(1, 3, 1, 4), (T,), (2, 1, 1, 5)]  # chunk lengths that cut the T steps


def randomize(model, rng):
    """Random weights everywhere, peepholes, biases and projections included."""
    model.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])


def lstms(model):
    return [layer for layer in model.layers if isinstance(layer, LSTM)]


def export_session(model, path, **options):
    exported = lstm_native.onnx.export(model, path, **options)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return exported, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_stream(session, model, x, chunks):
    """The chunk outputs of a streaming session over x cut at `chunks`, from zero states."""
    states = {}
    for k, lstm in enumerate(lstms(model)):
        states[f"h0_{k}"] = np.zeros((len(x), lstm.output_size), np.float32)
        states[f"c0_{k}"] = np.zeros((len(x), lstm.units), np.float32)
    names = [output.name for output in session.get_outputs()]
    outputs, start = [], 0
    for length in chunks:
        results = dict(zip(names, session.run(names, {"input": x[:, start:start + length], **states})))
        outputs.append(results["output"])
        states = {name.replace("h_n_", "h0_").replace("c_n_", "c0_"): value
                  for name, value in results.items() if name != "output"}
        start += length
    assert start == x.shape[1]
    return outputs


def check_stream(model, x, path, case, chunks, **options):
    randomize(model, np.random.default_rng(0))
    _, session = export_session(model, path, streaming=True, **options)
    outputs = run_stream(session, model, x, chunks)
    # sequences [B, chunk, F] join along time; a last step's output [B, F] is the last chunk's
    got = np.concatenate(outputs, axis=1) if outputs[0].ndim == 3 else outputs[-1]
    expected = model.predict(x)
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    print(f"[onnx streaming] {case:36s} chunks {chunks!s:14s} max abs error {diff:.3e}")
    assert got.shape == expected.shape and diff <= TOL


def sequences(rng):
    return rng.standard_normal((B, T, I)).astype(np.float32)


def gapped_sequences(rng):
    """Masked steps of any pattern (tests/reference.py's random_mask: a row all masked, holes, early ends)."""
    mask = random_mask(rng, B, T)
    mask[3, 4:] = False  # a row that ends early: its later chunks carry the state
    return np.where(mask[..., None], sequences(rng), 0).astype(np.float32)


STREAM_CASES = {
    "lstm-sequences": (lambda: [Input(shape=(T, I)), LSTM(H, return_sequences=True)], sequences),
    "lstm-last-dense": (lambda: [Input(shape=(T, I)), LSTM(H), Dense(C, activation="softmax")], sequences),
    "two-lstms-sequences-dense": (lambda: [Input(shape=(T, I)), LSTM(H, return_sequences=True),
                                           LSTM(H + 1, peephole=None, return_sequences=True), Dense(C)], sequences),
    "two-lstms-last-dense": (lambda: [Input(shape=(T, I)), LSTM(H, return_sequences=True), LSTM(H), Dense(C)],
                             sequences),
    "masking-two-lstms-sequences": (lambda: [Input(shape=(T, I)), Masking(), LSTM(H, return_sequences=True),
                                             LSTM(H, return_sequences=True), Dense(C)], gapped_sequences),
    "masking-lstm-last": (lambda: [Input(shape=(T, I)), Masking(), LSTM(H)], gapped_sequences),
    "masking-zero-output-sequences": (lambda: [Input(shape=(T, I)), Masking(),
                                               LSTM(H, return_sequences=True, zero_output_for_mask=True)],
                                      gapped_sequences),
    "embedding-mask-lstm-sequences": (
        lambda: [Input(shape=(T,), dtype="int64"), Embedding(VOCAB, I, mask_zero=True),
                 LSTM(H, return_sequences=True), Dense(C)],
        lambda rng: np.where(random_mask(rng, B, T), rng.integers(1, VOCAB, size=(B, T)), 0)),
    "projected-two-lstms-last-dense": (lambda: [Input(shape=(T, I)), LSTM(H, proj_size=P, return_sequences=True),
                                                LSTM(H, proj_size=P - 1), Dense(C)], sequences),
    "masking-projected-and-plain-sequences": (
        lambda: [Input(shape=(T, I)), Masking(), LSTM(H, proj_size=P, return_sequences=True),
                 LSTM(H, return_sequences=True)], gapped_sequences),
    "masking-zoneout-full-previous-last": (
        lambda: [Input(shape=(T, I)), Masking(), LSTM(H, zoneout_h=0.3, zoneout_c=0.2, return_sequences=True),
                 LSTM(H, peephole="full", output_peephole_source="previous")], gapped_sequences),
}


@pytest.mark.parametrize("chunks", CHUNKS, ids=lambda chunks: "-".join(map(str, chunks)))
@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_stream_in_chunks_matches_predict(case, chunks, tmp_path):
    layers, data = STREAM_CASES[case]
    check_stream(Sequential(layers()), data(np.random.default_rng(1)), tmp_path / "model.onnx", case, chunks)


@pytest.mark.parametrize("opset", [11, 13, 18, 21])
def test_stream_opsets(opset, tmp_path):
    """Squeeze, Unsqueeze and Split take attributes in old opsets and inputs in new ones."""
    model = Sequential(STREAM_CASES["masking-projected-and-plain-sequences"][0]())
    check_stream(model, gapped_sequences(np.random.default_rng(5)), tmp_path / "model.onnx", f"opset-{opset}",
                 (1, 3, 1, 4), opset=opset)


def projected(peephole, source, masked, return_sequences=True):
    return [Input(shape=(T, I)), *([Masking()] if masked else []),
            LSTM(H, proj_size=P, peephole=peephole, output_peephole_source=source, return_sequences=return_sequences),
            Dense(C)]


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "gaps"])
def test_projected_lstm_matches_predict(variant, masked, streaming, tmp_path):
    """Before the Scan export, a projected LSTM raised ValueError (ONNX's LSTM has no projection)."""
    model = Sequential(projected(*variant, masked))
    x = (gapped_sequences if masked else sequences)(np.random.default_rng(2))
    case = f"projected-{variant[0]}-{variant[1]}{'-gaps' * masked}"
    if streaming:
        check_stream(model, x, tmp_path / "model.onnx", case, (2, 1, 6))
        return
    randomize(model, np.random.default_rng(0))
    _, session = export_session(model, tmp_path / "model.onnx")
    got, expected = session.run(["output"], {"input": x})[0], model.predict(x)
    print(f"[onnx scan] {case:36s} max abs error {np.max(np.abs(got - expected)):.3e}")
    assert got.shape == expected.shape and np.max(np.abs(got - expected)) <= TOL


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_scan_matches_the_reference_from_given_states(variant, zero_output_for_mask, rng, tmp_path):
    """One projected LSTM's streaming graph from random h0, c0 gives the float64 reference's y, h_n and c_n."""
    lstm = LSTM(H, proj_size=P, peephole=variant[0], output_peephole_source=variant[1], return_sequences=True,
                zero_output_for_mask=zero_output_for_mask)
    model = Sequential([Input(shape=(T, I)), Masking(), lstm])
    randomize(model, rng)
    mask = random_mask(rng, B, T)
    x = np.where(mask[..., None], sequences(rng), 0).astype(np.float32)
    h0, c0 = rng.standard_normal((B, P)).astype(np.float32), rng.standard_normal((B, H)).astype(np.float32)
    _, session = export_session(model, tmp_path / "model.onnx", streaming=True)
    got = session.run(["output", "h_n_0", "c_n_0"], {"input": x, "h0_0": h0, "c0_0": c0})
    p = None if lstm.peephole_weights is None else lstm.peephole_weights.value
    expected = reference_forward(x, lstm.kernel.value, lstm.recurrent_kernel.value, lstm.bias.value, p, *variant,
                                 h0=h0, c0=c0, mask=mask, zero_output_for_mask=zero_output_for_mask,
                                 W_hr=lstm.projection.value)
    for name, a, e in zip(("y", "h_n", "c_n"), got, expected):
        assert a.shape == e.shape, name
        np.testing.assert_allclose(a, e, rtol=TOL, atol=TOL, err_msg=name)


def test_state_names_and_shapes(tmp_path):
    model = Sequential([Input(shape=(T, I)), LSTM(H, proj_size=P, return_sequences=True), LSTM(H + 1), Dense(C)])
    exported, _ = export_session(model, tmp_path / "model.onnx", streaming=True)

    def signature(values):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    assert signature(exported.graph.input) == [("input", ["batch", "timesteps", I]), ("h0_0", ["batch", P]),
                                               ("c0_0", ["batch", H]), ("h0_1", ["batch", H + 1]),
                                               ("c0_1", ["batch", H + 1])]
    assert signature(exported.graph.output) == [("output", ["batch", C]), ("h_n_0", ["batch", P]),
                                                ("c_n_0", ["batch", H]), ("h_n_1", ["batch", H + 1]),
                                                ("c_n_1", ["batch", H + 1])]
    whole = lstm_native.onnx.export(model, tmp_path / "whole.onnx")
    assert [v.name for v in whole.graph.input] == ["input"] and [v.name for v in whole.graph.output] == ["output"]


def test_stateful_layer_streams_from_its_carried_states(tmp_path):
    """A stateful layer's carried states (refused without streaming) are simply fed as the initial states."""
    model = Sequential([Input(shape=(T, I), batch_size=B), LSTM(H, stateful=True, return_sequences=True)])
    randomize(model, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    model.predict(sequences(rng))
    h, c = model.layers[0].states
    _, session = export_session(model, tmp_path / "model.onnx", streaming=True)
    x = sequences(rng)
    got = session.run(["output"], {"input": x, "h0_0": h, "c0_0": c})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("layer, message", [
    (lambda: Bidirectional(LSTM(H)), "cannot stream: its backward layer needs the future of the sequence"),
    (lambda: LSTM(H, go_backwards=True), "go_backwards cannot stream: it needs the future of the sequence"),
    (lambda: LSTM(H, go_backwards=True, proj_size=P), "go_backwards cannot stream"),
])
def test_streaming_refuses_what_needs_the_future(layer, message, tmp_path):
    model = Sequential([Input(shape=(T, I)), layer()])
    with pytest.raises(ValueError, match=message):
        lstm_native.onnx.export(model, tmp_path / "model.onnx", streaming=True)
    assert not (tmp_path / "model.onnx").exists()
    lstm_native.onnx.export(model, tmp_path / "model.onnx")  # without streaming it exports


def test_streaming_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="streaming: expected True or False"):
        lstm_native.onnx.export(Sequential([Input(shape=(T, I)), LSTM(H)]), tmp_path / "model.onnx", streaming="yes")
