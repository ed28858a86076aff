"""C++ inference: models trained and saved in Python, loaded by examples/cpp/predict.cpp (built against the
installed package with find_package(lstm_native)), give Python's predictions."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import lstm_native
from lstm_native import layers
from lstm_native.models import Sequential
from support import EXAMPLE, run

pytestmark = pytest.mark.skipif(not lstm_native._core.with_model_io,
                                reason="built without nlohmann_json: no C++ model loader (CI installs it)")
T, F = 7, 4


def models():
    L = layers
    return {
        "stacked-diagonal-softmax": [L.Input(shape=(T, F)), L.LSTM(6, return_sequences=True), L.Dropout(0.2),
                                     L.LSTM(5), L.Dense(3, activation="softmax")],
        "full-previous-sequences": [L.Input(shape=(T, F)),
                                    L.LSTM(5, return_sequences=True, peephole="full", output_peephole_source="previous",
                                           peephole_initializer="glorot_uniform"),
                                    L.Dense(2, activation="tanh")],
        "bidirectional-concat-none": [L.Input(shape=(T, F)), L.Bidirectional(L.LSTM(4, peephole=None)),
                                      L.Dense(3, activation="sigmoid")],
        "masking-go-backwards-zoneout": [L.Input(shape=(T, F)), L.Masking(0.0),
                                         L.LSTM(4, go_backwards=True, zoneout_h=0.2, zoneout_c=0.3),
                                         L.Dense(2, activation="relu")],
        "projected-stacked-diagonal": [L.Input(shape=(T, F)), L.LSTM(6, proj_size=3, return_sequences=True),
                                       L.LSTM(5, proj_size=2, peephole="full", peephole_initializer="glorot_uniform"),
                                       L.Dense(2, activation="softmax")],
        "projected-bidirectional-sum": [L.Input(shape=(T, F)), L.Masking(0.0),
                                        L.Bidirectional(L.LSTM(5, proj_size=2, return_sequences=True), merge_mode="sum"),
                                        L.Dense(2)],
        "embedding-bidirectional-ave": [L.Input(shape=(T,)), L.Embedding(9, 3, mask_zero=True),
                                        L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="ave"),
                                        L.Dense(2, activation="softmax")],
    }


@pytest.fixture(scope="module")
def predict_example(tmp_path_factory):
    build = tmp_path_factory.mktemp("predict_example")
    run("cmake", "-S", EXAMPLE, "-B", build, f"-DCMAKE_PREFIX_PATH={lstm_native.cmake_prefix()}",
        "-DCMAKE_BUILD_TYPE=Release")
    run("cmake", "--build", build)
    return build / "predict_example"


def inputs(name, rng):
    if name.startswith("embedding"):
        ids = rng.integers(1, 9, (5, T))
        ids[0, 4:] = 0  # padding at the end
        ids[1, :2] = 0  # and in front
        return ids
    x = rng.standard_normal((5, T, F)).astype(np.float32)
    if "masking" in name:
        x[0, 5:] = 0.0
        x[2, :3] = 0.0
    return x


@pytest.mark.parametrize("name", list(models()))
def test_cpp_predict_equals_python_predict(name, predict_example, tmp_path):
    rng = np.random.default_rng(len(name))
    lstm_native.utils.set_random_seed(len(name))
    model = Sequential(models()[name])
    x = inputs(name, rng)
    model.compile(loss="mse", optimizer="adam")
    target = model.predict(x)
    model.fit(x, rng.standard_normal(target.shape).astype(np.float32), epochs=2, verbose=0)  # trained weights
    expected = model.predict(x)
    path = tmp_path / "model.safetensors"
    model.save(path)
    x.astype("<f4").tofile(tmp_path / "x.f32")
    output = run(predict_example, path, tmp_path / "x.f32", *map(str, x.shape)).splitlines()
    shape = tuple(int(d) for d in output[0].split())
    assert shape == expected.shape
    got = np.array([float(v) for v in output[1:]], dtype=np.float32).reshape(shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:100], "header length"),
    (lambda data: b"\xff" * 8 + data[8:], "header length"),
    (lambda data: data[:8] + b"[" + data[9:], "not valid JSON"),
    (lambda data: data.replace(b'"format_version":"1"', b'"format_version":"9"'), "format version 9"),
    (lambda data: data.replace(b'\\"LSTM\\"', b'\\"GRU0\\"', 1), 'class "GRU0" is not supported'),
])
def test_cpp_loader_rejects_damaged_files(damage, message, predict_example, tmp_path):
    model = Sequential(models()["stacked-diagonal-softmax"])
    path = tmp_path / "model.safetensors"
    model.save(path)
    path.write_bytes(damage(path.read_bytes()))
    x = np.zeros((1, T, F), np.float32)
    x.tofile(tmp_path / "x.f32")
    done = subprocess.run([predict_example, path, tmp_path / "x.f32", "1", str(T), str(F)], capture_output=True, text=True)
    assert done.returncode == 1 and message in done.stderr, done.stderr


def test_cpp_predict_rejects_a_wrong_input_shape(predict_example, tmp_path):
    model = Sequential(models()["stacked-diagonal-softmax"])
    model.save(tmp_path / "model.safetensors")
    np.zeros((2, T, F + 1), np.float32).tofile(tmp_path / "x.f32")
    done = subprocess.run([predict_example, tmp_path / "model.safetensors", tmp_path / "x.f32", "2", str(T), str(F + 1)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "x: expected shape [-1, 7, 4]" in done.stderr, done.stderr


def test_cpp_loader_refuses_what_is_not_a_regular_file(predict_example, tmp_path):
    """A FIFO (which would block the open), a directory, a socket and a device: an error naming the path."""
    import os
    import socket

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "directory").mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "socket"))
    np.zeros((1, T, F), np.float32).tofile(tmp_path / "x.f32")
    kinds = {"fifo": "a FIFO", "directory": "a directory", "socket": "a socket", "/dev/null": "a character device"}
    with listener:
        for name, kind in kinds.items():
            path = tmp_path / name
            done = subprocess.run([predict_example, path, tmp_path / "x.f32", "1", str(T), str(F)], capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 1, done.stderr
            assert f"{path}: " in done.stderr and f"is {kind}, not a regular file" in done.stderr, done.stderr
