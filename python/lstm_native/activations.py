"""Activation functions with Keras 3 names and defaults, each with its gradient.

An :class:`Activation` pairs ``forward(x) -> y`` with ``backward(x, y, dy) -> dx`` (the gradient w.r.t. ``x``
given the upstream gradient ``dy``; ``x`` and ``y`` are the forward's input and output, so a backward can use
whichever is cheaper). :func:`get` resolves a Keras name (``"relu"``, ``"swish"``, ...) to one. The module-level
functions (``relu(x)``, ``softmax(x, axis=-1)``, ...) are the forwards, as ``keras.activations`` has them.

Everything is computed in the input's dtype (float32 stays float32, float64 float64; other dtypes are promoted
to float32 or wider) and written so that large inputs (|x| ~ 1e4) give no overflow where the result is finite.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

# SELU's constants (Klambauer et al., 2017), as TensorFlow has them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

_erf = np.frompyfunc(math.erf, 1, 1)


def _floating(x) -> np.ndarray:
    """x as an array of float32 or wider."""
    x = np.asarray(x)
    return x.astype(np.promote_types(x.dtype, np.float32), copy=False)


# ---------------------------------------------------------------------------------------------- forwards


def linear(x):
    return _floating(x)


def relu(x):
    return np.maximum(_floating(x), 0)


def relu6(x):
    return np.clip(_floating(x), 0, 6)


def leaky_relu(x, negative_slope=0.2):
    x = _floating(x)
    return np.where(x > 0, x, negative_slope * x)


def sigmoid(x):
    x = _floating(x)
    e = np.exp(-np.abs(x))  # never overflows; the two branches are the same function
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def hard_sigmoid(x):
    """relu6(x + 3) / 6, as Keras 3 (not Keras 2's 0.2 x + 0.5)."""
    return relu6(_floating(x) + 3) / 6


def tanh(x):
    return np.tanh(_floating(x))


def softplus(x):
    x = _floating(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))  # log(1 + e^x) without overflow


def softsign(x):
    x = _floating(x)
    return x / (1 + np.abs(x))


def softmax(x, axis=-1):
    x = _floating(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = _floating(x)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def elu(x, alpha=1.0):
    x = _floating(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def selu(x):
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def silu(x):
    x = _floating(x)
    return x * sigmoid(x)


swish = silu


def gelu(x, approximate=False):
    x = _floating(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return x * _normal_cdf(x)


def exponential(x):
    return np.exp(_floating(x))


def mish(x):
    x = _floating(x)
    return x * np.tanh(softplus(x))


def _normal_cdf(x):
    return (0.5 * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype)


# --------------------------------------------------------------------------------------------- backwards
# The gradients of the activations with their Keras default parameters. Where a function has a kink, the
# gradient there is TensorFlow's (relu'(0) = 0, leaky_relu'(0) = 0.2, ...).


def _linear_grad(x, y, dy):
    return dy


def _relu_grad(x, y, dy):
    return np.where(x > 0, dy, 0)


def _relu6_grad(x, y, dy):
    return np.where((x > 0) & (x < 6), dy, 0)


def _leaky_relu_grad(x, y, dy):
    return np.where(x > 0, dy, 0.2 * dy)


def _sigmoid_grad(x, y, dy):
    return dy * y * (1 - y)


def _hard_sigmoid_grad(x, y, dy):
    return np.where((x > -3) & (x < 3), dy / 6, 0)


def _tanh_grad(x, y, dy):
    return dy * (1 - y * y)


def _softplus_grad(x, y, dy):
    return dy * sigmoid(x)


def _softsign_grad(x, y, dy):
    return dy / np.square(1 + np.abs(x))


def _softmax_grad(x, y, dy):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _log_softmax_grad(x, y, dy):
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


def _elu_grad(x, y, dy):
    return np.where(x > 0, dy, dy * (y + 1))  # d/dx (e^x - 1) = e^x = y + 1


def _selu_grad(x, y, dy):
    return np.where(x > 0, _SELU_SCALE * dy, dy * (y + _SELU_SCALE * _SELU_ALPHA))


def _silu_grad(x, y, dy):
    s = sigmoid(x)
    return dy * s * (1 + x * (1 - s))


def _gelu_grad(x, y, dy):
    density = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return dy * (_normal_cdf(x) + x * density)


def _exponential_grad(x, y, dy):
    return dy * y


def _mish_grad(x, y, dy):
    t = np.tanh(softplus(x))
    return dy * (t + x * (1 - t * t) * sigmoid(x))


# ---------------------------------------------------------------------------------------------- objects


class Activation:
    """An activation function and its gradient.

    Attributes:
        name: the Keras name ("relu", "softmax", ...), or the function's name for a wrapped callable.

    ``forward(x) -> y``; ``backward(x, y, dy) -> dx``. Calling the object is ``forward``.
    """

    def __init__(self, name: str, forward: Callable, backward: Optional[Callable] = None):
        self.name = name
        self._forward = forward
        self._backward = backward

    def forward(self, x) -> np.ndarray:
        return self._forward(x)

    def backward(self, x, y, dy) -> np.ndarray:
        if self._backward is None:
            raise NotImplementedError(f"activation {self.name!r} has no backward: build it as "
                                      "Activation(name, forward, backward) to train through it")
        return self._backward(_floating(x), _floating(y), _floating(dy))

    __call__ = forward

    def __repr__(self) -> str:
        return f"<Activation {self.name}>"


_ACTIVATIONS = {name: Activation(name, forward, backward) for name, forward, backward in [
    ("linear", linear, _linear_grad),
    ("relu", relu, _relu_grad),
    ("relu6", relu6, _relu6_grad),
    ("leaky_relu", leaky_relu, _leaky_relu_grad),
    ("sigmoid", sigmoid, _sigmoid_grad),
    ("hard_sigmoid", hard_sigmoid, _hard_sigmoid_grad),
    ("tanh", tanh, _tanh_grad),
    ("softplus", softplus, _softplus_grad),
    ("softsign", softsign, _softsign_grad),
    ("softmax", softmax, _softmax_grad),
    ("log_softmax", log_softmax, _log_softmax_grad),
    ("elu", elu, _elu_grad),
    ("selu", selu, _selu_grad),
    ("silu", silu, _silu_grad),
    ("gelu", gelu, _gelu_grad),
    ("exponential", exponential, _exponential_grad),
    ("mish", mish, _mish_grad),
]}
_ACTIVATIONS["swish"] = _ACTIVATIONS["silu"]


def get(identifier) -> Activation:
    """Resolves an activation the way ``keras.activations.get`` does.

    None -> linear; a Keras name -> that activation; an :class:`Activation` -> itself; one of this module's
    functions -> its Activation; any other callable -> an Activation without backward (forward only).
    """
    if identifier is None:
        return _ACTIVATIONS["linear"]
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {identifier!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
        return _ACTIVATIONS[identifier]
    if callable(identifier):
        for activation in _ACTIVATIONS.values():
            if activation._forward is identifier:
                return activation
        return Activation(getattr(identifier, "__name__", repr(identifier)), identifier)
    raise ValueError(f"cannot interpret {identifier!r} as an activation")
