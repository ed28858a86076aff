"""predict from several Python threads on one model: the same results as serial calls, and the native calls
release the GIL so that they overlap (measured: wall times, and a Python thread that keeps counting while a
long native call runs)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import lstm_native
from lstm_native import layers, ops
from lstm_native.models import Sequential


@pytest.fixture
def one_native_thread():
    before = lstm_native.get_num_threads()
    lstm_native.set_num_threads(1)
    yield
    lstm_native.set_num_threads(before)


def make_model(T=20, F=8):
    lstm_native.utils.set_random_seed(3)
    model = Sequential([layers.Input(shape=(T, F)), layers.LSTM(32, return_sequences=True),
                        layers.Bidirectional(layers.LSTM(16, peephole="full")), layers.Dense(4, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    return model


def test_predict_from_four_threads_equals_serial_predict():
    model = make_model()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((16, 20, 8)).astype(np.float32) for _ in range(8)]
    serial = [model.predict(x, verbose=0) for x in inputs]
    results = {}
    errors = []
    barrier = threading.Barrier(4)

    def worker(w):
        try:
            barrier.wait()
            for repeat in range(3):
                for k in range(w, len(inputs), 4):
                    results[(w, k, repeat)] = model.predict(inputs[k], verbose=0)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 3 * len(inputs)
    for (w, k, repeat), y in results.items():
        np.testing.assert_array_equal(y, serial[k])  # bitwise: the core is deterministic


def long_call():
    """A native forward of about 0.2 s on one thread (2.5 GFLOP)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4000, 64)).astype(np.float32)
    W = (0.1 * rng.standard_normal((64, 4 * 128))).astype(np.float32)
    U = (0.1 * rng.standard_normal((128, 4 * 128))).astype(np.float32)
    return lambda: ops.lstm_forward(x, W, U, peephole="full", p=np.zeros((3, 128, 128), np.float32))


def test_native_calls_release_the_gil(one_native_thread):
    call = long_call()
    call()  # warm up
    single = min(_timed(call) for _ in range(3))
    # 1) a Python thread keeps counting while the native call runs: with the GIL held it could not
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    counting = threading.Thread(target=count)
    counting.start()
    time.sleep(0.05)
    before = counter[0]
    call()
    during = counter[0] - before
    stop.set()
    counting.join()
    # a free-running counter reaches millions per second; the GIL's switch interval (5 ms) alone would let
    # it run a little even if the call held the GIL, but a held GIL for the whole call gives ~nothing
    assert during > 1000, f"the counter advanced only {during} times during a {single:.3f} s native call"


def test_a_predict_runs_to_its_end_while_a_long_native_call_is_in_flight(one_native_thread):
    """Concurrency, not speed: a short predict, started while another thread's long native forward runs, ends
    before that forward does. If the long call held the GIL, or a lock of the library serialized the calls,
    the predict could not even start until the long call had returned. (How much two calls gain from two
    cores depends on what else the machine runs; that is a benchmark's question, not a test's.)"""
    model = make_model()
    x = np.random.default_rng(2).standard_normal((4, 20, 8)).astype(np.float32)
    model.predict(x, verbose=0)
    call = long_call()
    call()  # warm up
    long_started, long_done = threading.Event(), threading.Event()
    short_ended_while_long_ran = []

    def run_long():
        long_started.set()
        call()
        long_done.set()

    def run_short():
        long_started.wait()
        time.sleep(0.02)  # the long call's Python part takes microseconds: it is inside the core by now
        model.predict(x, verbose=0)
        short_ended_while_long_ran.append(not long_done.is_set())

    threads = [threading.Thread(target=run_long), threading.Thread(target=run_short)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    single = min(_timed(call) for _ in range(3))
    assert single > 0.1, f"the long call took only {single:.3f} s: too short to show the predict inside it"
    assert short_ended_while_long_ran == [True], "the predict ended only after the long native call had"


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
