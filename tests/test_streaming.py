"""Streaming sessions (Sequential.stream, lstm_native.streaming): a sequence fed step by step or chunk by chunk
gives what predict gives for it, for every layer and cell variant a stream runs; reset, snapshots, independent
sessions and threads; refusals of what cannot stream and of bad input."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import lstm_native as ln
from lstm_native import layers

T = 9


def lstm_models():
    """(name, model builder, input builder) for the cases below; inputs are (batch, T, ...)."""

    def features(features):
        return lambda rng, batch: rng.normal(size=(batch, T, features)).astype(np.float32)

    def padded(rng, batch):  # zero rows (masked by Masking) at the end of some sequences and in the middle of one
        x = rng.normal(size=(batch, T, 3)).astype(np.float32)
        x[0, 6:] = 0
        x[-1, 2:4] = 0
        return x

    def ids(rng, batch):
        x = rng.integers(1, 20, size=(batch, T))
        x[0, 5:] = 0
        return x

    cases = []
    for peephole in (None, "diagonal", "full"):
        for source in ("current", "previous"):
            cases.append((f"{peephole}-{source}", lambda p=peephole, s=source: [
                layers.Input((None, 3)), layers.LSTM(6, peephole=p, output_peephole_source=s, return_sequences=True)],
                features(3)))
    cases += [
        ("projection", lambda: [layers.Input((None, 3)), layers.LSTM(7, proj_size=3, return_sequences=True)], features(3)),
        ("zoneout", lambda: [layers.Input((None, 3)), layers.LSTM(5, zoneout_h=0.3, zoneout_c=0.2, return_sequences=True)],
         features(3)),
        ("two-layers-dense", lambda: [layers.Input((None, 2)), layers.LSTM(8, return_sequences=True), layers.Dropout(0.5),
                                      layers.LSTM(4, peephole="diagonal"), layers.Dense(3, activation="softmax")],
         features(2)),
        ("one-feature", lambda: [layers.Input((None, 1)), layers.LSTM(16), layers.Dense(1)], features(1)),
        ("fixed-length", lambda: [layers.Input((T, 4)), layers.LSTM(5, return_sequences=True), layers.Dense(2)], features(4)),
        ("masking", lambda: [layers.Input((None, 3)), layers.Masking(0.0), layers.LSTM(5, return_sequences=True),
                             layers.LSTM(4)], padded),
        ("masking-zero-output", lambda: [layers.Input((None, 3)), layers.Masking(0.0),
                                         layers.LSTM(5, return_sequences=True, zero_output_for_mask=True)], padded),
        ("embedding", lambda: [layers.Input((None,)), layers.Embedding(20, 4, mask_zero=True), layers.LSTM(5)], ids),
    ]
    return cases


CASES = lstm_models()


def predict_by_prefix(model, x):
    """What a stream must give at each step: predict's output at the step for a model whose output keeps the time
    axis ([B, T, units]), else predict's output for the sequence ending there."""
    y = model.predict(x, verbose=0)
    if y.ndim >= 3:
        return [y[:, t] for t in range(x.shape[1])]
    return [model.predict(x[:, :t + 1], verbose=0) for t in range(x.shape[1])]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name, build, inputs", CASES, ids=[case[0] for case in CASES])
def test_steps_equal_predict(name, build, inputs, batch):
    rng = np.random.default_rng(3)
    model = ln.models.Sequential(build())
    x = inputs(rng, batch)
    model.build((None,) + x.shape[1:])
    stream = model.stream(batch)
    expected = predict_by_prefix(model, x)
    got = [stream.step(x[:, t]) for t in range(T)]
    for t in range(T):
        np.testing.assert_allclose(got[t], expected[t], rtol=0, atol=1e-6, err_msg=f"step {t}")
    assert got[0].dtype == np.float32


@pytest.mark.parametrize("chunks", [(1, 8), (4, 5), (3, 3, 3), (9,)])
@pytest.mark.parametrize("name, build, inputs", CASES, ids=[case[0] for case in CASES])
def test_chunks_equal_predict(name, build, inputs, chunks):
    rng = np.random.default_rng(4)
    model = ln.models.Sequential(build())
    x = inputs(rng, 2)
    model.build((None,) + x.shape[1:])
    expected = model.predict(x, verbose=0)
    stream = model.stream(2)
    outputs, start = [], 0
    for size in chunks:
        outputs.append(stream.step(x[:, start:start + size]))
        start += size
    got = np.concatenate(outputs, axis=1) if expected.ndim >= 3 else outputs[-1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def one_layer_model(units=6, features=3, **lstm):
    model = ln.models.Sequential([layers.Input((None, features)), layers.LSTM(units, **lstm), layers.Dense(2)])
    model.build((None, None, features))
    return model


def test_a_float64_model_streams_in_float32():
    model = ln.models.Sequential([layers.Input((None, 3)), layers.LSTM(5, dtype="float64")])
    x = np.random.default_rng(0).normal(size=(2, T, 3))
    stream = model.stream(2)
    for t in range(T):
        y = stream.step(x[:, t])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, model.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_reset_starts_a_new_sequence():
    model = one_layer_model()
    x = np.random.default_rng(1).normal(size=(1, T, 3)).astype(np.float32)
    stream = model.stream(1)
    first = stream.step(x)
    assert not np.array_equal(stream.step(x), first)  # the state carried on
    stream.reset()
    np.testing.assert_array_equal(stream.step(x), first)
    assert all(not h.any() and not c.any() for h, c in model.stream(1).get_state())


def test_a_snapshot_restores_the_stream():
    model = ln.models.Sequential([layers.Input((None, 3)), layers.LSTM(6, return_sequences=True),
                                 layers.LSTM(4, proj_size=2)])
    x = np.random.default_rng(2).normal(size=(2, T, 3)).astype(np.float32)
    stream = model.stream(2)
    stream.step(x[:, :4])
    snapshot = stream.get_state()
    assert [(h.shape, c.shape) for h, c in snapshot] == [((2, 6), (2, 6)), ((2, 2), (2, 4))]
    after = stream.step(x[:, 4:])
    stream.reset()
    stream.set_state(snapshot)
    np.testing.assert_array_equal(stream.step(x[:, 4:]), after)
    other = model.stream(2)  # a state moves to another session of the same model and batch
    other.set_state(snapshot)
    np.testing.assert_array_equal(other.step(x[:, 4:]), after)


def test_sessions_are_independent_and_run_in_threads():
    model = one_layer_model(units=32, features=4)
    rng = np.random.default_rng(5)
    inputs = [rng.normal(size=(2, 40, 4)).astype(np.float32) for _ in range(4)]
    serial = [[model.stream(2).step(x[:, :t + 1])[0] for t in (9, 39)] for x in inputs]
    results = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def run(k):
        stream = model.stream(2)
        barrier.wait()
        ys = [stream.step(inputs[k][:, t]) for t in range(40)]
        results[k] = [ys[9][0], ys[39][0]]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(len(inputs)):
        np.testing.assert_allclose(results[k], serial[k], rtol=0, atol=1e-6)


def test_one_session_used_by_two_threads_at_once_raises():
    model = one_layer_model(units=256, features=64)
    stream = model.stream(8)
    long_chunk = np.ones((8, 4000, 64), np.float32)
    raised = []

    def long_call():
        while True:  # until it gets in: a short call of the main thread may hold the stream at first
            try:
                return stream.step(long_chunk)
            except RuntimeError:
                pass

    worker = threading.Thread(target=long_call)
    worker.start()
    while worker.is_alive() and not raised:
        try:
            stream.step(np.ones((8, 64), np.float32))
        except RuntimeError as error:
            raised.append(str(error))
    worker.join()
    assert raised and "another call on the same stream" in raised[0]


def test_the_session_keeps_the_weights_it_started_with_and_outlives_the_model():
    model = one_layer_model()
    x = np.random.default_rng(6).normal(size=(1, 1, 3)).astype(np.float32)
    stream = model.stream(1)
    before = model.predict(x, verbose=0)
    model.set_weights([w * 2 for w in model.get_weights()])
    np.testing.assert_allclose(stream.step(x), before, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.stream(1).step(x), model.predict(x, verbose=0), rtol=0, atol=1e-6)
    del model
    gc.collect()
    stream.reset()
    np.testing.assert_allclose(stream.step(x), before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("build, message", [
    (lambda: [layers.Input((None, 3)), layers.Bidirectional(layers.LSTM(4))], "Bidirectional"),
    (lambda: [layers.Input((None, 3)), layers.LSTM(4, go_backwards=True)], "go_backwards"),
    (lambda: [layers.Input((None, 3)), layers.Dense(4)], "no LSTM"),
], ids=["bidirectional", "go_backwards", "no-lstm"])
def test_what_cannot_stream_is_refused(build, message):
    model = ln.models.Sequential(build())
    with pytest.raises(ValueError, match=message):
        model.stream(1)


def test_an_unbuilt_model_is_refused():
    model = ln.models.Sequential([layers.LSTM(4)])
    with pytest.raises(ValueError, match="built"):
        model.stream(1)


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-1, ValueError), (True, TypeError), (2.5, TypeError),
                                               ("1", TypeError)])
def test_bad_batch_sizes_are_refused(batch_size, error):
    with pytest.raises(error, match="batch_size"):
        one_layer_model().stream(batch_size)


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((2, 3), np.float32), ValueError, "one step of shape"),        # another batch size
    (np.zeros((1, 4), np.float32), ValueError, "one step of shape"),        # other features
    (np.zeros((1, 0, 3), np.float32), ValueError, "chunk"),                 # a chunk of no steps
    (np.zeros((1, 2, 3, 1), np.float32), ValueError, "one step of shape"),  # another rank
    (np.array([["a", "b", "c"]]), TypeError, "dtype"),
    (np.zeros((1, 3), object), TypeError, "dtype"),
], ids=["batch", "features", "empty-chunk", "rank", "strings", "objects"])
def test_bad_steps_are_refused(x, error, message):
    stream = one_layer_model().stream(1)
    state = stream.get_state()
    with pytest.raises(error, match=message):
        stream.step(x)
    assert all(np.array_equal(a, b) for pair, other in zip(state, stream.get_state()) for a, b in zip(pair, other))


def test_bad_states_are_refused():
    stream = one_layer_model(units=4).stream(1)
    h, c = stream.get_state()[0]
    with pytest.raises(ValueError, match="1 .h, c. pairs"):
        stream.set_state([])
    with pytest.raises(ValueError, match=r"states\[0\] c: expected numbers of shape \(1, 4\)"):
        stream.set_state([(h, c[:, :2])])
    with pytest.raises(ValueError, match="not a finite number"):
        stream.set_state([(h, np.full_like(c, np.nan))])
    with pytest.raises(ValueError, match="an .h, c. pair"):
        stream.set_state([(h,)])


def test_embedding_ids_out_of_range_are_refused():
    model = ln.models.Sequential([layers.Input((None,)), layers.Embedding(5, 3), layers.LSTM(2)])
    model.build((None, None))
    stream = model.stream(1)
    with pytest.raises(ValueError, match=r"integer ids in \[0, 5\)"):
        stream.step(np.array([7]))


def test_the_stateful_onnx_graph_equals_the_stream(tmp_path):
    """lstm_native.onnx.export(streaming=True) run by onnxruntime chunk by chunk, each chunk's final states fed to
    the next, against a stream fed the same chunks: the outputs and every LSTM's (h, c) after each chunk."""
    onnxruntime = pytest.importorskip("onnxruntime")
    import lstm_native.onnx

    model = ln.models.Sequential([layers.Input((None, 3)), layers.LSTM(6, return_sequences=True, peephole="diagonal"),
                                  layers.LSTM(5, proj_size=2, return_sequences=True), layers.Dense(2)])
    lstm_native.onnx.export(model, tmp_path / "stream.onnx", streaming=True)
    session = onnxruntime.InferenceSession(str(tmp_path / "stream.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(7).normal(size=(2, 12, 3)).astype(np.float32)
    stream = model.stream(2)
    feeds = {name: np.zeros(shape, np.float32)
             for k, (h_shape, c_shape) in enumerate([((2, 6), (2, 6)), ((2, 2), (2, 5))])
             for name, shape in ((f"h0_{k}", h_shape), (f"c0_{k}", c_shape))}
    for begin, end in ((0, 1), (1, 5), (5, 12)):
        y, h0, c0, h1, c1 = session.run(["output", "h_n_0", "c_n_0", "h_n_1", "c_n_1"], {"input": x[:, begin:end], **feeds})
        np.testing.assert_allclose(stream.step(x[:, begin:end]), y, rtol=0, atol=1e-5)
        for ours, theirs in zip([a for pair in stream.get_state() for a in pair], (h0, c0, h1, c1)):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
        feeds = {"h0_0": h0, "c0_0": c0, "h0_1": h1, "c0_1": c1}
