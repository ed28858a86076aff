"""model.save / load_model / save_weights / load_weights (lstm_native.saving): exact round trips of every layer
type and cell variant, training that resumes exactly, atomic saves, and hostile files that must fail cleanly."""

from __future__ import annotations

import inspect
import json
import os
import struct

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

from lstm_native import initializers, layers, optimizers, regularizers, saving, utils
from lstm_native.models import Sequential, load_model

T, I, CLASSES = 5, 3, 2


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, T, I)).astype(np.float32)
    x[0, -2:] = 0.0  # padded steps, for the Masking layer
    return x, np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)]


def stacked(peephole, source, dtype="float32"):
    """Every layer type but Embedding: masking, a bidirectional and a backwards LSTM, dropout, dense."""
    lstm = dict(peephole=peephole, output_peephole_source=source, peephole_initializer="glorot_uniform", dtype=dtype)
    return Sequential([
        layers.Input((T, I)),
        layers.Masking(dtype=dtype),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True, **lstm), merge_mode="sum", dtype=dtype),
        layers.Dropout(0.25, dtype=dtype),
        layers.LSTM(5, go_backwards=True, kernel_regularizer=regularizers.L1L2(l1=1e-3, l2=1e-2), **lstm),
        layers.Dense(CLASSES, activation="softmax", dtype=dtype),
    ])


def embedded():
    """Embedding with a mask, a Bidirectional with a backward layer of its own, no declared input shape."""
    forward = layers.LSTM(4, return_sequences=True, peephole="full")
    backward = layers.LSTM(4, return_sequences=True, go_backwards=True, peephole=None,
                           kernel_initializer=initializers.RandomUniform(-0.2, 0.2, seed=4))
    return Sequential([layers.Embedding(10, 6, mask_zero=True), layers.Bidirectional(forward, backward_layer=backward),
                       layers.LSTM(4, output_peephole_source="previous"), layers.Dense(1, activation="sigmoid")])


def trained(model, x, y, loss="categorical_crossentropy", steps=2):
    model.compile(optimizer=optimizers.Adam(0.01, amsgrad=True), loss=loss, metrics=["accuracy"])
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model


def train_and_compare(original, loaded, x, y):
    """Two more training steps of each, from the same library generator state: equal weights, bit for bit."""
    for model in (original, loaded):
        utils.set_random_seed(7)
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
    for ours, theirs in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert loaded.optimizer.iterations == original.optimizer.iterations == 4


def test_round_trip_of_every_layer_and_variant_predicts_and_trains_identically(tmp_path, variant):
    x, y = data()
    model = trained(stacked(*variant), x, y)
    model.save(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    train_and_compare(model, loaded, x, y)


def test_round_trip_of_embeddings_and_a_model_built_from_data(tmp_path):
    rng = np.random.default_rng(1)
    ids, y = rng.integers(0, 10, (8, T)), rng.integers(0, 2, (8, 1)).astype(np.float32)
    ids[:, -1] = 0
    model = trained(embedded(), ids, y, loss="binary_crossentropy")
    model.save(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.get_config() == model.get_config()
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))
    train_and_compare(model, loaded, ids, y)


def test_a_model_built_for_other_timesteps_than_declared_saves_and_loads(tmp_path):
    """build() with fixed timesteps under an Input that leaves them open: the file holds the declared shape, which
    both loaders require (it held the built one, and neither loader read it)."""
    model = Sequential([layers.Input((None, 3)), layers.LSTM(4), layers.Dense(2)])
    model.build((None, 9, 3))
    path = str(tmp_path / "m.safetensors")
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))


def test_float64_models_stay_float64(tmp_path):
    x, y = data()
    model = stacked("diagonal", "current", dtype="float64")
    model.save(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert all(w.dtype == np.float64 for w in loaded.weights) and len(loaded.weights) == len(model.weights)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_tensor_names_and_header(tmp_path):
    model = trained(embedded(), np.ones((2, T), int), np.ones((2, 1), np.float32), loss="binary_crossentropy")
    model.save(tmp_path / "model.safetensors")
    with safe_open(str(tmp_path / "model.safetensors"), framework="numpy") as f:
        names, metadata = set(f.keys()), f.metadata()
    lstm = ["kernel", "recurrent_kernel", "bias"]
    assert {n for n in names if n.startswith("layers.")} == {
        "layers.0.embeddings", *(f"layers.1.forward.{w}" for w in lstm + ["peephole"]),
        *(f"layers.1.backward.{w}" for w in lstm), *(f"layers.2.{w}" for w in lstm + ["peephole"]),
        "layers.3.kernel", "layers.3.bias"}
    assert {"optimizer.iterations", "optimizer.learning_rate", "optimizer.layers.3.kernel/velocity_hat",
            "optimizer.layers.1.forward.peephole/momentum"} <= names
    assert metadata["format"] == "lstm_native" and metadata["format_version"] == "1"
    assert json.loads(metadata["build_input_shape"]) == [None, T]
    assert json.loads(metadata["compile"])["loss"]["class_name"] == "BinaryCrossentropy"


def test_without_optimizer_the_loaded_model_is_not_compiled(tmp_path):
    x, y = data()
    model = trained(stacked("full", "previous"), x, y)
    model.save(tmp_path / "model.safetensors", include_optimizer=False)
    loaded = load_model(tmp_path / "model.safetensors")
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert not load_model(tmp_path / "model.safetensors", compile=False).compiled


def test_weighted_metrics_and_loss_weights_round_trip(tmp_path):
    x, y = data()
    weights = np.linspace(0.0, 2.0, len(x)).astype(np.float32)
    model = stacked(None, "current")
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy", "mse"], loss_weights={"dense": 2.5})
    model.save(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    expected = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert set(expected) == {"loss", "accuracy", "weighted_accuracy", "mse"}
    assert loaded.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True) == expected


def test_loading_draws_no_random_numbers(tmp_path):
    stacked(None, "current").save(tmp_path / "model.safetensors")
    utils.set_random_seed(3)
    state = utils.get_rng_state()
    load_model(tmp_path / "model.safetensors")
    assert utils.get_rng_state() == state


# Arguments that a layer accepts at their default only (the native cell computes tanh and sigmoid, whole
# sequences), under another name (InputLayer's input_shape is its shape) or that belong to the machine, not
# the model (LSTM's device): configs leave them out.
_DEFAULT_ONLY = {"LSTM": {"activation", "recurrent_activation", "unroll", "device"}, "InputLayer": {"input_shape"}}


def test_configs_hold_every_constructor_argument():
    lstm = layers.LSTM(3, use_bias=False, kernel_initializer="he_normal", recurrent_initializer="identity",
                       unit_forget_bias=False, recurrent_regularizer="l2", dropout=0.1, recurrent_dropout=0.2,
                       return_sequences=True, go_backwards=True, stateful=True, seed=5, peephole="full",
                       output_peephole_source="previous", peephole_regularizer=regularizers.L1(0.5))
    examples = [lstm, layers.Dense(2, activation="relu", use_bias=False, bias_regularizer="l1"),
                layers.Embedding(5, 2, embeddings_initializer="ones", mask_zero=True),
                layers.Dropout(0.1, noise_shape=[None, 1, 4], seed=2), layers.Masking(1.0),
                layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="ave"),
                layers.InputLayer((3, 2), dtype="int32", batch_size=4)]
    for layer in examples:
        config = json.loads(json.dumps(layers.serialize(layer)))["config"]
        arguments = set(inspect.signature(type(layer).__init__).parameters) - {"self", "kwargs"}
        assert arguments - set(config) - _DEFAULT_ONLY.get(type(layer).__name__, set()) == set(), type(layer)
        rebuilt = type(layer).from_config(config)
        assert rebuilt.get_config() == layer.get_config()
    assert lstm.get_config()["dropout"] == 0.1 and lstm.get_config()["peephole_regularizer"] == {
        "class_name": "L1", "config": {"l1": 0.5}}


def test_layer_configs_rebuild_the_same_layers():
    for layer in stacked("full", "previous").layers + embedded().layers:
        rebuilt = layers.deserialize(json.loads(json.dumps(layers.serialize(layer))))
        assert type(rebuilt) is type(layer) and rebuilt.get_config() == layer.get_config()
    lstm = stacked(None, "current").layers[-2]
    assert lstm.get_config()["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 1e-3, "l2": 1e-2}}


# ------------------------------------------------------------------------------------------------ weights

def test_save_weights_and_load_weights(tmp_path):
    x, _ = data()
    source, target = stacked("diagonal", "previous"), stacked("diagonal", "previous")
    source.save_weights(tmp_path / "w.safetensors")
    target.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(target.predict(x), source.predict(x))
    other = stacked("diagonal", "previous")
    other.load_weights(tmp_path / "w.safetensors")  # a model file serves as well
    with pytest.raises(ValueError, match="no 'config' entry"):
        load_model(tmp_path / "w.safetensors")


@pytest.mark.parametrize("architecture, message", [
    (lambda: stacked("full", "current"), "has shape"),
    (lambda: stacked(None, "current"), "has tensors"),
    (lambda: stacked("diagonal", "current", dtype="float64"), "has dtype F32, expected F64"),
    (lambda: Sequential([layers.Input((T, I)), layers.LSTM(4)]), "lacks"),
    (lambda: Sequential([layers.Input((T, I)), layers.Masking(),
                         layers.Bidirectional(layers.LSTM(4, return_sequences=True)), layers.Dropout(0.1),
                         layers.LSTM(5), layers.Dense(2), layers.Dense(2)]), "lacks"),
])
def test_load_weights_into_another_architecture_fails_and_changes_nothing(tmp_path, architecture, message):
    stacked("diagonal", "current").save_weights(tmp_path / "w.safetensors")
    model = architecture()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.load_weights(tmp_path / "w.safetensors")
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_models_that_are_not_built_cannot_be_saved_or_loaded_into(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Sequential([layers.LSTM(3)]).save(tmp_path / "m.safetensors")
    stacked(None, "current").save_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="not built"):
        Sequential([layers.LSTM(3)]).load_weights(tmp_path / "w.safetensors")


# ---------------------------------------------------------------------------------------- what cannot be saved

def test_unsaveable_parts_fail_at_save_time(tmp_path):
    x, y = data()
    custom = Sequential([layers.Input((T, I)), layers.LSTM(3), layers.Dense(2, activation=lambda v: v * 2)])
    with pytest.raises(ValueError, match="cannot save the model: unknown activation"):
        custom.save(tmp_path / "m.safetensors")
    model = stacked(None, "current")
    model.compile(optimizer="sgd", loss="mse", metrics=[lambda t, p: np.abs(t - p)])
    with pytest.raises(ValueError, match="unknown metric class 'MeanMetricWrapper'.*include_optimizer=False"):
        model.save(tmp_path / "m.safetensors")
    assert not os.listdir(tmp_path)
    model.save(tmp_path / "m.safetensors", include_optimizer=False)
    np.testing.assert_array_equal(load_model(tmp_path / "m.safetensors").predict(x), model.predict(x))


# -------------------------------------------------------------------------------------------------- atomicity

def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    x, y = data()
    path = tmp_path / "model.safetensors"
    model = stacked("diagonal", "current")
    model.save(path)
    expected, before = model.predict(x), path.read_bytes()
    trained(model, x, y)

    def crash(source, target):
        raise OSError("simulated crash between the write and the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.safetensors"]  # no temporary left
    np.testing.assert_array_equal(load_model(path).predict(x), expected)


# --------------------------------------------------------------------------------------------- hostile files

def read(path):
    with safe_open(str(path), framework="numpy") as f:
        return {name: f.get_tensor(name) for name in f.keys()}, f.metadata()


def write(path, tensors, metadata):
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)


@pytest.fixture
def saved(tmp_path):
    """A compiled, trained model's file and its (tensors, metadata)."""
    x, y = data()
    path = tmp_path / "model.safetensors"
    trained(stacked("diagonal", "current"), x, y).save(path)
    return path, *read(path)


def rewritten(path, tensors, metadata, **changes):
    """The file again with metadata entries changed (None removes one)."""
    metadata = {k: v for k, v in {**metadata, **changes}.items() if v is not None}
    write(path, tensors, metadata)
    return path


def with_config(path, tensors, metadata, change):
    config = json.loads(metadata["config"])
    change(config)
    return rewritten(path, tensors, metadata, config=json.dumps(config))


def lstm_config(config):
    return config["layers"][4]["config"]


@pytest.mark.parametrize("change, message", [
    (dict(format=None), "not an lstm_native file"),
    (dict(format="keras"), "not an lstm_native file"),
    (dict(format_version="2"), "format version '2'; this version of lstm_native reads version 1"),
    (dict(config="{'name': "), "header entry 'config' is not valid JSON"),
    (dict(config="[" * 100_000 + "]" * 100_000), "header entry 'config' is not valid JSON"),
    (dict(config="[]"), "the config is not"),
    (dict(config=None), "no 'config' entry"),
    (dict(build_input_shape='"x"'), "build_input_shape"),
    (dict(build_input_shape="[null, -5, 3]"), "positive integers"),
    (dict(compile='{"optimizer": "adam"}'), "compile config"),
    (dict(compile=json.dumps({"optimizer": {"class_name": "Evil", "config": {}}, "loss": "mse", "metrics": []})),
     "Unknown optimizer|Could not interpret optimizer"),
    (dict(compile=json.dumps({"optimizer": "sgd", "loss": "mse", "metrics": ["nonsense"]})), "unknown metric"),
    (dict(compile=json.dumps({"optimizer": "sgd", "loss": "mse", "metrics": [], "weighted_metrics": "mse"})),
     "compile config"),
    (dict(compile=json.dumps({"optimizer": "sgd", "loss": "mse", "metrics": [], "loss_weights": "2"})),
     "loss_weights: expected a finite number"),
    (dict(surprise="1"), "unknown header entries"),
])
def test_bad_metadata_is_a_clear_error(saved, change, message):
    path = rewritten(*saved, **change)
    with pytest.raises(ValueError, match=message) as error:
        load_model(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["layers"][1].update(class_name="os.system"), "unknown layer class 'os.system'"),
    (lambda c: c["layers"][1].update(class_name="__class__"), "unknown layer class"),
    (lambda c: c["layers"].append(["not", "a", "dict"]), "expected a layer as"),
    (lambda c: lstm_config(c).update(units=-3), "units: expected a positive integer"),
    (lambda c: lstm_config(c).update(units="5"), "units: expected a positive integer"),
    (lambda c: lstm_config(c).update(units=10**12), "the model config"),  # no memory to build it
    (lambda c: lstm_config(c).update(return_sequences="yes"), "return_sequences must be a bool"),
    (lambda c: lstm_config(c).update(peephole="sideways"), "peephole: expected one of"),
    (lambda c: lstm_config(c).update(surprise=1), "Unrecognized keyword arguments"),
    (lambda c: lstm_config(c).update(name=["x"]), "name must be a str"),
    (lambda c: lstm_config(c).update(dtype="int8"), "dtype: expected float32 or float64"),
    (lambda c: lstm_config(c).update(kernel_regularizer={"class_name": "Evil"}), "unknown regularizer class"),
    (lambda c: lstm_config(c).update(kernel_initializer={"class_name": "GlorotUniform", "config": {"x": 1}}),
     "invalid config"),
    (lambda c: c["layers"][0]["config"].update(shape=[T, "3"]), "positive integers"),
    (lambda c: c["layers"][2]["config"].update(layer={"class_name": "Dense", "config": {"units": 4}}),
     "expected a recurrent layer"),
])
def test_bad_configs_are_clear_errors(saved, change, message):
    with pytest.raises(ValueError, match=message):
        load_model(with_config(*saved, change))


def test_a_config_that_asks_for_other_shapes_than_the_tensors_is_an_error(saved):
    with pytest.raises(ValueError, match=r"tensor layers\.3\.kernel .* has shape \(4, 20\), expected \(4, 28\)"):
        load_model(with_config(*saved, lambda c: lstm_config(c).update(units=7)))


def with_tensors(path, tensors, metadata, change):
    tensors = dict(tensors)
    change(tensors)
    write(path, tensors, metadata)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("layers.3.recurrent_kernel"), r"lacks the tensors \['layers.3.recurrent_kernel'\]"),
    (lambda t: t.update({"layers.7.kernel": np.zeros(2, np.float32)}), r"has tensors \['layers.7.kernel'\]"),
    (lambda t: t.update({"extra": np.zeros(2, np.float32)}), r"unexpected tensors \['extra'\]"),
    (lambda t: t.update({"layers.3.bias": np.zeros(19, np.float32)}), r"layers.3.bias .* has shape \(19,\)"),
    (lambda t: t.update({"layers.3.bias": np.zeros(20, np.float64)}), "layers.3.bias .* has dtype F64"),
    (lambda t: t.update({"layers.3.bias": np.zeros(20, np.int32)}), "layers.3.bias .* has dtype I32"),
    (lambda t: t.update({"optimizer.iterations": np.array(2.0)}), "optimizer.iterations .* has dtype F64"),
    (lambda t: t.update({"optimizer.iterations": np.array(-1)}), "iterations is negative"),
    (lambda t: t.update({"optimizer.layers.9.kernel/momentum": np.zeros(2, np.float32)}),
     "a weight the model does not have"),
    (lambda t: t.update({"optimizer.layers.4.bias/surprise": np.zeros(2, np.float32)}),
     "Unknown optimizer state entry"),
    (lambda t: t.pop("optimizer.layers.4.bias/momentum"), "has slots"),
    (lambda t: t.update({"optimizer.layers.4.bias/momentum": np.zeros(3, np.float32)}), "has shape"),
])
def test_bad_tensors_are_clear_errors(saved, change, message):
    with pytest.raises(ValueError, match=message):
        load_model(with_tensors(*saved, change))


def test_without_compiling_the_optimizer_state_is_not_read(saved):
    path = with_tensors(*saved, lambda t: t.update({"optimizer.iterations": np.array(-1)}))
    assert not load_model(path, compile=False).compiled


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[: len(raw) - 7], "not a valid safetensors file"),
    (lambda raw: raw[:30], "not a valid safetensors file"),
    (lambda raw: struct.pack("<Q", len(raw) + 1000) + raw[8:], "not a valid safetensors file"),
    (lambda raw: struct.pack("<Q", 2**60) + raw[8:], "not a valid safetensors file"),
    (lambda raw: b"", "not a valid safetensors file"),
    (lambda raw: b"PK\x03\x04 a zip file, not ours" * 10, "not a valid safetensors file"),
    (lambda raw: struct.pack("<Q", 12) + b'{"a": [1, 2' + raw[20:], "not a valid safetensors file"),
])
def test_damaged_files_are_clear_errors(saved, damage, message):
    path = saved[0]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        load_model(path)
    with pytest.raises(ValueError, match=message):
        stacked("diagonal", "current").load_weights(path)


def test_a_failed_checkpoint_read_leaves_the_model_and_its_optimizer_untouched(tmp_path):
    x, y = data()
    model = trained(stacked("diagonal", "current"), x, y, steps=1)
    path = tmp_path / "checkpoint.safetensors"
    saving.save_checkpoint(model, path, {"epoch": 1})
    trained(model, x, y, steps=1)
    before, state = model.get_weights(), model.optimizer.variables()
    with_tensors(path, *read(path), lambda t: t.update({"optimizer.layers.4.bias/surprise": np.zeros(2, np.float32)}))
    with pytest.raises(ValueError, match="Unknown optimizer state entry"):
        saving.read_checkpoint(model, path)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    after = model.optimizer.variables()
    assert after.keys() == state.keys() and all(np.array_equal(after[k], state[k]) for k in state)
