"""lstm_native.losses against keras.losses (TensorFlow backend): values, gradients (TensorFlow's autodiff of
the Keras loss), float64 central differences, the fused from-logits path and extreme logits.

Measured on these inputs (seeds 0-3; float32 against Keras): values within 2.1e-7 of Keras relative; gradients
within 2.4e-7 of TensorFlow's relative to max|grad| (fused path: 1.5e-7; extreme logits: values within 1e-7);
float64 gradients within 1.8e-8 of central differences relative to max|grad| (4.7e-8 with clipped
probabilities, step 1e-8); the fused path within 7e-16 (float64) of the probability path chained through the
activation's backward. The tests allow 1e-6 against Keras and 1e-7 against central differences (1e-6 for the
clipped ones).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.trainers.compile_utils import get_loss

from lstm_native import activations, losses, metrics

B, T, C = 4, 3, 5


def one_hot(rng, shape):
    return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


def probabilities(rng, shape):
    return activations.softmax(rng.normal(size=shape))


def labels(rng, shape):
    return rng.integers(0, shape[-1], shape[:-1])


def binary(rng, shape):
    return rng.integers(0, 2, shape).astype(float)


def class_axis_1(make):
    """make's (y_true, y_pred) with the class axis moved from last to 1."""
    return lambda rng, shape: tuple(np.moveaxis(a, -1, 1) for a in make(rng, shape))


# id -> (our loss, Keras' loss, (rng, shape) -> (y_true, y_pred))
CASES = {
    "cce": (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy,
            lambda rng, shape: (one_hot(rng, shape), probabilities(rng, shape))),
    "cce-smoothing": (lambda: losses.CategoricalCrossentropy(label_smoothing=0.1),
                      lambda: keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                      lambda rng, shape: (one_hot(rng, shape), probabilities(rng, shape))),
    "cce-logits-smoothing": (lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
                             lambda: keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
                             lambda rng, shape: (one_hot(rng, shape), 3 * rng.normal(size=shape))),
    "cce-axis1-smoothing": (lambda: losses.CategoricalCrossentropy(axis=1, label_smoothing=0.1),
                            lambda: keras.losses.CategoricalCrossentropy(axis=1, label_smoothing=0.1),
                            class_axis_1(lambda rng, shape: (one_hot(rng, shape), probabilities(rng, shape)))),
    "sparse": (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy,
               lambda rng, shape: (labels(rng, shape), probabilities(rng, shape))),
    "sparse-logits": (lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
                      lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      lambda rng, shape: (labels(rng, shape), 3 * rng.normal(size=shape))),
    "sparse-labels-with-unit-axis": (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy,
                                     lambda rng, shape: (labels(rng, shape)[..., None], probabilities(rng, shape))),
    "sparse-ignore-class": (lambda: losses.SparseCategoricalCrossentropy(ignore_class=2),
                            lambda: keras.losses.SparseCategoricalCrossentropy(ignore_class=2),
                            lambda rng, shape: (labels(rng, shape), probabilities(rng, shape))),
    "bce": (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy,
            lambda rng, shape: (binary(rng, shape), rng.uniform(0.05, 0.95, shape))),
    "bce-smoothing": (lambda: losses.BinaryCrossentropy(label_smoothing=0.2),
                      lambda: keras.losses.BinaryCrossentropy(label_smoothing=0.2),
                      lambda rng, shape: (binary(rng, shape), rng.uniform(0.05, 0.95, shape))),
    "bce-logits": (lambda: losses.BinaryCrossentropy(from_logits=True),
                   lambda: keras.losses.BinaryCrossentropy(from_logits=True),
                   lambda rng, shape: (binary(rng, shape), 3 * rng.normal(size=shape))),
    "bce-axis1": (lambda: losses.BinaryCrossentropy(axis=1), lambda: keras.losses.BinaryCrossentropy(axis=1),
                  lambda rng, shape: (binary(rng, shape), rng.uniform(0.05, 0.95, shape))),
    "bce-one-output": (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy,  # y_true lacks y_pred's unit axis
                       lambda rng, shape: (binary(rng, shape[:-1]), rng.uniform(0.05, 0.95, shape[:-1] + (1,)))),
    "mse": (losses.MeanSquaredError, keras.losses.MeanSquaredError,
            lambda rng, shape: (rng.normal(size=shape), rng.normal(size=shape))),
    "mae": (losses.MeanAbsoluteError, keras.losses.MeanAbsoluteError,
            lambda rng, shape: (rng.normal(size=shape), rng.normal(size=shape))),
    "huber": (lambda: losses.Huber(delta=0.5), lambda: keras.losses.Huber(delta=0.5),
              lambda rng, shape: (rng.normal(size=shape), rng.normal(size=shape))),
}
# (shape of y_pred, how to weigh): "sample" is one weight per sample (B,), "value" one per per-sample loss.
SETTINGS = [((B, C), None), ((B, C), "sample"), ((B, T, C), None), ((B, T, C), "sample"), ((B, T, C), "value")]
SETTING_IDS = ["rank2", "rank2-weighted", "rank3", "rank3-weighted-per-sample", "rank3-weighted-per-step"]


def data(case, rng, shape, weighting, dtype):
    """(our loss, Keras' loss, y_true, y_pred, our sample_weight, the same weights broadcast for Keras)."""
    ours, theirs, make = CASES[case]
    y_true, y_pred = make(rng, shape)
    y_pred = y_pred.astype(dtype)
    keras_loss = theirs()
    values_shape = np.shape(keras_loss.call(y_true, y_pred))  # Keras' per-sample losses
    weights = {None: None, "sample": rng.uniform(0, 2, values_shape[:1]),
               "value": rng.uniform(0, 2, values_shape)}[weighting]
    keras_weights = None if weights is None else np.broadcast_to(
        weights.reshape(weights.shape + (1,) * (len(values_shape) - weights.ndim)), values_shape).astype(dtype)
    return ours(), keras_loss, y_true, y_pred, weights, keras_weights


def keras_value_and_grad(loss, y_true, y_pred, sample_weight=None, activation=None):
    """Keras' loss and TensorFlow's gradient w.r.t. y_pred (w.r.t. the logits when activation is given)."""
    x = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(y_true, x if activation is None else activation(x), sample_weight=sample_weight)
    return float(value), tape.gradient(value, x).numpy()


def central_differences(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def assert_close_to(actual, expected, rtol):
    """actual within rtol of expected, relative to the largest entry of expected."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * np.max(np.abs(expected)))


@pytest.mark.parametrize("shape, weighting", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("case", CASES)
def test_value_and_gradient_match_keras(case, shape, weighting, rng):
    loss, keras_loss, y_true, y_pred, weights, keras_weights = data(case, rng, shape, weighting, np.float32)
    value, grad = loss.value_and_grad(y_true, y_pred, weights)
    expected_value, expected_grad = keras_value_and_grad(keras_loss, y_true, y_pred, keras_weights)
    assert loss(y_true, y_pred, weights) == value
    assert value == pytest.approx(expected_value, rel=1e-6)
    assert grad.dtype == np.float32 and grad.shape == y_pred.shape
    assert_close_to(grad, expected_grad, 1e-6)


@pytest.mark.parametrize("shape, weighting", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("case", CASES)
def test_gradient_matches_central_differences(case, shape, weighting, rng):
    loss, _, y_true, y_pred, weights, _ = data(case, rng, shape, weighting, np.float64)
    _, grad = loss.value_and_grad(y_true, y_pred, weights)
    assert grad.dtype == np.float64
    assert_close_to(grad, central_differences(lambda p: loss(y_true, p, weights), y_pred), 1e-7)


def test_categorical_from_logits_gradient_is_exact_for_any_targets(rng):
    """Targets that do not sum to 1 (TensorFlow's gradient, softmax - targets, then is not the value's)."""
    loss = losses.CategoricalCrossentropy(from_logits=True)
    y_true, logits = rng.uniform(size=(B, C)), 3 * rng.normal(size=(B, C))
    _, grad = loss.value_and_grad(y_true, logits)
    assert_close_to(grad, central_differences(lambda z: loss(y_true, z), logits), 1e-7)


def test_function_forms_match_keras(rng):
    y, p, logits = one_hot(rng, (B, T, C)), probabilities(rng, (B, T, C)), 3 * rng.normal(size=(B, T, C))
    pairs = [(losses.categorical_crossentropy(y, logits, from_logits=True, label_smoothing=0.1),
              keras.losses.categorical_crossentropy(y, logits, from_logits=True, label_smoothing=0.1)),
             (losses.sparse_categorical_crossentropy(y.argmax(-1), p, ignore_class=1),
              keras.losses.sparse_categorical_crossentropy(y.argmax(-1), p, ignore_class=1)),
             (losses.binary_crossentropy(y, p, label_smoothing=0.1),
              keras.losses.binary_crossentropy(y, p, label_smoothing=0.1)),
             (losses.mean_squared_error(y, p), keras.losses.mean_squared_error(y, p)),
             (losses.mean_absolute_error(y, p), keras.losses.mean_absolute_error(y, p)),
             (losses.huber(y, logits, delta=2.0), keras.losses.huber(y, logits, delta=2.0))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs), rtol=1e-12)


# id -> (our loss class, Keras' loss class, their arguments, the activation, (rng, shape) -> y_true)
FUSED = {
    "cce": (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, {"label_smoothing": 0.1},
            "softmax", one_hot),
    "sparse": (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy, {}, "softmax",
               labels),
    "bce": (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, {"label_smoothing": 0.1}, "sigmoid", binary),
}


@pytest.mark.parametrize("shape", [(B, C), (B, T, C)], ids=["rank2", "rank3"])
@pytest.mark.parametrize("case", FUSED)
def test_fused_path_matches_keras_and_the_probability_path(case, shape, rng):
    ours, theirs, kwargs, activation_name, make_y = FUSED[case]
    loss, activation = ours(**kwargs), activations.get(activation_name)
    assert loss.logits_activation == activation_name
    y_true, logits, weights = make_y(rng, shape), 3 * rng.normal(size=shape), rng.uniform(0, 2, shape[0])
    value, grad = loss.value_and_grad_from_logits(y_true, logits, weights)

    # Keras takes the logits out of the activation's output (its _keras_logits)
    keras_weights = np.broadcast_to(weights.reshape((-1,) + (1,) * (len(shape) - 2)), shape[:-1])
    expected_value, expected_grad = keras_value_and_grad(theirs(**kwargs), y_true, logits.astype(np.float32),
                                                         keras_weights, getattr(keras.activations, activation_name))
    assert value == pytest.approx(expected_value, rel=1e-6)
    assert_close_to(grad, expected_grad, 1e-6)

    # the same loss through the probabilities, the activation's backward, and central differences
    probs = activation.forward(logits)
    prob_value, prob_grad = loss.value_and_grad(y_true, probs, weights)
    assert value == pytest.approx(prob_value, rel=1e-12)
    assert_close_to(grad, activation.backward(logits, probs, prob_grad), 1e-12)
    assert_close_to(grad, central_differences(lambda z: loss(y_true, activation.forward(z), weights), logits), 1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", FUSED)
def test_fused_path_is_finite_at_extreme_logits(case, dtype, rng):
    ours, theirs, kwargs, _, make_y = FUSED[case]
    y_true = make_y(rng, (B, C))
    logits = rng.choice([-1e4, 1e4], size=(B, C)) * rng.uniform(0.5, 1, size=(B, C))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value, grad = ours(**kwargs).value_and_grad_from_logits(y_true, logits.astype(dtype))
    assert grad.dtype == dtype and np.all(np.isfinite(grad))
    expected = theirs(from_logits=True, **kwargs)(y_true, logits.astype(np.float32))
    assert value == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("case", ["cce", "sparse", "bce"])
def test_clipped_probabilities_get_the_gradient_of_the_clip(case, rng):
    """Probabilities below 1e-7 (or above 1 - 1e-7) are clipped: the value is Keras', the gradient zero through
    the clip (the categorical loss still sees them in its normalization)."""
    loss, keras_loss, y_true, y_pred, _, _ = data(case, rng, (B, C), None, np.float64)
    clipped = rng.uniform(size=y_pred.shape) < 0.3
    y_pred = np.where(clipped, 1e-12, y_pred)
    if case == "bce":
        y_pred = np.where(clipped & (y_true == 1), 1 - 1e-12, y_pred)
    value, grad = loss.value_and_grad(y_true, y_pred)
    assert value == pytest.approx(float(keras_loss(y_true, y_pred.astype(np.float32))), rel=1e-6)
    assert_close_to(grad, central_differences(lambda p: loss(y_true, p), y_pred, h=1e-8), 1e-6)
    if case != "cce":
        assert np.all(grad[clipped] == 0)


def test_ignore_class_counts_only_the_other_labels(rng):
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    y_true, y_pred = labels(rng, (B, T, C)), probabilities(rng, (B, T, C))
    ignored = rng.uniform(size=(B, T)) < 0.4
    value, grad = loss.value_and_grad(np.where(ignored, -1, y_true), y_pred)
    assert np.all(grad[ignored] == 0)
    assert value == pytest.approx(losses.SparseCategoricalCrossentropy()(y_true[~ignored], y_pred[~ignored]))
    value, grad = loss.value_and_grad(np.full((B, T), -1), y_pred)
    assert value == 0 and np.all(grad == 0)


def test_per_sample_weights_weigh_every_step(rng):
    loss = losses.MeanSquaredError()
    y_true, y_pred, weights = rng.normal(size=(B, T, C)), rng.normal(size=(B, T, C)), rng.uniform(size=B)
    expected = loss.value_and_grad(y_true, y_pred, np.repeat(weights[:, None], T, axis=1))
    for sample_weight in (weights, weights[:, None], weights[:, None, None]):
        value, grad = loss.value_and_grad(y_true, y_pred, sample_weight)
        assert value == pytest.approx(expected[0], rel=1e-15)
        np.testing.assert_allclose(grad, expected[1], rtol=1e-15)


@pytest.mark.parametrize("identifier, cls", [
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("CategoricalCrossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy), ("bce", losses.BinaryCrossentropy),
    ("mse", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
    ("MeanSquaredError", losses.MeanSquaredError), ("mae", losses.MeanAbsoluteError),
    ("mean_absolute_error", losses.MeanAbsoluteError), ("huber", losses.Huber), ("Huber", losses.Huber)])
def test_get_resolves_and_names_like_keras_compile(identifier, cls, rng):
    y_true, y_pred = one_hot(rng, (B, C)), probabilities(rng, (B, C))
    if cls is losses.SparseCategoricalCrossentropy:
        y_true = y_true.argmax(-1)
    loss, keras_loss = losses.get(identifier), get_loss(identifier, y_true, y_pred)
    assert type(loss) is cls and loss.name == keras_loss.name
    assert loss(y_true, y_pred) == pytest.approx(float(keras_loss(y_true, y_pred)), rel=1e-6)
    assert losses.get(loss) is loss


def test_default_names_and_logits_activations():
    for ours, theirs, activation in [
            (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, "softmax"),
            (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy, "softmax"),
            (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, "sigmoid"),
            (losses.MeanSquaredError, keras.losses.MeanSquaredError, None),
            (losses.MeanAbsoluteError, keras.losses.MeanAbsoluteError, None), (losses.Huber, keras.losses.Huber, None)]:
        assert ours().name == theirs().name and ours().logits_activation == activation


@pytest.mark.parametrize("call, message", [
    (lambda: losses.get("cross_entropy"), "cross_entropy"),
    (lambda: losses.get(np.mean), "mean"),
    (lambda: losses.CategoricalCrossentropy()(np.ones((2, 3)), np.ones((2, 4))), "same shape"),
    (lambda: losses.SparseCategoricalCrossentropy()([0, 3], np.ones((2, 3))), r"outside \[0, 3\): \[3\]"),
    (lambda: losses.SparseCategoricalCrossentropy()([[0, 1]], np.ones((2, 3))), "does not match"),
    (lambda: losses.MeanSquaredError()(np.ones((2, 3)), np.ones((2, 3)), sample_weight=[1, 2, 3]), "sample_weight"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


SPARSE_LABEL_USERS = {
    "sparse_categorical_crossentropy": lambda y, p: losses.SparseCategoricalCrossentropy()(y, p),
    "sparse_categorical_accuracy": metrics.sparse_categorical_accuracy,
}


@pytest.mark.parametrize("user", list(SPARSE_LABEL_USERS))
@pytest.mark.parametrize("labels, error, message", [
    (np.array([0.0, np.nan, 1.0]), ValueError, r"y_true \(class labels\): .*not finite: \[nan\]"),
    (np.array([0.0, 1.5, 1.0]), ValueError, r"y_true \(class labels\): .*fractions: \[1.5\]"),
    (np.array([0, 1, 2**64 - 1], np.uint64), ValueError, "18446744073709551615"),
    (np.array(["a", "b", "c"]), TypeError, r"y_true \(class labels\): expected integers, got dtype <U1"),
])
def test_bad_integer_labels_are_named_with_their_real_values(user, labels, error, message):
    with pytest.raises(error, match=message):
        SPARSE_LABEL_USERS[user](labels, np.full((3, 2), 0.5, np.float32))


def test_labels_outside_the_classes_are_listed_as_given():
    with pytest.raises(ValueError, match=r"values outside \[0, 2\): \[-3, 7\]"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 7, -3]), np.full((3, 2), 0.5, np.float32))
