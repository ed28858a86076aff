"""LSTM(units, proj_size=P) in the Keras-shaped front end: shapes, the parameter saving summary() reports,
training through fit, saving and loading, Bidirectional, and the refusals (zoneout, bad sizes). The cell
itself is checked in tests/test_projection.py; the C++ loader in tests/test_cpp_model.py; PyTorch's
proj_size in tests/test_interop.py."""

import numpy as np
import pytest

import lstm_native
from lstm_native import layers
from lstm_native.models import Sequential, load_model

T, F, H, P = 6, 4, 8, 3


def projected_model(**lstm_kwargs):
    return Sequential([layers.Input(shape=(T, F)), layers.LSTM(H, proj_size=P, **lstm_kwargs),
                       layers.Dense(2, activation="softmax")])


def test_shapes_and_weights():
    lstm = layers.LSTM(H, proj_size=P, return_sequences=True, return_state=True)
    y, h, c = lstm(np.zeros((5, T, F), np.float32))
    assert y.shape == (5, T, P) and h.shape == (5, P) and c.shape == (5, H)
    assert [w.shape for w in lstm.weights] == [(F, 4 * H), (P, 4 * H), (4 * H,), (3, H), (H, P)]
    assert lstm.compute_output_shape((None, T, F)) == [(None, T, P), (None, P), (None, H)]


def test_summary_reports_the_saving():
    lines = []
    model = projected_model()
    model.summary(print_fn=lines.append)
    plain = Sequential([layers.Input(shape=(T, F)), layers.LSTM(H), layers.Dense(2, activation="softmax")])
    saving = (H - P) * 4 * H - H * P  # U (H,4H) -> (P,4H), plus W_hr (H,P)
    lstm_saving = plain.layers[0].count_params() - model.layers[0].count_params()
    assert lstm_saving == saving
    assert any(f"proj_size={P} of units={H} saves {saving:,} params" in line for line in lines), lines
    assert any(f"{model.layers[0].count_params():,}" in line for line in lines)


def test_fit_lowers_the_loss_and_trains_the_projection():
    rng = np.random.default_rng(0)
    lstm_native.utils.set_random_seed(0)
    x = rng.standard_normal((64, T, F)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    model = projected_model(dropout=0.1, recurrent_dropout=0.1, weight_drop=0.1)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=lstm_native.optimizers.Adam(0.01),
                  metrics=["accuracy"])
    projection_before = model.layers[0].projection.value.copy()
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    assert not np.array_equal(model.layers[0].projection.value, projection_before)


def test_layer_gradient_of_the_projection_matches_central_differences():
    rng = np.random.default_rng(1)
    lstm = layers.LSTM(H, proj_size=P, return_sequences=True, dtype="float64")
    x = rng.standard_normal((2, T, F))
    lstm(x)
    for w in lstm.weights:
        w.value[...] = rng.uniform(-0.5, 0.5, w.shape)
    dy = rng.standard_normal((2, T, P))
    lstm(x, training=True)
    lstm.backward(dy)
    analytic = lstm.projection.grad
    numeric = np.empty_like(analytic)
    for index in np.ndindex(analytic.shape):
        saved = lstm.projection.value[index]
        lstm.projection.value[index] = saved + 1e-6
        plus = np.sum(lstm(x) * dy)
        lstm.projection.value[index] = saved - 1e-6
        minus = np.sum(lstm(x) * dy)
        lstm.projection.value[index] = saved
        numeric[index] = (plus - minus) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_save_and_load_keep_the_projection(tmp_path):
    rng = np.random.default_rng(2)
    model = Sequential([layers.Input(shape=(T, F)),
                        layers.Bidirectional(layers.LSTM(H, proj_size=P, return_sequences=True, peephole="full")),
                        layers.LSTM(H, proj_size=2), layers.Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    x = rng.standard_normal((5, T, F)).astype(np.float32)
    model.fit(x, rng.standard_normal((5, 2)).astype(np.float32), epochs=1, verbose=0)
    assert model.layers[0].compute_output_shape((None, T, F)) == (None, T, 2 * P)
    model.save(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.layers[1].proj_size == 2 and loaded.layers[0].forward_layer.proj_size == P
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("kwargs, message", [
    (dict(proj_size=-1), "proj_size: expected an integer >= 0"),
    (dict(proj_size=2.5), "proj_size: expected an integer >= 0"),
    (dict(proj_size=True), "proj_size: expected an integer >= 0"),
    (dict(proj_size=2, zoneout_h=0.1), "zoneout is not supported with a projection"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.LSTM(H, **kwargs)


def test_bidirectional_halves_must_agree_on_the_projection():
    with pytest.raises(ValueError, match="proj_size must be the same"):
        layers.Bidirectional(layers.LSTM(H, proj_size=P), backward_layer=layers.LSTM(H, go_backwards=True))
