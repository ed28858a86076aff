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


def overlap_ratio(call, repeats=3):
    """(wall time of two concurrent calls) / (wall time of one call): about 1 when they overlap on two
    cores, about 2 when they run one after the other."""
    call()
    single = min(_timed(call) for _ in range(repeats))

    def two_at_once():
        threads = [threading.Thread(target=call) for _ in range(2)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start

    return min(two_at_once() for _ in range(repeats)) / single, single


def test_predict_calls_overlap_in_wall_time(one_native_thread):
    import hashlib
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    # The control: hashing releases the GIL and runs on one core. If two hashes do not overlap either, this
    # machine has no second free core just now (other jobs), and wall times cannot show anything.
    data = b"\x5a" * (64 << 20)
    control, _ = overlap_ratio(lambda: hashlib.sha256(data).digest())
    if control > 1.5:
        pytest.skip(f"no second free core at the moment: two concurrent sha256 take {control:.2f}x one")
    ratio, single = overlap_ratio(long_call())
    assert single > 0.05, f"the long call took only {single:.3f} s: too short to measure overlap"
    # serial calls would give 2.0; overlapping ones about the control's ratio. Generous margins for noise.
    assert ratio < max(1.6, control + 0.3), (
        f"two concurrent native calls took {ratio:.2f}x one call ({single:.3f} s); two sha256 took {control:.2f}x")


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
