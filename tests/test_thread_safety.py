"""Threads: set_num_threads' validation, one ops context consumed exactly once under races (and the workspace
pool never corrupted), and the model's policy: inference from many threads at once is correct, training runs
alone (a concurrent call raises RuntimeError)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lstm_native
from lstm_native import layers, ops
from lstm_native.models import Sequential


@pytest.fixture
def saved_thread_count():
    before = lstm_native.get_num_threads()
    yield
    lstm_native.set_num_threads(before)


@pytest.mark.parametrize("value", [1.5, 2.0, "2", True, False, None, np.float64(2.0), [2]])
def test_set_num_threads_refuses_what_is_not_an_integer(value, saved_thread_count):
    before = lstm_native.get_num_threads()
    with pytest.raises(TypeError, match="n: expected an integer thread count"):
        lstm_native.set_num_threads(value)
    assert lstm_native.get_num_threads() == before


@pytest.mark.parametrize("value", [0, -1, 10**9, 100_000, 10**30, -(10**30), "max+1"])
def test_set_num_threads_refuses_counts_out_of_range(value, saved_thread_count):
    value = lstm_native.max_num_threads() + 1 if value == "max+1" else value
    before = lstm_native.get_num_threads()
    with pytest.raises(ValueError, match=r"n: expected a thread count in \[1, \d+\]"):
        lstm_native.set_num_threads(value)
    assert lstm_native.get_num_threads() == before


def test_set_num_threads_takes_integers_in_range(saved_thread_count):
    assert lstm_native.max_num_threads() >= 16
    for n in (np.int64(3), 1, lstm_native.max_num_threads()):
        lstm_native.set_num_threads(n)
        assert lstm_native.get_num_threads() == n


def _lstm_arrays(rng, B=32, T=60, I=16, H=48):
    return (rng.standard_normal((B, T, I)).astype(np.float32), (0.2 * rng.standard_normal((I, 4 * H))).astype(np.float32),
            (0.2 * rng.standard_normal((H, 4 * H))).astype(np.float32), np.zeros(4 * H, np.float32),
            rng.standard_normal((B, T, H)).astype(np.float32))


def _in_threads(count, work):
    """Runs work(k) in `count` threads started together (a barrier); returns (results, errors) by k."""
    barrier = threading.Barrier(count)
    results, errors = {}, {}

    def run(k):
        barrier.wait()
        try:
            results[k] = work(k)
        except Exception as error:  # noqa: BLE001 - returned to the test
            errors[k] = error

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_a_context_is_consumed_exactly_once_by_racing_backward_calls():
    x, W, U, b, dy = _lstm_arrays(np.random.default_rng(0))
    expected = ops.lstm_backward(ops.lstm_forward(x, W, U, b, peephole=None, training=True).context, dy=dy)
    for _ in range(40):
        context = ops.lstm_forward(x, W, U, b, peephole=None, training=True).context
        results, errors = _in_threads(2, lambda k: ops.lstm_backward(context, dy=dy))
        assert len(results) == 1 and len(errors) == 1, (results, errors)
        (error,) = errors.values()
        assert isinstance(error, ValueError) and "already consumed" in str(error)
        (grads,) = results.values()
        for got, want in zip(grads, expected):
            if want is not None:
                np.testing.assert_array_equal(got, want)
        assert all(isinstance(w, np.ndarray) for w in ops._SPARE_WORKSPACES)
    again = ops.lstm_backward(ops.lstm_forward(x, W, U, b, peephole=None, training=True).context, dy=dy)  # the pool still serves
    np.testing.assert_array_equal(again.dW, expected.dW)


def _model(stateful=False):
    lstm_native.utils.set_random_seed(5)
    batch = {"batch_input_shape": (8, 12, 4)} if stateful else {"input_shape": (12, 4)}
    model = Sequential([layers.LSTM(16, return_sequences=True, stateful=stateful, activation_regularization=0.5,
                                    **batch),
                        layers.Dropout(0.0), layers.LSTM(8, activity_regularizer="l2"), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_inference_from_many_threads_equals_serial_calls():
    model = _model()
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((8, 12, 4)).astype(np.float32) * (k + 1) for k in range(4)]
    ys = [rng.standard_normal((8, 3)).astype(np.float32) for _ in range(4)]
    serial = [(model.predict(x, verbose=0), model.evaluate(x, y, verbose=0), model(x)) for x, y in zip(xs, ys)]
    for _ in range(10):
        results, errors = _in_threads(4, lambda k: [(model.predict(xs[k], verbose=0), model.evaluate(xs[k], ys[k], verbose=0),
                                                     model(xs[k])) for _ in range(3)])
        assert not errors, errors
        for k, repeats in results.items():
            for predicted, loss, called in repeats:
                np.testing.assert_array_equal(predicted, serial[k][0])
                assert loss == serial[k][1]  # includes the activity penalties of this thread's own forward pass
                np.testing.assert_array_equal(called, serial[k][2])


def test_training_runs_alone_and_concurrent_calls_raise_runtime_error():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 12, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    model = _model()
    steps = {"train": 0, "refused": 0}

    def work(k):
        for _ in range(40):
            try:
                if k == 0:
                    model.train_on_batch(x, y)
                    steps["train"] += 1
                elif k == 1:
                    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
                    steps["train"] += 1
                else:
                    model.predict(x, verbose=0)
            except RuntimeError as error:
                assert "another thread" in str(error), error
                steps["refused"] += 1

    results, errors = _in_threads(3, work)
    assert not errors, errors
    assert steps["refused"] > 0  # the calls did overlap
    twin = _model()  # the successful steps, serially, give the same weights: no step saw another's state
    for _ in range(steps["train"]):
        twin.train_on_batch(x, y)
    for got, want in zip(model.weights, twin.weights):
        np.testing.assert_array_equal(got.value, want.value)


def test_calls_nested_in_the_training_thread_are_allowed():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 12, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    model = _model()
    seen = []

    class PredictEachEpoch(lstm_native.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.predict(x, verbose=0))

    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[PredictEachEpoch()])
    assert len(seen) == 2


def test_a_stateful_model_runs_its_inference_alone():
    model = _model(stateful=True)
    x = np.random.default_rng(4).standard_normal((8, 12, 4)).astype(np.float32)
    entered, release = threading.Event(), threading.Event()

    class Blocking(layers.Dropout):
        def forward(self, inputs, training=False, mask=None):
            entered.set()
            release.wait(10)
            return inputs

    model._layers[1] = Blocking(0.0)
    thread = threading.Thread(target=model.predict, args=(x,), kwargs={"verbose": 0})
    thread.start()
    try:
        assert entered.wait(10)
        with pytest.raises(RuntimeError, match="predict: predict is running on this model in another thread"):
            model.predict(x, verbose=0)
    finally:
        release.set()
        thread.join()
