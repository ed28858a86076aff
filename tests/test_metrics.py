"""lstm_native.metrics against keras.metrics (TensorFlow backend): results accumulated over several
update_state calls, with and without sample weights, on rank-2 and rank-3 (sequence) predictions; and get()
against the metric that Keras' compile picks for the same identifier and data.

Measured (seeds 0-3): results within 2.3e-7 of Keras relative (Keras accumulates in float32, these metrics in float64);
the tests allow 1e-6.
"""

import keras
import numpy as np
import pytest
from keras.src.trainers.compile_utils import get_metric

from lstm_native import metrics

B, T, C = 6, 4, 3


def probabilities(rng, shape):
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def one_hot(rng, shape):
    return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


def labels(rng, shape):
    return rng.integers(0, shape[-1], shape[:-1])


# id -> (our metric, Keras' metric, (rng, shape) -> (y_true, y_pred))
CASES = {
    "accuracy": (metrics.Accuracy, keras.metrics.Accuracy,
                 lambda rng, shape: (rng.integers(0, 2, shape), rng.integers(0, 2, shape))),
    "binary": (metrics.BinaryAccuracy, keras.metrics.BinaryAccuracy,
               lambda rng, shape: (rng.integers(0, 2, shape), rng.uniform(size=shape))),
    "binary-threshold": (lambda: metrics.BinaryAccuracy(threshold=0.7),
                         lambda: keras.metrics.BinaryAccuracy(threshold=0.7),
                         lambda rng, shape: (rng.integers(0, 2, shape), rng.uniform(size=shape))),
    "binary-one-output": (metrics.BinaryAccuracy, keras.metrics.BinaryAccuracy,  # y_true lacks the unit axis
                          lambda rng, shape: (rng.integers(0, 2, shape[:-1]), rng.uniform(size=shape[:-1] + (1,)))),
    "categorical": (metrics.CategoricalAccuracy, keras.metrics.CategoricalAccuracy,
                    lambda rng, shape: (one_hot(rng, shape), probabilities(rng, shape))),
    "sparse": (metrics.SparseCategoricalAccuracy, keras.metrics.SparseCategoricalAccuracy,
               lambda rng, shape: (labels(rng, shape), probabilities(rng, shape))),
    "sparse-labels-with-unit-axis": (metrics.SparseCategoricalAccuracy, keras.metrics.SparseCategoricalAccuracy,
                                     lambda rng, shape: (labels(rng, shape)[..., None], probabilities(rng, shape))),
    "mae": (metrics.MeanAbsoluteError, keras.metrics.MeanAbsoluteError,
            lambda rng, shape: (rng.normal(size=shape), rng.normal(size=shape))),
    "mse": (metrics.MeanSquaredError, keras.metrics.MeanSquaredError,
            lambda rng, shape: (rng.normal(size=shape), rng.normal(size=shape))),
}


def weights(rng, shape, weighting):
    """None, one weight per sample (B,), or one per step (the shape without the class axis)."""
    return {None: None, "sample": rng.uniform(0, 2, shape[:1]), "step": rng.uniform(0, 2, shape[:-1])}[weighting]


@pytest.mark.parametrize("weighting", [None, "sample", "step"])
@pytest.mark.parametrize("shape", [(B, C), (B, T, C)], ids=["rank2", "rank3"])
@pytest.mark.parametrize("case", CASES)
def test_accumulated_results_match_keras(case, shape, weighting, rng):
    ours, theirs, make = CASES[case]
    metric, keras_metric = ours(), theirs()
    assert metric.name == keras_metric.name
    for _ in range(3):
        y_true, y_pred = make(rng, shape)
        sample_weight = weights(rng, shape, weighting)
        metric.update_state(y_true, y_pred, sample_weight)
        keras_metric.update_state(y_true, y_pred, sample_weight)
        assert metric.result() == pytest.approx(float(keras_metric.result()), rel=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_reset_state_starts_over(case, rng):
    ours, theirs, make = CASES[case]
    metric, keras_metric = ours(), theirs()
    metric.update_state(*make(rng, (B, C)))
    metric.reset_state()
    assert metric.result() == 0.0
    y_true, y_pred = make(rng, (B, T, C))
    metric.update_state(y_true, y_pred)
    keras_metric.update_state(y_true, y_pred)
    assert metric.result() == pytest.approx(float(keras_metric.result()), rel=1e-6)


@pytest.mark.parametrize("values_shape, weights_shape", [((B,), None), ((B,), (B,)), ((B, T), (B,)), ((B, T), (B, T)),
                                                         ((B, T), (B, 1)), ((B, 1), (B,)), ((), None), ((B, T), ())])
def test_mean_matches_keras(values_shape, weights_shape, rng):
    metric, keras_metric = metrics.Mean(), keras.metrics.Mean()
    for _ in range(2):
        values = rng.normal(size=values_shape)
        sample_weight = None if weights_shape is None else rng.uniform(0, 2, weights_shape)
        metric.update_state(values, sample_weight)
        keras_metric.update_state(values, sample_weight)
        assert metric.result() == pytest.approx(float(keras_metric.result()), rel=1e-6)


def mean_error(y_true, y_pred):
    return y_pred - y_true


@pytest.mark.parametrize("identifier, y_true_shape, y_pred_shape", [
    ("accuracy", (B, 1), (B, 1)), ("accuracy", (B,), (B, 1)), ("accuracy", (B, T, 1), (B, T, 1)),
    ("acc", (B,), (B, C)), ("accuracy", (B, 1), (B, C)), ("accuracy", (B, T), (B, T, C)),
    ("Accuracy", (B, C), (B, C)), ("accuracy", (B, T, C), (B, T, C)),
    ("binary_accuracy", (B, 1), (B, 1)), ("categorical_accuracy", (B, C), (B, C)),
    ("sparse_categorical_accuracy", (B,), (B, C)), ("CategoricalAccuracy", (B, C), (B, C)),
    ("mae", (B, C), (B, C)), ("MAE", (B, C), (B, C)), ("mean_absolute_error", (B, C), (B, C)),
    ("mse", (B, C), (B, C)), ("mean_squared_error", (B, C), (B, C)), ("MeanSquaredError", (B, C), (B, C)),
    (mean_error, (B, C), (B, C))])
def test_get_picks_the_metric_keras_compile_picks(identifier, y_true_shape, y_pred_shape, rng):
    y_true = rng.integers(0, 2, y_true_shape).astype(float)
    y_pred = rng.uniform(size=y_pred_shape)
    metric, keras_metric = metrics.get(identifier, y_true, y_pred), get_metric(identifier, y_true, y_pred)
    assert type(metric).__name__ == type(keras_metric).__name__
    assert metric.name == keras_metric.name
    metric.update_state(y_true, y_pred)
    keras_metric.update_state(y_true, y_pred)
    assert metric.result() == pytest.approx(float(keras_metric.result()), rel=1e-6)


def test_get_passes_a_metric_through():
    metric = metrics.BinaryAccuracy(threshold=0.3)
    assert metrics.get(metric) is metric


@pytest.mark.parametrize("identifier, message", [("accuracy", "needs y_true and y_pred"), ("f1", "f1"),
                                                 ("ACC_", "ACC_"), (3, "3")])
def test_get_rejects_what_it_cannot_resolve(identifier, message):
    with pytest.raises(ValueError, match=message):
        metrics.get(identifier)
