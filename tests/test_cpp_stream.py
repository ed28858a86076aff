"""lstm_native::Stream in C++ (tests/cpp/stream_checks.cpp, built against the installed package): steps and chunks
equal to Model::predict, no allocation after the first step, reset, snapshots, sessions on several threads, and a
concurrent call on one stream refused."""

from __future__ import annotations

import pathlib
import subprocess

import numpy as np
import pytest

import lstm_native as ln
from lstm_native import layers

CPP_TESTS = pathlib.Path(__file__).parent / "cpp"
T = 8


@pytest.fixture(scope="module")
def stream_checks(tmp_path_factory):
    build = tmp_path_factory.mktemp("stream_checks")
    for command in (["cmake", "-S", CPP_TESTS, "-B", build, f"-DCMAKE_PREFIX_PATH={ln.cmake_prefix()}",
                     "-DCMAKE_BUILD_TYPE=Release"], ["cmake", "--build", build, "--target", "stream_checks"]):
        subprocess.run(command, check=True, capture_output=True, text=True)
    return build / "stream_checks"


def masked_inputs(rng, batch):
    x = rng.normal(size=(batch, T, 3)).astype(np.float32)
    x[0, 5:] = 0
    x[-1, 1:3] = 0
    return x


MODELS = {
    "two-layers-dense": (lambda: [layers.Input((None, 4)), layers.LSTM(8, return_sequences=True),
                                  layers.LSTM(5, peephole="diagonal"), layers.Dense(3, activation="tanh")],
                         lambda rng, batch: rng.normal(size=(batch, T, 4)).astype(np.float32), 2),
    "masked-projected-full": (lambda: [layers.Input((None, 3)), layers.Masking(0.0),
                                       layers.LSTM(6, peephole="full", proj_size=3, return_sequences=True),
                                       layers.LSTM(4, zero_output_for_mask=True, return_sequences=True),
                                       layers.Dense(2)], masked_inputs, 3),
    "audio-lstm16": (lambda: [layers.Input((None, 1)), layers.LSTM(16), layers.Dense(1)],
                     lambda rng, batch: rng.normal(size=(batch, T, 1)).astype(np.float32), 1),
    "embedding": (lambda: [layers.Input((None,)), layers.Embedding(12, 4, mask_zero=True), layers.LSTM(5, zoneout_h=0.2)],
                  lambda rng, batch: rng.integers(0, 12, size=(batch, T)).astype(np.float32), 2),
}


@pytest.mark.parametrize("name", MODELS)
def test_cpp_stream(name, stream_checks, tmp_path):
    build, inputs, batch = MODELS[name]
    model = ln.models.Sequential(build())
    x = inputs(np.random.default_rng(0), batch)  # [B, T, ...]: token ids as floats for an Embedding
    model.build((None,) + x.shape[1:])
    model.save(tmp_path / "model.safetensors")
    x.astype(np.float32).tofile(tmp_path / "x.f32")
    result = subprocess.run([stream_checks, tmp_path / "model.safetensors", tmp_path / "x.f32", *map(str, x.shape)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    checks = dict(line.split() for line in result.stdout.splitlines())
    assert float(checks["predict_vs_steps"]) <= 1e-6
    assert float(checks["predict_vs_chunks"]) <= 1e-6
    assert int(checks["allocations_of_a_new_stream"]) > 0  # the counter sees the allocations there are
    assert checks["allocations_after_first_step"] == "0"
    for check in ("reset_repeats", "snapshot_restores", "threads_agree", "concurrent_call_throws"):
        assert checks[check] == "1", check


def test_the_stream_example_computes_predict(tmp_path):
    """examples/cpp/stream.cpp (the README's C++ streaming example, bench/streaming.py's C++ timing) steps a model
    over a test signal; its last output is predict's over the same signal."""
    from support import EXAMPLE

    build = tmp_path / "build"
    for command in (["cmake", "-S", EXAMPLE, "-B", build, f"-DCMAKE_PREFIX_PATH={ln.cmake_prefix()}",
                     "-DCMAKE_BUILD_TYPE=Release"], ["cmake", "--build", build, "--target", "stream_example"]):
        subprocess.run(command, check=True, capture_output=True, text=True)
    model = ln.models.Sequential([layers.Input((None, 2)), layers.LSTM(8, return_sequences=True), layers.LSTM(4)])
    model.save(tmp_path / "model.safetensors")
    steps = 200 + 100  # the example's steps after its 100 warm-up steps
    result = subprocess.run([build / "stream_example", tmp_path / "model.safetensors", "200"], capture_output=True,
                            text=True, check=True, timeout=60)
    lines = dict(line.split(maxsplit=1) for line in result.stdout.splitlines())
    t = np.arange(steps, dtype=np.float32)[:, None]
    signal = np.sin(np.float32(0.05) * t + np.arange(2, dtype=np.float32))[None].astype(np.float32)
    np.testing.assert_allclose(np.array(lines["last_output"].split(), float), model.predict(signal, verbose=0)[0],
                               rtol=0, atol=1e-5)
    assert lines["step_us"].startswith("median ")
