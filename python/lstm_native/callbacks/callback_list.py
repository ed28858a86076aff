"""CallbackList: the callbacks of a fit, evaluate or predict, called in order."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from .backup_and_restore import BackupAndRestore
from .callback import Callback, Logs
from .history import History
from .progbar_logger import ProgbarLogger


def _pythonify_logs(logs: Optional[dict]) -> dict:
    """Keras' ``pythonify_logs``: keys sorted, nested dicts flattened, values made floats where possible
    (arrays, such as a predict batch's outputs, stay arrays)."""
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(_pythonify_logs(value))
            continue
        if isinstance(value, np.ndarray) and value.ndim > 0:
            result[key] = value
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            pass
        result[key] = value
    return result


def _checked_callbacks(callbacks) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes, dict, Callback)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"callbacks: expected a list of callbacks, got {type(callbacks).__name__}")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks: expected instances of lstm_native.callbacks.Callback, got "
                            f"{type(callback).__name__}")
    return callbacks


class CallbackList(Callback):
    """Calls every hook of a list of callbacks, in order, with logs made Keras-like (sorted, floats).

    Args:
        callbacks: the callbacks.
        add_history: append a :class:`History` unless the list has one; it becomes ``model.history``.
        add_progbar: append a :class:`ProgbarLogger` unless the list has one.
        model: set on every callback.
        **params: given to every callback's ``set_params`` (``verbose``, ``epochs``, ``steps``).
    """

    def __init__(self, callbacks: Optional[Iterable[Callback]] = None, add_history: bool = False,
                 add_progbar: bool = False, model: Any = None, **params: Any) -> None:
        super().__init__()
        self.callbacks = _checked_callbacks(callbacks)
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self._backups = [cb for cb in self.callbacks if isinstance(cb, BackupAndRestore)]
        for backup in self._backups:
            backup._backed_up = [cb for cb in self.callbacks if cb is not backup]
        # At an epoch's (a batch's) end the backups come last: they hold the others' states after it.
        self._backups_last = [cb for cb in self.callbacks if cb not in self._backups] + self._backups
        self.set_model(model)
        self.set_params(params)

    def set_params(self, params: dict) -> None:
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model: Any) -> None:
        if model is None:
            return
        super().set_model(model)
        if self._history:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def _call(self, hook: str, *args, logs=None) -> None:
        logs = _pythonify_logs(logs)
        for callback in self._backups_last if hook in ("on_epoch_end", "on_train_batch_end") else self.callbacks:
            getattr(callback, hook)(*args, logs)

    def count_samples(self, count: int) -> None:
        """Tells the progress bars how many samples the batch just run held (for samples/s)."""
        for callback in self.callbacks:
            if isinstance(callback, ProgbarLogger):
                callback.samples_seen += count

    def on_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._call("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self._call("on_train_begin", logs=logs)
        for backup in self._backups:  # after every on_train_begin, which resets the callbacks' states
            backup._resume_callbacks()

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        self._call("on_train_end", logs=logs)

    def on_test_begin(self, logs: Optional[Logs] = None) -> None:
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs: Optional[Logs] = None) -> None:
        self._call("on_test_end", logs=logs)

    def on_predict_begin(self, logs: Optional[Logs] = None) -> None:
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs: Optional[Logs] = None) -> None:
        self._call("on_predict_end", logs=logs)
