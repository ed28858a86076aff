"""Adam: Keras 3's ``Adam`` (bias correction folded into the step size, epsilon outside the square root)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import LearningRate, Optimizer, keras_cast


class Adam(Optimizer):
    """Adam (Kingma & Ba), optionally AMSGrad.

    With ``t = iterations + 1``: ``m += (g - m) * (1 - beta_1)``, ``v += (g**2 - v) * (1 - beta_2)``
    (AMSGrad: ``v_hat = max(v_hat, v)`` is used instead of ``v``),
    ``w -= m * lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) / (sqrt(v) + epsilon)``.

    Args:
        learning_rate: float or schedule (default 0.001).
        beta_1: decay rate of the first moment estimate (0.9).
        beta_2: decay rate of the second moment estimate (0.999).
        epsilon: added to ``sqrt(v)`` (1e-7).
        amsgrad: use AMSGrad (False).

    ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` and ``name``: see :class:`Optimizer`.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None) -> None:
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def _slot_initial_values(self):
        names = ["momentum", "velocity"] + (["velocity_hat"] if self.amsgrad else [])
        return dict.fromkeys(names, 0.0)

    def _update_step(self, grad, value, slots, lr):
        local_step = value.dtype.type(self._iterations + 1)
        beta_1_power = keras_cast(self.beta_1, value.dtype) ** local_step
        beta_2_power = keras_cast(self.beta_2, value.dtype) ** local_step
        alpha = lr * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v = slots["momentum"], slots["velocity"]
        m += (grad - m) * (1 - self.beta_1)
        v += (np.square(grad) - v) * (1 - self.beta_2)
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        value -= (m * alpha) / (np.sqrt(v) + self.epsilon)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config
