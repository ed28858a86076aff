"""What crosses into the native core: ops copies the arrays the core cannot take (unaligned, non-contiguous,
byte-swapped; read-only ones pass as they are), return_sequences=False keeps only the final states (memory of
a chunk of steps, not of T), and Ctrl-C stops a long native call within a fraction of a second."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lstm_native import layers, ops
from lstm_native.models import Sequential

B, T, I, H = 3, 7, 5, 6


def _arrays(rng, dtype=np.float32):
    return dict(x=rng.standard_normal((B, T, I)).astype(dtype), W=(0.3 * rng.standard_normal((I, 4 * H))).astype(dtype),
                U=(0.3 * rng.standard_normal((H, 4 * H))).astype(dtype), b=(0.1 * rng.standard_normal(4 * H)).astype(dtype),
                p=(0.1 * rng.standard_normal((3, H))).astype(dtype), h0=rng.standard_normal((B, H)).astype(dtype),
                c0=rng.standard_normal((B, H)).astype(dtype), dy=rng.standard_normal((B, T, H)).astype(dtype))


def _unaligned(a):
    buffer = np.empty(a.nbytes + 1, np.uint8)
    view = buffer[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned
    return view


def _non_contiguous(a):
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def _byte_swapped(a):
    return a.astype(a.dtype.newbyteorder())


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _forward_and_backward(a):
    out = ops.lstm_forward(a["x"], a["W"], a["U"], a["b"], a["p"], h0=a["h0"], c0=a["c0"], training=True)
    return [out.y, out.h, out.c, *ops.lstm_backward(out.context, dy=a["dy"])]


def _step_and_trace(a):
    h, c = ops.lstm_step(a["x"][:, 0], a["h0"], a["c0"], a["W"], a["U"], a["b"], a["p"])
    trace = ops.lstm_trace(a["x"], a["W"], a["U"], a["b"], a["p"], h0=a["h0"], c0=a["c0"])
    inference = ops.lstm_forward(a["x"], a["W"], a["U"], a["b"], a["p"], h0=a["h0"], c0=a["c0"])
    return [h, c, *trace.values(), inference.y]


@pytest.mark.parametrize("layout", [_unaligned, _non_contiguous, _byte_swapped, _read_only])
@pytest.mark.parametrize("entry", [_forward_and_backward, _step_and_trace])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_copies_what_the_core_cannot_take(layout, entry, dtype):
    arrays = _arrays(np.random.default_rng(0), dtype)
    expected = entry(arrays)
    for name in arrays:  # each argument alone in the odd layout, then all of them
        got = entry({**arrays, name: layout(arrays[name])})
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    for g, e in zip(entry({name: layout(value) for name, value in arrays.items()}), expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_return_sequences_false_gives_the_same_final_states_without_y(masked, training):
    rng = np.random.default_rng(1)
    a = _arrays(rng)
    x = rng.standard_normal((B, 70_000, I)).astype(np.float32)  # several chunks of steps
    mask = rng.random(x.shape[:2]) > 0.3 if masked else None
    full = ops.lstm_forward(x, a["W"], a["U"], a["b"], a["p"], mask=mask, training=training)
    last = ops.lstm_forward(x, a["W"], a["U"], a["b"], a["p"], mask=mask, training=training, return_sequences=False)
    assert last.y is None
    np.testing.assert_array_equal(last.h, full.h)
    np.testing.assert_array_equal(last.c, full.c)
    if not masked:
        np.testing.assert_array_equal(last.h, full.y[:, -1])


@pytest.mark.parametrize("kind", ["forward", "go_backwards", "bidirectional"])
def test_layers_without_sequences_return_the_last_output_of_those_with_them(kind):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 9, 3)).astype(np.float32)
    x[1, 6:] = 0  # right padding, masked by Masking
    x[2, :2] = 0  # left padding

    def model(return_sequences):
        lstm = layers.LSTM(5, return_sequences=return_sequences, go_backwards=kind == "go_backwards")
        return Sequential([layers.Input(shape=(9, 3)), layers.Masking(0.0),
                           layers.Bidirectional(lstm) if kind == "bidirectional" else lstm])

    sequences, last = model(True), model(False)
    for w_last, w_seq in zip(last.weights, sequences.weights):
        w_last.value = w_seq.value.copy()
    y_seq, y_last = sequences.predict(x, verbose=0), last.predict(x, verbose=0)
    if kind != "bidirectional":  # steps in processing order; a masked step's output is the carried h
        np.testing.assert_array_equal(y_last, y_seq[:, -1])
        return
    # Bidirectional zeroes masked steps of a sequence: compare the rows whose end step is valid. The forward
    # direction ends at the last step, the backward one at step 0.
    np.testing.assert_array_equal(y_last[[0, 2, 3], :5], y_seq[[0, 2, 3], -1, :5])
    np.testing.assert_array_equal(y_last[[0, 1, 3], 5:], y_seq[[0, 1, 3], 0, 5:])


def _run_python(code: str, timeout: float = 120):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def test_inference_without_sequences_does_not_materialise_the_sequence():
    # T = 400,000 steps at H = 32: the output sequence alone is 51 MB, the gates of every step 205 MB.
    result = _run_python("""
        import resource, numpy as np
        from lstm_native import ops
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 400_000, 2)).astype(np.float32)
        W = (0.3 * rng.standard_normal((2, 128))).astype(np.float32)
        U = (0.3 * rng.standard_normal((32, 128))).astype(np.float32)
        ops.lstm_forward(x[:, :1000], W, U, peephole=None)  # everything loaded
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = ops.lstm_forward(x, W, U, peephole=None, return_sequences=False)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grown // 1024, out.y is None, np.isfinite(out.h).all())
    """)
    assert result.returncode == 0, result.stderr
    grown_mb, no_y, finite = result.stdout.split()
    assert no_y == "True" and finite == "True"
    assert int(grown_mb) < 40, f"peak memory grew by {grown_mb} MB"


@pytest.mark.parametrize("call", ["inference", "training", "backward"])
def test_ctrl_c_stops_a_long_native_call_soon(call):
    # The call would run for about 8 s; SIGINT arrives 1 s after it starts. The KeyboardInterrupt must come
    # within a fraction of a second, and a training step must work afterwards (pool and arrays intact).
    # H = 1024 keeps the training workspace of 8 s of steps small (~6H floats a step for 4H² multiply-adds).
    result = _run_python(f"""
        import os, signal, threading, time, numpy as np
        from lstm_native import ops
        rng = np.random.default_rng(0)
        H, I = 1024, 8
        W = (0.1 * rng.standard_normal((I, 4 * H))).astype(np.float32)
        U = (0.1 * rng.standard_normal((H, 4 * H))).astype(np.float32)
        def run(T, what):
            x = rng.standard_normal((1, T, I)).astype(np.float32)
            if what == "backward":
                out = ops.lstm_forward(x, W, U, peephole=None, training=True)
                started = time.perf_counter()
                ops.lstm_backward(out.context, dy=np.ones_like(out.y))
            else:
                started = time.perf_counter()
                ops.lstm_forward(x, W, U, peephole=None, training=what == "training")
            return started
        started = run(500, "{call}")
        rate = 500 / (time.perf_counter() - started)  # steps per second
        T = int(rate * 8)
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        start = time.perf_counter()
        try:
            if "{call}" == "backward":
                x = rng.standard_normal((1, T, I)).astype(np.float32)
                out = ops.lstm_forward(x, W, U, peephole=None, training=True)
                start = time.perf_counter()
                timer.start()
                ops.lstm_backward(out.context, dy=np.ones_like(out.y))
            else:
                timer.start()
                run(T, "{call}")
            print("finished")
        except KeyboardInterrupt:
            print("interrupted", time.perf_counter() - start)
        out = ops.lstm_forward(rng.standard_normal((2, 5, I)).astype(np.float32), W, U, peephole=None, training=True)
        grads = ops.lstm_backward(out.context, dy=np.ones_like(out.y))
        print("usable", np.isfinite(grads.dW).all())
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("interrupted"), result.stdout
    assert float(lines[0].split()[1]) < 2.0  # 1 s until the signal, then within a fraction of a second
    assert lines[1] == "usable True"
