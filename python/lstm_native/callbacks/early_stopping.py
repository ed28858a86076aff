"""EarlyStopping."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from .. import _arguments
from ._printing import print_message
from ._state import check_state_keys, monitor_value, state_count, state_value
from .callback import Logs
from .monitor_callback import MonitorCallback, optional_number


class EarlyStopping(MonitorCallback):
    """Stops training (``model.stop_training = True``) once ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs, counting from epoch ``start_from_epoch``.

    ``baseline``: training also stops if ``monitor`` does not beat this value within ``patience`` epochs.
    ``restore_best_weights``: at the end of training, set the weights of the best epoch (of the epochs
    monitored) back into the model. ``stopped_epoch``, ``best``, ``best_epoch`` tell what happened.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = _arguments.integer("patience", patience, at_least=0)
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)
        self.baseline = optional_number("baseline", baseline)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = _arguments.boolean("restore_best_weights", restore_best_weights)
        self.best_weights = None
        self.start_from_epoch = _arguments.integer("start_from_epoch", start_from_epoch, at_least=0)
        self.best_epoch = 0

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # The wait restarts only when the value beats both the previous best and the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def get_state(self) -> dict:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": monitor_value(self.best),
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def set_state(self, state: dict) -> None:
        check_state_keys(state, ("wait", "stopped_epoch", "best", "best_epoch", "best_weights"))
        best_weights = state["best_weights"]
        if best_weights is not None:
            current = self.model.get_weights()
            if not (isinstance(best_weights, list) and len(best_weights) == len(current) and all(
                    isinstance(saved, np.ndarray) and saved.shape == weight.shape and saved.dtype == weight.dtype
                    for saved, weight in zip(best_weights, current))):
                raise ValueError("best_weights: not the weights of this model")
        self.wait, self.stopped_epoch, self.best_epoch = (
            state_count(name, state[name]) for name in ("wait", "stopped_epoch", "best_epoch"))
        self.best = state_value("best", state["best"])
        self.best_weights = best_weights

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_message(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_message(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs: Optional[Logs]) -> Any:
        """The monitored value in ``logs``; None (with a warning) when the logs lack it."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}", stacklevel=2)
        return value
