"""The lstm-native command, run as a separate process: info and predict on saved models, clean errors."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

from lstm_native import layers
from lstm_native.models import Sequential, load_model

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


def test_a_file_compiled_without_an_optimizer_is_refused_by_name(saved, tmp_path):
    """A compile header with "optimizer": null (which no save writes: compile refuses optimizer=None) is refused,
    naming the file, by load_model and the command line; it loaded as compiled with no optimizer, and info crashed."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = saved[0]
    with safe_open(str(path), "np") as file:
        metadata = file.metadata()
    metadata["compile"] = json.dumps({**json.loads(metadata["compile"]), "optimizer": None})
    edited = tmp_path / "no_optimizer.safetensors"
    save_file(load_file(str(path)), str(edited), metadata=metadata)
    with pytest.raises(ValueError, match="no_optimizer.safetensors.*an optimizer is required"):
        load_model(edited)
    assert "an optimizer is required" in error_of(run("info", edited))


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


def test_predict_refuses_an_output_that_is_one_of_its_inputs(saved, tmp_path):
    path, _, _ = saved
    model, x = tmp_path / "model.safetensors", tmp_path / "x.npy"
    model.write_bytes(path.read_bytes())
    x.write_bytes((path.parent / "x.npy").read_bytes())
    (tmp_path / "link.npy").symlink_to(x)
    os.link(model, tmp_path / "hardlink.npy")
    contents = model.read_bytes(), x.read_bytes()
    for output, which in ((x, x), (tmp_path / "link.npy", x), (f"{tmp_path}/./x.npy", x),
                          (tmp_path / "hardlink.npy", model)):
        assert f"{output}: the output is the input {which}" in error_of(run("predict", model, x, "-o", output))
    assert error_of(run("predict", model, x, "-o", model)).startswith(f"lstm-native predict: error: {model}: ")
    assert (model.read_bytes(), x.read_bytes()) == contents


def test_predict_refuses_an_output_named_as_another_format(saved, tmp_path):
    path, _, _ = saved
    for name in ("y.safetensors", "y.keras", "y.npz"):
        assert "lstm-native predict writes a NumPy .npy array" in error_of(
            run("predict", path, path.parent / "x.npy", "-o", tmp_path / name))
    assert os.listdir(tmp_path) == []


def npy_with_header(path, header: dict, data: bytes = b"") -> None:
    """A .npy file (format 1.0) with the given header dict and data, whatever they declare."""
    text = repr(header).encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data)


def test_bad_npy_inputs_are_one_line_errors(saved, tmp_path):
    path, _, _ = saved
    huge = tmp_path / "huge.npy"  # a header that declares 4 PB of data: no allocation, no traceback
    npy_with_header(huge, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10**6, I)}, b"\0" * 64)
    assert "its header declares shape (1000000000, 1000000, 3) of float32" in error_of(run("predict", path, huge))
    short = tmp_path / "short.npy"
    npy_with_header(short, {"descr": "<f4", "fortran_order": False, "shape": (2, T, I)}, b"\0" * 8)
    assert "but the file holds 8 bytes of data" in error_of(run("predict", path, short))
    for name, array in {"complex": np.ones((2, T, I), np.complex64), "strings": np.full((2, T, I), "a"),
                        "structured": np.zeros((2, T, I), dtype=[("a", "<f4")]),
                        "dates": np.zeros((2, T, I), "datetime64[s]")}.items():
        np.save(tmp_path / f"{name}.npy", array)
        message = error_of(run("predict", path, tmp_path / f"{name}.npy"))
        assert "expected bool, integers or floats" in message, message
    assert "complex numbers" in error_of(run("predict", path, tmp_path / "complex.npy"))
    (tmp_path / "text.npy").write_text("not an array")
    assert "not a .npy file" in error_of(run("predict", path, tmp_path / "text.npy"))


def test_npy_inputs_in_every_layout_and_numeric_dtype_predict(saved, tmp_path):
    path, model, x = saved
    expected = model.predict(x)
    for name, array in {"fortran": np.asfortranarray(x), "big-endian": x.astype(">f4"), "float64": x.astype(np.float64),
                        "float16": x.astype(np.float16)}.items():
        np.save(tmp_path / f"{name}.npy", array)
        result = run("predict", path, tmp_path / f"{name}.npy")
        assert result.returncode == 0, result.stderr.decode()
        tolerance = 1e-2 if name == "float16" else 1e-6
        np.testing.assert_allclose(np.load(io.BytesIO(result.stdout)), expected, atol=tolerance, err_msg=name)


def test_special_files_as_model_input_or_output_are_refused_without_hanging(saved, tmp_path):
    path, _, _ = saved
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "directory").mkdir()
    fifo, x = tmp_path / "fifo", path.parent / "x.npy"
    assert f"{fifo}: is a FIFO, not a regular file" in error_of(run("info", fifo))
    assert f"{fifo}: is a FIFO, not a regular file" in error_of(run("predict", fifo, x))
    assert f"{fifo}: is a FIFO, not a regular file" in error_of(run("predict", path, fifo))
    assert f"{tmp_path / 'directory'}: is a directory, not a regular file" in error_of(run("info", tmp_path / "directory"))
    assert f"{fifo}: exists and is a FIFO, not a regular file" in error_of(run("predict", path, x, "-o", fifo))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_predict_writes_its_output_atomically_keeping_the_mode(saved, tmp_path):
    path, model, x = saved
    output = tmp_path / "y.npy"
    output.write_bytes(b"old")
    os.chmod(output, 0o640)
    assert run("predict", path, path.parent / "x.npy", "-o", output).returncode == 0
    np.testing.assert_array_equal(np.load(output), model.predict(x))
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o640 and os.listdir(tmp_path) == ["y.npy"]
