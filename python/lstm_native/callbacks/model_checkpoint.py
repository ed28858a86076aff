"""ModelCheckpoint."""

from __future__ import annotations

import os
import warnings
from typing import Optional, Union

from .. import _arguments, saving
from ._printing import print_message
from ._save_frequency import SaveFrequency
from ._state import check_state_keys, monitor_value, state_count, state_value
from .callback import Logs
from .monitor_callback import MonitorCallback


class ModelCheckpoint(MonitorCallback):
    """Saves the model (``model.save``, optimizer included) or, with ``save_weights_only``, its weights
    (``model.save_weights``) at every epoch's end, or every ``save_freq`` training batches.

    ``filepath`` may hold ``str.format`` fields: ``{epoch}`` (1-based), ``{batch}`` (1-based, in batch-level
    saves) and any key of the logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.safetensors"``; the files are
    safetensors files (lstm_native's format), so a name with another format's extension (``.keras``, ``.h5``,
    where Keras 3 asks for those) is refused, as ``model.save`` refuses it. Missing directories are created. ``save_best_only``: save only when ``monitor`` improves on the best value so far
    (which starts at ``initial_value_threshold``), in the direction ``mode`` gives ("auto": from the name, as
    :class:`EarlyStopping`); without a value for ``monitor`` in the logs, warn and save anyway (Keras).
    """

    def __init__(self, filepath: Union[str, os.PathLike], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: Union[str, int] = "epoch", initial_value_threshold: Optional[float] = None) -> None:
        super().__init__(monitor, mode, baseline=initial_value_threshold, baseline_name="initial_value_threshold")
        saving.check_file_name(filepath)
        self.filepath = os.fsdecode(os.fspath(filepath))
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)
        self.save_best_only = _arguments.boolean("save_best_only", save_best_only)
        self.save_weights_only = _arguments.boolean("save_weights_only", save_weights_only)
        self.save_freq = save_freq
        self._frequency = SaveFrequency(save_freq)
        self._current_epoch = 0

    def get_state(self) -> dict:
        return {"best": monitor_value(self.best), "batches_since_save": self._frequency.batches_since_save}

    def set_state(self, state: dict) -> None:
        check_state_keys(state, ("best", "batches_since_save"))
        best = state_value("best", state["best"])
        self._frequency.batches_since_save = state_count("batches_since_save", state["batches_since_save"])
        self.best = best

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        if self._frequency.due_after_batch():
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self._frequency.per_epoch:
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch, batch, logs) -> str:
        fields = {"epoch": epoch + 1, **({} if batch is None else {"batch": batch + 1}), **logs}
        try:
            return self.filepath.format(**fields)
        except KeyError as error:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}') from None

    def _should_save(self, epoch, logs, filepath) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print_message(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        best = "None" if self.best is None else f"{self.best:.5f}"
        if not self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_message(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
            return False
        if self.verbose > 0:
            print_message(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, saving model to "
                   f"{filepath}")
        self.best = current
        return True

    def _save(self, epoch, batch, logs) -> None:
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)
