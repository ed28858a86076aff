"""The lstm-native command, run as a separate process: info and predict on saved models, clean errors."""

from __future__ import annotations

import io
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

from lstm_native import layers
from lstm_native.models import Sequential

T, I = 4, 3


def run(*args):
    return subprocess.run([sys.executable, "-m", "lstm_native.cli", *map(str, args)], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path of a saved compiled model, the model, an input batch)."""
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, T, I)).astype(np.float32)
    model = Sequential([layers.Input((T, I)), layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
                        layers.LSTM(3, peephole="full"), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.train_on_batch(x, np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1]])
    model.save(tmp / "model.safetensors")
    np.save(tmp / "x.npy", x)
    return tmp / "model.safetensors", model, x


def test_the_console_script_is_declared():
    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert scripts.get("lstm-native") == "lstm_native.cli:main"


def test_info_names_layers_shapes_parameters_and_version(saved):
    path, model, _ = saved
    result = run("info", path)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "format version 1" in out and "input shape: (None, 4, 3)" in out
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in out
    assert "(None, 4, 8)" in out and f"Total params: {model.count_params():,}" in out
    assert "optimizer SGD after 1 updates" in out


def test_predict_writes_the_models_predictions(saved, tmp_path):
    path, model, x = saved
    result = run("predict", path, path.parent / "x.npy", "-o", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr.decode()
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.predict(x))
    to_stdout = run("predict", path, path.parent / "x.npy", "--batch-size", "2")
    np.testing.assert_array_equal(np.load(io.BytesIO(to_stdout.stdout)), model.predict(x))


def error_of(result) -> str:
    assert result.returncode == 1 and result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_files_are_one_line_errors(saved, tmp_path):
    path, _, _ = saved
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:200])
    assert "not a valid safetensors file" in error_of(run("info", broken))
    assert "No such file" in error_of(run("info", tmp_path / "missing.safetensors"))
    with open(tmp_path / "objects.npy", "wb") as f:  # an object array: loading it would unpickle
        np.save(f, np.array([{"any": "object"}], dtype=object), allow_pickle=True)
    assert "allow_pickle" in error_of(run("predict", path, tmp_path / "objects.npy"))
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    assert "archive" in error_of(run("predict", path, tmp_path / "two.npz"))
    np.save(tmp_path / "wrong.npy", np.zeros((2, T, I + 1), np.float32))
    assert "expected features 3" in error_of(run("predict", path, tmp_path / "wrong.npy"))


def test_usage_errors_exit_with_argparse_status(saved):
    assert run().returncode == 2
    assert run("predict", saved[0], "x.npy", "--batch-size", "0").returncode == 2
