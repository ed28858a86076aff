"""ReduceLROnPlateau."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from .. import _arguments
from ._printing import print_message
from ._state import check_state_keys, monitor_value, state_count, state_value
from .callback import Logs
from .monitor_callback import MonitorCallback


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the optimizer's learning rate by ``factor`` (not below ``min_lr``) once ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs; then waits ``cooldown`` epochs before counting
    again. Adds ``learning_rate`` to each epoch's logs."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        if _arguments.number("factor", factor) >= 1.0:  # Keras' message
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = _arguments.number("factor", factor, above=0)
        self.min_lr = _arguments.number("min_lr", min_lr, at_least=0)
        self.patience = _arguments.integer("patience", patience, at_least=0)
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)
        self.cooldown = _arguments.integer("cooldown", cooldown, at_least=0)
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        """Whether the cooldown after the last reduction still runs."""
        return self.cooldown_counter > 0

    def get_state(self) -> dict:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": monitor_value(self.best)}

    def set_state(self, state: dict) -> None:
        check_state_keys(state, ("wait", "cooldown_counter", "best"))
        self.wait = state_count("wait", state["wait"])
        self.cooldown_counter = state_count("cooldown_counter", state["cooldown_counter"])
        self.best = state_value("best", state["best"])

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print_message(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
