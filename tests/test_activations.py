"""lstm_native.activations against keras.activations (TensorFlow backend), and its gradients against float64
central differences.

Measured (float32, |x| up to 1e4): forwards within 2.4e-7 of Keras relative to max(|y|, 1); the tests allow
1e-6 (rtol and atol). Backwards within 2.3e-9 of the central differences relative to max(|dx|, 1) (float64, step 1e-6).
"""

import keras
import numpy as np
import pytest

from lstm_native import activations

NAMES = ["linear", "relu", "relu6", "leaky_relu", "sigmoid", "hard_sigmoid", "tanh", "softplus", "softsign",
         "softmax", "log_softmax", "elu", "selu", "silu", "swish", "gelu", "exponential", "mish"]
KINKS = {"relu": [0], "relu6": [0, 6], "leaky_relu": [0], "hard_sigmoid": [-3, 3], "selu": [0]}


def keras_forward(fn, x):
    return keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(x)))


def inputs(rng, name, dtype):
    """Random (6, 9) inputs with extremes (up to ±1e4, or ±80 where the result would overflow)."""
    x = np.concatenate([rng.normal(size=45) * 4, [-1e4, -100, -20, -1e-3, 0, 1e-3, 20, 100, 1e4]])
    if name == "exponential":
        x = np.clip(x, -80, 80)
    return rng.permutation(x).reshape(6, 9).astype(dtype)


def numeric_vjp(f, x, dy, h=1e-6):
    """d/dx sum(dy * f(x)) by float64 central differences."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = np.sum(dy * (f(x + step) - f(x - step))) / (2 * h)
    return grad


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_keras(name, rng):
    """Both the Activation that get() gives and the module-level function of that name."""
    x = inputs(rng, name, np.float32)
    for ours, theirs in [(activations.get(name).forward, keras.activations.get(name)),
                         (getattr(activations, name), getattr(keras.activations, name))]:
        np.testing.assert_allclose(ours(x), keras_forward(theirs, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", [("leaky_relu", {"negative_slope": 0.05}), ("elu", {"alpha": 0.5}),
                                          ("gelu", {"approximate": True}), ("softmax", {"axis": 0}),
                                          ("log_softmax", {"axis": 0})])
def test_keras_parameters(name, kwargs, rng):
    x = inputs(rng, name, np.float32)
    expected = keras_forward(lambda t: getattr(keras.activations, name)(t, **kwargs), x)
    np.testing.assert_allclose(getattr(activations, name)(x, **kwargs), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_central_differences(name, rng):
    activation = activations.get(name)
    x = rng.normal(size=(4, 5)) * 3
    for kink in KINKS.get(name, []):  # keep the differences off the kinks
        x = np.where(np.abs(x - kink) < 1e-3, kink + 0.5, x)
    dy = rng.normal(size=x.shape)
    dx = activation.backward(x, activation.forward(x), dy)
    np.testing.assert_allclose(dx, numeric_vjp(activation.forward, x, dy), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_extremes_are_finite_and_keep_the_dtype(name, dtype, rng):
    activation = activations.get(name)
    x = inputs(rng, name, dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = activation.forward(x)
        dx = activation.backward(x, y, np.ones_like(x))
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


def test_get_resolves_like_keras():
    assert activations.get(None).name == "linear"
    assert activations.get("swish") is activations.get("silu")
    relu = activations.get("relu")
    assert activations.get(relu) is relu and activations.get(activations.relu) is relu
    assert relu.name == keras.activations.get("relu").__name__
    assert np.array_equal(relu([-1.0, 2.0]), [0.0, 2.0])


def test_get_wraps_a_plain_callable_without_backward():
    def cube(x):
        return np.asarray(x) ** 3

    activation = activations.get(cube)
    assert activation.name == "cube" and activation.forward(2.0) == 8.0
    with pytest.raises(NotImplementedError, match="cube"):
        activation.backward(2.0, 8.0, 1.0)


@pytest.mark.parametrize("identifier", ["relu_", "ReLU", 3])
def test_get_rejects_unknown_identifiers(identifier):
    with pytest.raises(ValueError, match=str(identifier)):
        activations.get(identifier)
