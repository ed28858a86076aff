"""The base class of the callbacks, with Keras 3's hooks."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ._state import check_state_keys

# A hook's logs: metric name -> value (floats; a predict batch's {"outputs": array} holds its outputs).
Logs = Dict[str, Any]


class Callback:
    """Base class of the callbacks: every hook does nothing.

    Attributes:
        model: the model being trained, evaluated or used for prediction (set by :meth:`set_model`).
        params: dict of the run's parameters (``verbose``, ``epochs``, ``steps``), set by :meth:`set_params`.
    """

    def __init__(self) -> None:
        self.params: Optional[dict] = None
        # Any: the model a fit, evaluate or predict runs (Sequential, or a user's model with its methods);
        # None until set_model, which every run calls before any hook.
        self.model: Any = None

    def set_params(self, params: dict) -> None:
        """Receives ``fit``'s parameters (``verbose``, ``epochs``, ``steps``)."""
        self.params = params

    def set_model(self, model: Any) -> None:
        """Receives the model it is attached to (``self.model``)."""
        self.model = model

    def get_state(self) -> dict:
        """The callback's own training state (counters, best values...), which :class:`BackupAndRestore` backs
        up with the model so that a resumed ``fit`` continues it exactly: a dict of JSON values (None, bool,
        int, float, str, lists and dicts of them) and numpy arrays. {} (this default) means no state; a user
        callback with state of its own overrides this and :meth:`set_state`."""
        return {}

    def set_state(self, state: dict) -> None:
        """Puts back a state of :meth:`get_state` (called when ``fit`` resumes from a backup, after every
        callback's ``on_train_begin``); raises ValueError, naming the entry, for a state it cannot take."""
        check_state_keys(state, ())

    def on_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Backwards-compatibility alias, called by :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Backwards-compatibility alias, called by :meth:`on_train_batch_end`."""

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        """Called at the start of a training epoch (0-based ``epoch``)."""

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        """Called at the end of a training epoch; ``logs`` holds the epoch's metrics (``val_``-prefixed ones too)."""

    def on_train_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called before a training batch (calls :meth:`on_batch_begin`)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called after a training batch; ``logs`` holds the metrics aggregated over the epoch so far."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called before a batch of ``evaluate``, and of ``fit``'s validation (as Keras does)."""

    def on_test_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called after a batch of ``evaluate``, with the loss and metrics so far."""

    def on_predict_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called before a batch of ``predict``."""

    def on_predict_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called after a batch of ``predict``, with the logs ``{"outputs": the batch's outputs}``."""

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        """Called at the start of ``fit``."""

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        """Called at the end of ``fit`` with the last epoch's logs."""

    def on_test_begin(self, logs: Optional[Logs] = None) -> None:
        """Called at the start of ``evaluate``."""

    def on_test_end(self, logs: Optional[Logs] = None) -> None:
        """Called at the end of ``evaluate`` with its result."""

    def on_predict_begin(self, logs: Optional[Logs] = None) -> None:
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs: Optional[Logs] = None) -> None:
        """Called at the end of ``predict``."""
