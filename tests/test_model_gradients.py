"""Backpropagation through a whole Sequential model: float64 central differences of the compiled loss
(regularization included) against the gradients the layers' backward passes leave in every weight."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_native import layers, regularizers
from lstm_native.models import Sequential

B, T, I, H, CLASSES = 3, 5, 4, 3, 3
F64 = dict(dtype="float64")


def lstm(**kwargs):
    return layers.LSTM(H, peephole=kwargs.pop("peephole", "diagonal"), peephole_initializer="glorot_uniform",
                       **F64, **kwargs)


MODELS = {
    "lstm-dense-softmax": lambda: [lstm(), layers.Dense(CLASSES, activation="softmax", **F64)],
    "lstm-sequences-tanh-dense": lambda: [lstm(return_sequences=True, peephole="full"),
                                           layers.Dense(CLASSES, activation="tanh", **F64)],
    "stacked-go-backwards": lambda: [lstm(return_sequences=True, peephole=None), lstm(go_backwards=True),
                                     layers.Dense(CLASSES, activation="softmax", **F64)],
    "masking-lstm": lambda: [layers.Masking(0.0, **F64), lstm(output_peephole_source="previous"),
                             layers.Dense(CLASSES, activation="softmax", **F64)],
    "bidirectional-concat": lambda: [layers.Bidirectional(lstm(return_sequences=True)),
                                     layers.Dense(CLASSES, activation="softmax", **F64)],
    "bidirectional-mul": lambda: [layers.Bidirectional(lstm(), merge_mode="mul"),
                                  layers.Dense(CLASSES, activation="sigmoid", **F64)],
    "bidirectional-ave-masked": lambda: [layers.Masking(0.0, **F64),
                                         layers.Bidirectional(lstm(return_sequences=True), merge_mode="ave"),
                                         layers.Dense(CLASSES, **F64)],
    "embedding-masked-lstm": lambda: [layers.Embedding(6, I, mask_zero=True, **F64), lstm(),
                                      layers.Dense(CLASSES, activation="softmax", **F64)],
    "activity-regularized": lambda: [lstm(return_sequences=True, activation_regularization=0.3,
                                          temporal_activation_regularization=0.2, activity_regularizer="l2"),
                                     lstm(activity_regularizer=regularizers.L1L2(0.01, 0.02), go_backwards=True),
                                     layers.Dense(CLASSES, activation="softmax", **F64)],
    "regularized": lambda: [lstm(kernel_regularizer=regularizers.L2(0.01), recurrent_regularizer="l1",
                                 bias_regularizer=regularizers.L1L2(0.01, 0.02)),
                            layers.Dense(CLASSES, activation="softmax", kernel_regularizer="l2", **F64)],
}
LOSSES = {"lstm-sequences-tanh-dense": "mse", "bidirectional-concat": "categorical_crossentropy",
          "bidirectional-mul": "binary_crossentropy", "bidirectional-ave-masked": "mae"}


def data(rng, model_name, sequence_output):
    if model_name.startswith("embedding"):
        x = rng.integers(1, 6, (B, T))
        x[0, :2] = 0  # padding ids
    else:
        x = rng.standard_normal((B, T, I))
    if "masking" in model_name or "masked" in model_name and not model_name.startswith("embedding"):
        x[0, :2] = 0.0  # two leading padded steps
        x[1, -1] = 0.0  # one trailing padded step
    shape = (B, T, CLASSES) if sequence_output else (B, CLASSES)
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, shape[:-1])]
    return x, y


@pytest.mark.parametrize("model_name", MODELS)
def test_model_gradients_match_central_differences(model_name):
    rng = np.random.default_rng(len(model_name))
    model = Sequential(MODELS[model_name]())
    model.compile(optimizer="sgd", loss=LOSSES.get(model_name, "categorical_crossentropy"))
    sequence_output = model_name in ("lstm-sequences-tanh-dense", "bidirectional-concat", "bidirectional-ave-masked")
    x, y = data(rng, model_name, sequence_output)
    sample_weight = rng.uniform(0.5, 1.5, B)
    model.build((None, T) if model_name.startswith("embedding") else (None, T, I))

    def loss():
        return float(model.loss(y, model(x), sample_weight=sample_weight)) + model._penalty()

    y_pred, _ = model._forward(x, training=True)
    model._loss_and_backward(y, y_pred, sample_weight)
    eps = 1e-6
    for variable in model.trainable_weights:
        analytic = variable.grad.copy()
        numeric = np.zeros_like(variable.value)
        for index in np.ndindex(variable.value.shape):
            saved = variable.value[index]
            variable.value[index] = saved + eps
            up = loss()
            variable.value[index] = saved - eps
            down = loss()
            variable.value[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        scale = np.maximum(np.maximum(np.abs(numeric), np.abs(analytic)), 1e-3)
        # l1 penalties have a kink at 0 that central differences straddle only if a weight sits within eps of it
        assert np.max(np.abs(numeric - analytic) / scale) < 1e-5, variable.path


def test_dropout_backward_uses_the_forward_mask():
    rng = np.random.default_rng(0)
    dropout = layers.Dropout(0.4, seed=3, **F64)
    x = rng.standard_normal((50, 20))
    y = dropout(x, training=True)
    kept = y != 0
    assert 0.5 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], x[kept] / 0.6)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(dropout.backward(dy), np.where(kept, dy / 0.6, 0.0))
    np.testing.assert_array_equal(dropout(x, training=False), x)


def test_embedding_gradient_sums_rows_of_repeated_ids():
    embedding = layers.Embedding(5, 2, mask_zero=True, **F64)
    ids = np.array([[1, 2, 1, 0]])
    out = embedding(ids, training=True)
    assert out.shape == (1, 4, 2)
    np.testing.assert_array_equal(embedding.compute_mask(ids), [[True, True, True, False]])
    embedding.backward(np.ones((1, 4, 2)))
    np.testing.assert_array_equal(embedding.embeddings.grad[:, 0], [1, 2, 1, 0, 0])
