"""LearningRateScheduler."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .. import _arguments
from ._printing import print_message
from .callback import Callback, Logs


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function), which must return a float. Adds ``learning_rate`` to
    each epoch's logs."""

    def __init__(self, schedule: Callable, verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a function of (epoch, lr) or (epoch), got {schedule!r}")
        self.schedule = schedule
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # a schedule of the epoch alone
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print_message(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
