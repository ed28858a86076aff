"""RMSprop: Keras 3's ``RMSprop`` (epsilon inside the square root, plain momentum, optional centering)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import LearningRate, Optimizer


class RMSprop(Optimizer):
    """RMSprop (Hinton).

    ``velocity = rho * velocity + (1 - rho) * g**2``; centered: ``average = rho * average + (1 - rho) * g`` and
    ``denominator = velocity - average**2 + epsilon``, else ``velocity + epsilon``;
    ``increment = lr * g / sqrt(denominator)``; with momentum ``m = momentum * m + increment``, ``w -= m``,
    else ``w -= increment``.

    Args:
        learning_rate: float or schedule (default 0.001).
        rho: discounting factor of the squared gradients (0.9).
        momentum: (0.0).
        epsilon: (1e-7).
        centered: normalize by the estimated variance of the gradient (False).

    ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` and ``name``: see :class:`Optimizer`.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None) -> None:
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def _slot_initial_values(self):
        names = ["velocity"] + (["momentum"] if self.momentum > 0 else []) + (
            ["average_gradient"] if self.centered else [])
        return dict.fromkeys(names, 0.0)

    def _update_step(self, grad, value, slots, lr):
        rho = self.rho
        velocity = slots["velocity"]
        velocity[...] = rho * velocity + (1 - rho) * np.square(grad)
        if self.centered:
            average = slots["average_gradient"]
            average[...] = rho * average + (1 - rho) * grad
            denominator = velocity - np.square(average) + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = (lr * grad) / np.sqrt(denominator)
        if self.momentum > 0:
            m = slots["momentum"]
            m[...] = self.momentum * m + increment
            value -= m
        else:
            value -= increment

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config
