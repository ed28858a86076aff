"""Stochastic gradient descent, with optional (Nesterov) momentum: Keras 3's ``SGD``."""

from __future__ import annotations

from numbers import Real
from typing import Optional

from .base import LearningRate, Optimizer, keras_cast


class SGD(Optimizer):
    """Gradient descent (with momentum).

    ``momentum == 0``: ``w -= lr * g``. Otherwise ``velocity = momentum * velocity - lr * g`` and ``w += velocity``,
    or with ``nesterov=True`` ``w += momentum * velocity - lr * g``.

    Args:
        learning_rate: float or schedule (default 0.01).
        momentum: float in [0, 1] (default 0.0).
        nesterov: use Nesterov momentum (default False).

    ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` and ``name``: see :class:`Optimizer`.
    """

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: Optional[float] = None, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
                 name: Optional[str] = None) -> None:
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        if not isinstance(momentum, Real) or isinstance(momentum, bool) or momentum < 0 or momentum > 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum: float = momentum
        self.nesterov: bool = nesterov

    def _slot_initial_values(self):
        return {"momentum": 0.0} if self.momentum != 0 else {}

    def _update_step(self, grad, value, slots, lr):
        if self.momentum == 0:
            value -= grad * lr
            return
        m = slots["momentum"]
        momentum = keras_cast(self.momentum, value.dtype)
        m[...] = m * momentum - grad * lr
        if self.nesterov:
            value += m * momentum - grad * lr
        else:
            value += m

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
