"""The Keras-shaped front end: construction, shapes, the training loop's contract, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

import lstm_native
from lstm_native import callbacks, layers, optimizers
from lstm_native.models import Sequential

T, I, H, CLASSES = 6, 4, 8, 3


def toy_data(n=64, seed=0):
    """Class = which third of the time axis holds the largest mean feature value: needs the whole sequence."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, T, I)).astype(np.float32)
    labels = rng.integers(0, CLASSES, n)
    for k, c in enumerate(labels):
        x[k, 2 * c : 2 * c + 2] += 1.0
    return x, labels, np.eye(CLASSES, dtype=np.float32)[labels]


def classifier(**lstm_kwargs):
    model = Sequential()
    model.add(layers.LSTM(H, input_shape=(T, I), **lstm_kwargs))
    model.add(layers.Dense(CLASSES, activation="softmax"))
    return model


def test_unknown_keyword_arguments_raise_value_error():
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to LSTM"):
        layers.LSTM(4, input_shap=(3, 2))
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Dense"):
        layers.Dense(4, kernel_init="zeros")


@pytest.mark.parametrize("argument, value", [("activation", "relu"), ("recurrent_activation", "hard_sigmoid")])
def test_unsupported_activations_name_what_is_supported(argument, value):
    with pytest.raises(ValueError, match=f"{argument}.*only"):
        layers.LSTM(4, **{argument: value})


def test_summary_counts_parameters(capsys):
    model = classifier()
    model.summary()
    printed = capsys.readouterr().out
    lstm_params = I * 4 * H + H * 4 * H + 4 * H + 3 * H  # W, U, b and the diagonal peepholes
    dense_params = H * CLASSES + CLASSES
    assert f"{lstm_params:,}" in printed and f"{dense_params:,}" in printed
    assert f"Total params: {lstm_params + dense_params:,}" in printed
    assert model.count_params() == lstm_params + dense_params


def test_keras_defaults_initialize_the_lstm():
    lstm_native.utils.set_random_seed(1)
    model = classifier(peephole=None)
    lstm = model.layers[0]
    bias = lstm.bias.value
    np.testing.assert_array_equal(bias[H : 2 * H], 1.0)  # unit_forget_bias
    np.testing.assert_array_equal(np.delete(bias, np.s_[H : 2 * H]), 0.0)
    U = lstm.recurrent_kernel.value
    np.testing.assert_allclose(U @ U.T, np.eye(H), atol=1e-5)  # orthogonal rows
    limit = np.sqrt(6 / (I + 4 * H))  # glorot_uniform
    assert np.abs(lstm.kernel.value).max() <= limit
    assert [w.name for w in lstm.weights] == ["kernel", "recurrent_kernel", "bias"]


def test_get_set_weights_round_trip_and_predict_is_batched():
    x, _, _ = toy_data()
    model = classifier()
    weights = [w + 0.01 for w in model.get_weights()]
    model.set_weights(weights)
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(model.predict(x, batch_size=7), model(x), rtol=0, atol=1e-6)
    assert model.predict(x).shape == (len(x), CLASSES)


def test_fit_returns_keras_history_and_learns():
    lstm_native.utils.set_random_seed(0)
    x, labels, y = toy_data(192)
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer=optimizers.Adam(0.01), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=12, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 12 and history.epoch == list(range(12))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.8
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx({"loss": loss, "accuracy": accuracy})


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, labels, y = toy_data(40)
    seen = []
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    recorder = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs["val_loss"]))
    model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[recorder])
    assert seen[0] == pytest.approx(model.evaluate(x[30:], y[30:], verbose=0), rel=1e-6)


def test_same_seed_same_history_and_weights():
    x, labels, y = toy_data(96)

    def run():
        lstm_native.utils.set_random_seed(42)
        model = Sequential([layers.LSTM(H, input_shape=(T, I), return_sequences=True), layers.Dropout(0.3),
                            layers.LSTM(H), layers.Dense(CLASSES, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        history = model.fit(x, labels, batch_size=16, epochs=3, verbose=0)
        return history.history, model.get_weights()

    (history_1, weights_1), (history_2, weights_2) = run(), run()
    assert history_1 == history_2
    for a, b in zip(weights_1, weights_2):
        np.testing.assert_array_equal(a, b)


def test_stateful_lstm_carries_state_until_reset():
    x, _, _ = toy_data(4)
    lstm = layers.LSTM(H, stateful=True)
    first = lstm(x)
    second = lstm(x)
    assert not np.allclose(first, second)
    lstm.reset_states()
    np.testing.assert_array_equal(lstm(x), first)


def test_return_state_and_initial_state():
    x, _, _ = toy_data(4)
    lstm = layers.LSTM(H, return_sequences=True, return_state=True)
    sequence, h, c = lstm(x)
    assert sequence.shape == (4, T, H) and h.shape == c.shape == (4, H)
    np.testing.assert_array_equal(sequence[:, -1], h)
    # continuing from the returned state equals running the whole sequence at once
    whole = layers.LSTM(H, return_sequences=True)
    whole.build((None, 2 * T, I))
    lstm.set_weights(whole.get_weights())
    long_x = np.concatenate([x, x[::-1]], axis=1)
    head, h, c = lstm(long_x[:, :T])
    tail, _, _ = lstm(long_x[:, T:], initial_state=[h, c])
    np.testing.assert_allclose(np.concatenate([head, tail], axis=1), whole(long_x), rtol=0, atol=1e-6)


def test_early_stopping_stops_and_restores_best_weights():
    x, labels, y = toy_data(64)
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer=optimizers.SGD(1e-9))  # val_loss never improves
    stopper = callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=1.0, restore_best_weights=True)
    before = model.get_weights()
    history = model.fit(x, y, epochs=20, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 3
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_fit_arguments_raise_clear_errors():
    x, _, y = toy_data(8)
    model = classifier()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match="y: expected 8 samples"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="features"):
        model.fit(x[..., :2], y, verbose=0)


@pytest.mark.parametrize("arguments, message", [
    (dict(loss_weights=[1.0, 2.0]), "loss_weights: this model has one output"),
    (dict(loss_weights={"a": 1.0, "b": 2.0}), "loss_weights: this model has one output"),
    (dict(loss_weights="2"), "loss_weights: expected a finite number"),
    (dict(loss_weights=float("nan")), "loss_weights: expected a finite number"),
    (dict(loss_weights=True), "loss_weights: expected a finite number"),
    (dict(weighted_metrics="accuracy"), "weighted_metrics: expected a list"),
    (dict(metrics="accuracy"), "metrics: expected a list"),
])
def test_bad_compile_arguments_raise_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        classifier().compile(loss="categorical_crossentropy", optimizer="adam", **arguments)


@pytest.mark.parametrize("ids, error, message", [
    (np.array([[1, 2, 2**64 - 1]], np.uint64), ValueError, r"embedding: ids: values outside \[0, 10\): "
                                                          r"\[18446744073709551615\]"),
    (np.array([["a", "b", "c"]]), TypeError, "embedding: ids: expected integers, got dtype <U1"),
    (np.array([[1.0, np.nan, 2.0]]), ValueError, r"embedding: ids: .*not finite: \[nan\]"),
    (np.array([[1.0, 2.5, 2.0]]), ValueError, r"embedding: ids: .*fractions: \[2.5\]"),
    (np.array([[1.0, 1e30, 2.0]]), ValueError, r"embedding: ids: values outside \[0, 10\): \[1(\.\d+)?e\+30\]"),
])
@pytest.mark.parametrize("mask_zero", [False, True])
def test_bad_embedding_ids_are_named_with_their_real_values(ids, error, message, mask_zero):
    model = Sequential([layers.Embedding(10, 4, mask_zero=mask_zero, name="embedding"), layers.LSTM(3)])
    with pytest.raises(error, match=message):
        model.predict(ids)


def test_class_weight_names_labels_that_are_not_classes():
    x, labels, _ = toy_data(8)
    model = classifier()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    y = labels.astype(np.float32)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"y \(the classes that class_weight weighs\): .*not finite: \[nan\]"):
        model.fit(x, y, class_weight={0: 2.0}, verbose=0)


def test_lstm_regularization_arguments_train_reproducibly():
    x, labels, y = toy_data(64)
    rates = dict(dropout=0.2, recurrent_dropout=0.2, zoneout_h=0.1, zoneout_c=0.1, weight_drop=0.2)

    def run():
        lstm_native.utils.set_random_seed(3)
        model = Sequential([layers.LSTM(H, input_shape=(T, I), **rates), layers.Dense(CLASSES, activation="softmax")])
        model.compile(loss="categorical_crossentropy", optimizer="adam")
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return model, history.history

    model, history = run()
    _, again = run()
    assert history == again
    lstm = model.layers[0]
    first, second = lstm(x, training=True), lstm(x, training=True)
    assert not np.array_equal(first, second)  # fresh masks per training call
    np.testing.assert_array_equal(lstm(x), lstm(x))  # inference is deterministic


@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout", "zoneout_h", "zoneout_c", "weight_drop"])
def test_lstm_rejects_bad_rates(argument):
    with pytest.raises(ValueError, match=argument):
        layers.LSTM(4, **{argument: 1.0})


@pytest.mark.parametrize("built_first", [True, False])
def test_a_layer_with_two_outputs_is_refused_when_added_and_not_kept(built_first):
    """Issue 16: Bidirectional(merge_mode=None) (two outputs) built and saved inside Sequential, then predict
    raised AttributeError. It is refused when added (or, without a declared input shape, at the build), and a
    refused layer is not left in the model."""
    model = Sequential([layers.Input(shape=(4, 3))] if built_first else [])
    model.add(layers.LSTM(2, return_sequences=True))
    with pytest.raises(ValueError, match="merge_mode=None"):
        model.add(layers.Bidirectional(layers.LSTM(3), merge_mode=None))
        model.predict(np.zeros((1, 4, 3), np.float32))
    assert len(model.layers) == 1 + (not built_first)
    if built_first:
        assert model.predict(np.zeros((1, 4, 3), np.float32)).shape == (1, 4, 2)


@pytest.mark.parametrize("make_layer, x", [
    (lambda: layers.Dense(3), np.ones((2, 4), np.float32)),
    (lambda: layers.Embedding(10, 3), np.ones((2, T), np.int64)),
    (lambda: layers.Masking(), np.ones((2, T, I), np.float32)),
    (lambda: layers.LSTM(3), np.ones((2, T, I), np.float32)),
    (lambda: layers.Bidirectional(layers.LSTM(3)), np.ones((2, T, I), np.float32)),
], ids=["Dense", "Embedding", "Masking", "LSTM", "Bidirectional"])
def test_backward_without_a_training_forward_pass_names_the_layer(make_layer, x):
    layer = make_layer()
    y = layer(x)  # an inference pass: it keeps nothing for backward
    with pytest.raises(RuntimeError, match=f"{layer.name}: backward needs a training forward pass first"):
        layer.backward(np.ones_like(y))


def test_compile_refuses_no_optimizer():
    """compile(optimizer=None) was accepted, and fit then crashed (AttributeError: 'NoneType' object has no attribute
    'apply'), as did save."""
    model = Sequential([layers.LSTM(4, input_shape=(None, 3)), layers.Dense(1)])
    with pytest.raises(ValueError, match="an optimizer is required"):
        model.compile(optimizer=None, loss="mse")
    assert not model.compiled
