"""What a model file may hold (lstm_native.file_rules): one definition for both loaders, the limits, linear
loading of many layers, and non-finite values. tests/test_model_loader_fuzz.py runs both loaders on the
same hostile files."""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from lstm_native import file_rules, initializers, layers, regularizers
from lstm_native.layers.serialization import LAYER_CLASSES
from lstm_native.models import Sequential, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
T, F = 3, 4


def saved(tmp_path, model_layers=None, compiled=False) -> Path:
    model = Sequential(model_layers or [layers.Input((T, F)), layers.LSTM(3), layers.Dense(2)])
    if compiled:
        model.compile(loss="mse", optimizer="adam")
        model.fit(np.ones((4, T, F), np.float32), np.zeros((4, 2), np.float32), epochs=1, verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    return path


def edited(path: Path, edit) -> Path:
    """The file with its config edited by edit(config)."""
    path.write_bytes(model_corpus.with_config(path.read_bytes(), edit))
    return path


def test_the_cpp_loader_reads_the_rules_generated_from_python():
    generated = REPO / "cpp" / "src" / "model_file_rules.inc"
    assert generated.read_text() == file_rules.cpp_source(), (
        "cpp/src/model_file_rules.inc is out of date; regenerate it with the command in lstm_native/file_rules.py")


def _parameters(cls) -> set:
    return {p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def test_the_rules_cover_every_constructor_argument():
    """A rule for each argument of each class a file may name (so a new argument cannot be forgotten), and
    for nothing else; `device` is the machine's choice, never in a file, and InputLayer's input_shape is
    written as shape."""
    not_in_files = {"LSTM": {"device"}, "InputLayer": {"input_shape"}}
    base = {"name", "trainable", "dtype", "batch_input_shape"}
    assert set(file_rules.LAYER_KEYS) == set(LAYER_CLASSES)
    for name, cls in LAYER_CLASSES.items():
        expected = _parameters(cls) - not_in_files.get(name, set()) | (base if name != "InputLayer" else set())
        assert set(file_rules.LAYER_KEYS[name]) == expected, name
    for identifier, cls in initializers._ALIASES.items():
        assert set(file_rules.INITIALIZERS[identifier]) == _parameters(cls), identifier
    for identifier, cls in regularizers._ALIASES.items():
        assert set(file_rules.REGULARIZERS[identifier]) == _parameters(cls), identifier


def _load_time(tmp_path, count: int) -> float:
    path = edited(saved(tmp_path), lambda c: c["layers"].extend([{"class_name": "Dropout", "config": {"rate": 0.5}}] * count))
    start = time.perf_counter()
    model = load_model(path)
    elapsed = time.perf_counter() - start
    assert len(model.layers) == count + 2
    return elapsed


def test_loading_many_layers_takes_linear_time(tmp_path):
    """Loading (Sequential.add) built every layer again for each one added: 3 s at 5,000 Dropout layers, 41 s
    at 20,000. 4x the layers must cost about 4x the time, not 16x."""
    small, large = _load_time(tmp_path, 2_000), _load_time(tmp_path, 8_000)
    assert large < 8 * small + 0.5, (small, large)
    assert _load_time(tmp_path, 20_000) < 10, "20,000 layers took 10 s or more"


def test_adding_to_a_built_model_builds_the_new_layer_on_the_last_output():
    model = Sequential([layers.Input((T, F)), layers.LSTM(3, return_sequences=True)])
    model.add(layers.LSTM(5))
    model.add(layers.Dense(2))
    assert model.layers[1].kernel.shape == (3, 20) and model.layers[2].kernel.shape == (5, 2)
    assert model.predict(np.ones((2, T, F), np.float32)).shape == (2, 2)


def test_a_config_past_the_layer_limit_is_refused(tmp_path):
    count = file_rules.LIMITS["layers"] - 2  # the config holds 3 layers
    path = edited(saved(tmp_path), lambda c: c["layers"].extend([{"class_name": "Dropout", "config": {"rate": 0}}] * count))
    with pytest.raises(ValueError, match=f"{count + 3} layers, more than the limit of {file_rules.LIMITS['layers']}"):
        load_model(path)


def test_a_config_past_the_parameter_limit_is_refused_before_allocating(tmp_path):
    path = saved(tmp_path, [layers.Input((T,)), layers.Embedding(10, 4), layers.LSTM(2)])
    edited(path, lambda c: c["layers"][1]["config"].update(input_dim=2**24, output_dim=2**8))
    with pytest.raises(ValueError, match="parameters, the limit of a model file"):
        load_model(path)


def test_a_vocabulary_beyond_float32_ids_is_refused(tmp_path):
    path = saved(tmp_path, [layers.Input((T,)), layers.Embedding(10, 4), layers.LSTM(2)])
    edited(path, lambda c: c["layers"][1]["config"].update(input_dim=2**24 + 1))
    with pytest.raises(ValueError, match=r"input_dim: expected an integer in \[1, 16777216\] \(the C\+\+ loader carries "
                                         "token ids as float32"):
        load_model(path)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["layers"][1]["config"].update(activation="relu"), "activation"),
    (lambda c: c["layers"][1]["config"].update(dropout=2.0), "dropout: expected a rate"),
    (lambda c: c["layers"][1]["config"].update(dtype="float16"), "dtype"),
    (lambda c: c["layers"][2]["config"].update(dtype="object"), "dtype"),
    (lambda c: c["layers"][1]["config"].update(device="cpu"), "unknown key 'device'"),
    (lambda c: c["layers"][1]["config"].update(kernel_initializer={"class_name": "GlorotUniform",
                                                                   "config": {"seed": "x"}}), "seed"),
    (lambda c: c["layers"][1]["config"].update(kernel_regularizer={"class_name": "L1", "config": {"l1": "big"}}), "l1"),
    (lambda c: c["layers"][2]["config"].update(activation="softmax", extra=1), "'extra'"),
    (lambda c: c["layers"].insert(2, c["layers"][0]), "an InputLayer must come first"),
    (lambda c: c.update(extra=1), "the config is not"),
    (lambda c: c["layers"][0]["config"].update(shape=[T + 1, F]), "is not the input shape that the config declares"),
])
def test_what_the_rules_refuse(tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        load_model(edited(saved(tmp_path), edit))


def _rewrite(path: Path, change) -> Path:
    """The file with change(tensors) applied to its tensors (metadata kept)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        metadata, tensors = handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}
    change(tensors)
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_unless_allowed(tmp_path, value):
    path = _rewrite(saved(tmp_path), lambda t: t["layers.0.recurrent_kernel"].__setitem__((1, 2), value))
    with pytest.raises(ValueError, match=r"tensor layers.0.recurrent_kernel \(the model's lstm\w*/recurrent_kernel\) "
                                         "holds 1 values that are not finite"):
        load_model(path)
    model = load_model(path, allow_nonfinite=True)
    assert np.isnan(model.layers[0].recurrent_kernel.value[1, 2]) == np.isnan(value)
    with pytest.raises(ValueError, match="not finite"):
        model.load_weights(path)
    model.load_weights(path, allow_nonfinite=True)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_learning_rate_is_refused_always(tmp_path, value):
    path = _rewrite(saved(tmp_path, compiled=True), lambda t: t.__setitem__("optimizer.learning_rate", np.array(value, np.float32)))
    for allow in (False, True):
        with pytest.raises(ValueError, match=r"tensor optimizer.learning_rate \(the optimizer's\) holds 1 values"):
            load_model(path, allow_nonfinite=allow)
    assert load_model(path, compile=False).compiled is False  # the optimizer's state is not read then


def test_non_finite_optimizer_slots_are_refused_unless_allowed(tmp_path):
    def poison(tensors):
        name = next(n for n in tensors if n.startswith("optimizer.layers.0.kernel/"))
        tensors[name][0, 0] = np.nan
    path = _rewrite(saved(tmp_path, compiled=True), poison)
    with pytest.raises(ValueError, match="optimizer.layers.0.kernel/.* not finite"):
        load_model(path)
    load_model(path, allow_nonfinite=True)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_are_refused(tmp_path, text):
    path = saved(tmp_path)
    header, payload = model_corpus.split(path.read_bytes())
    header["__metadata__"]["config"] = header["__metadata__"]["config"].replace('"dropout": 0.0', f'"dropout": {text}')
    path.write_bytes(model_corpus.join(header, payload))
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_model(path)


def test_saving_refuses_what_loading_would(tmp_path):
    model = Sequential([layers.Input((T,)), layers.Embedding(2**24 + 1, 1)])
    with pytest.raises(ValueError, match="cannot save the model: layer 1: Embedding: input_dim"):
        model.save(tmp_path / "m.safetensors")
    assert json.loads(json.dumps(file_rules.rules())) == file_rules.rules()  # JSON all through
