"""Adagrad: Keras 3's ``Adagrad``."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import LearningRate, Optimizer


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.): ``accumulator += g**2``, ``w -= lr * g / sqrt(accumulator + epsilon)``.

    Args:
        learning_rate: float or schedule (default 0.001).
        initial_accumulator_value: the accumulators' starting value (0.1).
        epsilon: (1e-7).

    ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` and ``name``: see :class:`Optimizer`.
    """

    def __init__(self, learning_rate: LearningRate = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, weight_decay: Optional[float] = None, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
                 name: Optional[str] = None) -> None:
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _slot_initial_values(self):
        return {"accumulator": self.initial_accumulator_value}

    def _update_step(self, grad, value, slots, lr):
        accumulator = slots["accumulator"]
        accumulator += np.square(grad)
        value -= (lr * grad) / np.sqrt(accumulator + self.epsilon)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon})
        return config
