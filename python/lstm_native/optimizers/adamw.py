"""AdamW: Adam with decoupled weight decay (Keras 3's ``AdamW``, weight_decay 0.004 by default)."""

from __future__ import annotations

from typing import Optional

from .adam import Adam
from .base import LearningRate


class AdamW(Adam):
    """Adam whose variables first decay by ``value -= value * weight_decay * lr`` at every update
    (Loshchilov & Hutter). ``weight_decay`` must be a float (default 0.004); the other arguments are Adam's."""

    def __init__(self, learning_rate: LearningRate = 0.001, weight_decay: Optional[float] = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None) -> None:
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
