"""Training callbacks with Keras 3's hooks, arguments and behaviour.

A callback reaches the model only through ``model.stop_training`` (bool), ``model.get_weights()`` /
``model.set_weights(list of arrays)``, ``model.optimizer.learning_rate`` (read and assigned), and for the
checkpoint callbacks ``model.save`` / ``model.save_weights``, lstm_native.saving's checkpoints and
``model._initial_epoch`` (the epoch a resumed fit starts from, as in Keras).
"""

from __future__ import annotations

import collections.abc
import contextlib
import csv
import fcntl
import math
import os
import reprlib
import sys
import threading
import time
import warnings
from typing import Callable, Dict, Iterable, Optional

import numpy as np

from . import _arguments, saving, utils

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "Progbar",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "CSVLogger",
    "TerminateOnNaN",
    "LambdaCallback",
    "ModelCheckpoint",
    "BackupAndRestore",
]


def _print(message: str, line_break: bool = True) -> None:
    sys.stdout.write(message + ("\n" if line_break else ""))
    sys.stdout.flush()


def _pythonify_logs(logs: Optional[dict]) -> dict:
    """Keras' ``pythonify_logs``: keys sorted, nested dicts flattened, values made floats where possible."""
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(_pythonify_logs(value))
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            pass
        result[key] = value
    return result


class Callback:
    """Base class of the callbacks: every hook does nothing.

    Attributes:
        model: the model being trained, evaluated or used for prediction (set by :meth:`set_model`).
        params: dict of the run's parameters (``verbose``, ``epochs``, ``steps``), set by :meth:`set_params`.
    """

    def __init__(self):
        self.params = None
        self.model = None

    def set_params(self, params: dict) -> None:
        self.params = params

    def set_model(self, model) -> None:
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
        _check_state_keys(state, ())

    def on_batch_begin(self, batch, logs=None):
        """Backwards-compatibility alias, called by :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """Backwards-compatibility alias, called by :meth:`on_train_batch_end`."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of a training epoch (0-based ``epoch``)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of a training epoch; ``logs`` holds the epoch's metrics (``val_``-prefixed ones too)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after a training batch; ``logs`` holds the metrics aggregated over the epoch so far."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called before a batch of ``evaluate`` (or of validation in ``fit``)."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after a batch of ``evaluate`` (or of validation in ``fit``)."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before a batch of ``predict``."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after a batch of ``predict``."""

    def on_train_begin(self, logs=None):
        """Called at the start of ``fit``."""

    def on_train_end(self, logs=None):
        """Called at the end of ``fit`` with the last epoch's logs."""

    def on_test_begin(self, logs=None):
        """Called at the start of ``evaluate`` (or of validation)."""

    def on_test_end(self, logs=None):
        """Called at the end of ``evaluate`` (or of validation)."""

    def on_predict_begin(self, logs=None):
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs=None):
        """Called at the end of ``predict``."""


def _check_state_keys(state, keys) -> None:
    if not (isinstance(state, dict) and set(state) == set(keys)):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"expected a state with the entries {sorted(keys)}, got {found}")


def _state_count(name: str, value) -> int:
    try:
        return _arguments.integer(name, value, at_least=0)
    except TypeError as error:
        raise ValueError(str(error)) from None


def _state_value(name: str, value) -> Optional[float]:
    """A monitored value in a state: None or a float (NaN and infinities included: a loss can be NaN)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None if value is None else float(value)
    raise ValueError(f"{name}: expected a number or None, got {reprlib.repr(value)}")


def _monitor_value(value) -> Optional[float]:
    """A monitored value (from the logs, a float) as get_state stores it."""
    return None if value is None else float(value)


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
                 add_progbar: bool = False, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks) if callbacks else []
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

    def set_model(self, model) -> None:
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

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)
        for backup in self._backups:  # after every on_train_begin, which resets the callbacks' states
            backup._resume_callbacks()

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)


class History(Callback):
    """Records the logs of every epoch: ``history[metric]`` is the list of its values, ``epoch`` the epochs'
    indices. It is the model's ``history`` attribute (``fit`` returns it)."""

    def __init__(self):
        super().__init__()
        self.history: Dict[str, list] = {}
        self.epoch: list = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


# ------------------------------------------------------------------------------------------------ progress bar

class Progbar:
    """Keras 3's progress bar (``keras.utils.Progbar``), every metric shown as given.

    ``verbose=1``: on a terminal (``sys.stdout.isatty()``, or in Jupyter) the bar
    ``n/N ━━━━━━━━━━━━━━━━━━━━ ETA per-step - metric: value ...`` is redrawn in place, Keras' exact bytes;
    elsewhere (a log file, a pipe) only the final line of each bar is written, without colours.
    ``verbose=2``: the final line ``n/N - elapsed - per-step - metric: value ...`` only.
    """

    def __init__(self, target: Optional[int], width: int = 20, verbose: int = 1, interval: float = 0.05,
                 unit_name: str = "step"):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._dynamic_display = (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) or "ipykernel" in sys.modules
        self._values: Dict[str, object] = {}
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._samples_after_first_step = 0
        self._samples_per_second = None
        self._prev_total_width = 0

    def update(self, current: int, values=None, finalize: Optional[bool] = None, samples: Optional[int] = None) -> None:
        """Shows step ``current`` with ``values`` (a list of ``(name, value)``); ``samples``, the samples seen
        so far, adds their rate (samples/s) after the time per step."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for key, value in values or []:
            self._values[key] = value
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now, samples)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            if self._dynamic_display:
                _print(self._bar_line(current, finalize, now, time_per_unit), line_break=False)
            elif finalize:
                _print(self._bar_line(current, finalize, now, time_per_unit, colour=False))
        elif self.verbose == 2 and finalize and self.target is not None and self.target > 0:
            count = f"%{int(math.log10(self.target)) + 1}d/%d" % (current, self.target)
            info = f"{count} - {now - self._start:.0f}s -{self._format_time(time_per_unit)}{self._rate_text()}"
            _print(info + self._metrics_text(verbose2=True))
        self._last_update = now

    def _bar_line(self, current, finalize, now, time_per_unit, colour=True) -> str:
        def bold(text):
            return f"\x1b[1m{text}\x1b[0m" if colour else text

        special_char_len = 0
        if self.target is not None and self.target > 0:
            bar = bold(f"%{int(math.log10(self.target)) + 1}d/%d" % (current, self.target)) + " "
            prog_width = int(self.width * float(current) / self.target)
            if prog_width > 0:
                bar += f"\33[32m{'━' * prog_width}\x1b[0m" if colour else "━" * prog_width
                special_char_len += 9
            bar += f"\33[37m{'━' * (self.width - prog_width)}\x1b[0m" if colour else "━" * (self.width - prog_width)
            special_char_len += 17
        else:
            bar = "%7d/Unknown" % current
        if self.target is not None and self.target > 0 and not finalize:
            info = " " + bold(self._format_eta(time_per_unit * (self.target - current)))
        else:
            info = " " + bold(f"{now - self._start:.0f}s")
        special_char_len += 8
        info += self._format_time(time_per_unit) + self._rate_text() + self._metrics_text(verbose2=False)
        if not colour:
            return bar + info
        total_width = len(bar) + len(info) - special_char_len
        message = "\b" * self._prev_total_width + "\r" + bar + info
        if self._prev_total_width > total_width:
            message += " " * (self._prev_total_width - total_width)
        self._prev_total_width = total_width
        return message + ("\n" if finalize else "")

    def _metrics_text(self, verbose2: bool) -> str:
        text = ""
        for key, value in self._values.items():
            avg = value if isinstance(value, float) else np.mean(value)
            # Keras compares the signed value on the verbose=2 line and its magnitude on the bar.
            text += f" - {key}: {avg:.4f}" if (avg if verbose2 else abs(avg)) > 1e-3 else f" - {key}: {avg:.4e}"
        return text

    @staticmethod
    def _format_eta(eta: float) -> str:
        if eta > 3600:
            return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
        if eta > 60:
            return "%d:%02d" % (eta // 60, eta % 60)
        return "%ds" % eta

    def _format_time(self, time_per_unit: float) -> str:
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{self.unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1000.0:.0f}ms/{self.unit_name}"
        return f" {time_per_unit * 1000000.0:.0f}us/{self.unit_name}"

    def _rate_text(self) -> str:
        return "" if self._samples_per_second is None else f" - {self._samples_per_second:,.0f} samples/s"

    def _estimate_step_duration(self, current: int, now: float, samples: Optional[int] = None) -> float:
        """Seconds per step (and, given the samples seen, samples per second), leaving the (unrepresentative)
        first step out once there are more."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            elapsed, steps = now - self._time_after_first_step, current - 1
            samples = None if samples is None else samples - self._samples_after_first_step
        else:
            elapsed, steps = now - self._start, current
        if samples is not None and elapsed > 0:
            self._samples_per_second = samples / elapsed
        if current == 1:
            self._time_after_first_step = now
            self._samples_after_first_step = samples or 0
        return elapsed / steps


class ProgbarLogger(Callback):
    """Prints the progress of ``fit``, ``evaluate`` and ``predict`` (a :class:`Progbar` per epoch or run);
    ``params["verbose"]`` picks the bar (1, "auto") or one line per epoch (2). Validation inside ``fit`` is
    silent. ``CallbackList(add_progbar=True)`` adds one."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.samples_seen = 0  # counted by CallbackList.count_samples
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params["verbose"]
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.samples_seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step")

    def _update_progbar(self, batch, logs):
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False, samples=self._samples())

    def _finalize_progbar(self, logs):
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True, samples=self._samples())

    def _samples(self) -> Optional[int]:
        return self.samples_seen or None


# ------------------------------------------------------------------------------------------------ monitors

# Keras 3 takes a monitored metric's direction ("auto" mode) from the model's metric objects; here it comes
# from the name: the metrics that Keras marks as improving upwards, everything ending in "loss" downwards.
_METRICS_UP = frozenset({
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "precision", "recall",
    "f1_score", "fbeta_score", "r2_score", "cosine_similarity", "iou", "mean_iou",
    "pearson_correlation", "concordance_correlation",
})
_METRICS_DOWN = frozenset({
    "mse", "mae", "mape", "msle", "mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "root_mean_squared_error",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge",
    "squared_hinge", "categorical_hinge", "kl_divergence", "poisson", "log_cosh_error",
})


def _optional_number(name: str, value) -> Optional[float]:
    return None if value is None else _arguments.number(name, value)


class _MonitorCallback(Callback):
    """Keras' ``MonitorCallback``: which way the monitored quantity improves, and by how much it must."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0, baseline_name="baseline"):
        super().__init__()
        if _arguments.string("mode", mode) not in ("auto", "min", "max"):  # Keras warns, and falls back
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
            mode = "auto"
        self.monitor = _arguments.string("monitor", monitor)
        self.mode = mode
        self.best = _optional_number(baseline_name, baseline)
        self.min_delta = _arguments.number("min_delta", min_delta, at_least=0)
        self.monitor_op = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name.endswith("loss") or metric_name in _METRICS_DOWN:
                self.monitor_op = np.less
            elif metric_name in _METRICS_UP:
                self.monitor_op = np.greater
            else:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but it isn't possible to "
                    "automatically determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or pass `mode='min'` "
                    "in order to use the lowest value."
                )
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value) -> bool:
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


class EarlyStopping(_MonitorCallback):
    """Stops training (``model.stop_training = True``) once ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs, counting from epoch ``start_from_epoch``.

    ``baseline``: training also stops if ``monitor`` does not beat this value within ``patience`` epochs.
    ``restore_best_weights``: at the end of training, set the weights of the best epoch (of the epochs
    monitored) back into the model. ``stopped_epoch``, ``best``, ``best_epoch`` tell what happened.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = _arguments.integer("patience", patience, at_least=0)
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)
        self.baseline = _optional_number("baseline", baseline)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = _arguments.boolean("restore_best_weights", restore_best_weights)
        self.best_weights = None
        self.start_from_epoch = _arguments.integer("start_from_epoch", start_from_epoch, at_least=0)
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
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
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": _monitor_value(self.best),
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def set_state(self, state: dict) -> None:
        _check_state_keys(state, ("wait", "stopped_epoch", "best", "best_epoch", "best_weights"))
        best_weights = state["best_weights"]
        if best_weights is not None:
            current = self.model.get_weights()
            if not (isinstance(best_weights, list) and len(best_weights) == len(current) and all(
                    isinstance(saved, np.ndarray) and saved.shape == weight.shape and saved.dtype == weight.dtype
                    for saved, weight in zip(best_weights, current))):
                raise ValueError("best_weights: not the weights of this model")
        self.wait, self.stopped_epoch, self.best_epoch = (
            _state_count(name, state[name]) for name in ("wait", "stopped_epoch", "best_epoch"))
        self.best = _state_value("best", state["best"])
        self.best_weights = best_weights

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}", stacklevel=2)
        return value


class ReduceLROnPlateau(_MonitorCallback):
    """Multiplies the optimizer's learning rate by ``factor`` (not below ``min_lr``) once ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs; then waits ``cooldown`` epochs before counting
    again. Adds ``learning_rate`` to each epoch's logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
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

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def get_state(self) -> dict:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": _monitor_value(self.best)}

    def set_state(self, state: dict) -> None:
        _check_state_keys(state, ("wait", "cooldown_counter", "best"))
        self.wait = _state_count("wait", state["wait"])
        self.cooldown_counter = _state_count("cooldown_counter", state["cooldown_counter"])
        self.best = _state_value("best", state["best"])

    def on_epoch_end(self, epoch, logs=None):
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
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function), which must return a float. Adds ``learning_rate`` to
    each epoch's logs."""

    def __init__(self, schedule: Callable, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a function of (epoch, lr) or (epoch), got {schedule!r}")
        self.schedule = schedule
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # a schedule of the epoch alone
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the logs' keys in sorted order (the first epoch's keys;
    without validation keys, ``val_<key>`` columns are added for each, holding "NA"). ``append=True``
    continues an existing file (writing the header only if the file is empty)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not (isinstance(separator, str) and len(separator) == 1):
            raise ValueError(f"separator: expected a string of one character, got {separator!r}")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = _arguments.boolean("append", append)
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not f.readline()
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(value):
            if isinstance(value, str):
                return value
            if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
                return f'"[{", ".join(map(str, value))}]"'
            return value

        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{key}" for key in self.keys])
        if not self.writer:
            dialect = type("CustomDialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite (``raise_error=True``: raises RuntimeError)."""

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = _arguments.boolean("raise_error", raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; any other hook can be given as a keyword argument too."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end}
        for hook, function in hooks.items():
            if function is not None:
                setattr(self, hook, function)


# -------------------------------------------------------------------------------------------- checkpoints

class _SaveFrequency:
    """Keras' ``save_freq``: "epoch" (at every epoch's end) or an integer n (after every n training batches,
    counted across epochs)."""

    def __init__(self, save_freq):
        if not (isinstance(save_freq, str) and save_freq == "epoch"):
            try:
                save_freq = _arguments.integer("save_freq", save_freq, at_least=1)
            except (TypeError, ValueError):  # Keras' error
                raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected save_freq are 'epoch' or "
                                 "positive integer values") from None
        self.per_epoch = save_freq == "epoch"
        self._every = save_freq
        self._batches = 0

    @property
    def batches_since_save(self) -> int:
        return self._batches

    @batches_since_save.setter
    def batches_since_save(self, count: int) -> None:
        if not self.per_epoch and count >= self._every:
            raise ValueError(f"batches_since_save: expected fewer than save_freq={self._every}, got {count}")
        self._batches = count

    def due_after_batch(self) -> bool:
        if self.per_epoch:
            return False
        self._batches += 1
        if self._batches < self._every:
            return False
        self._batches = 0
        return True


class ModelCheckpoint(_MonitorCallback):
    """Saves the model (``model.save``, optimizer included) or, with ``save_weights_only``, its weights
    (``model.save_weights``) at every epoch's end, or every ``save_freq`` training batches.

    ``filepath`` may hold ``str.format`` fields: ``{epoch}`` (1-based), ``{batch}`` (1-based, in batch-level
    saves) and any key of the logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.safetensors"``; the files are
    safetensors files (lstm_native's format), so a name with another format's extension (``.keras``, ``.h5``,
    where Keras 3 asks for those) is refused, as ``model.save`` refuses it. Missing directories are created. ``save_best_only``: save only when ``monitor`` improves on the best value so far
    (which starts at ``initial_value_threshold``), in the direction ``mode`` gives ("auto": from the name, as
    :class:`EarlyStopping`); without a value for ``monitor`` in the logs, warn and save anyway (Keras).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, baseline=initial_value_threshold, baseline_name="initial_value_threshold")
        saving.check_file_name(filepath)
        self.filepath = os.fsdecode(os.fspath(filepath))
        self.verbose = _arguments.integer("verbose", verbose, at_least=0)
        self.save_best_only = _arguments.boolean("save_best_only", save_best_only)
        self.save_weights_only = _arguments.boolean("save_weights_only", save_weights_only)
        self.save_freq = save_freq
        self._frequency = _SaveFrequency(save_freq)
        self._current_epoch = 0

    def get_state(self) -> dict:
        return {"best": _monitor_value(self.best), "batches_since_save": self._frequency.batches_since_save}

    def set_state(self, state: dict) -> None:
        _check_state_keys(state, ("best", "batches_since_save"))
        best = _state_value("best", state["best"])
        self._frequency.batches_since_save = _state_count("batches_since_save", state["batches_since_save"])
        self.best = best

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._frequency.due_after_batch():
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
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
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
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
                _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
            return False
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, saving model to "
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


class BackupAndRestore(Callback):
    """Backs the training state up, and a later ``fit`` resumes from it after an interruption.

    The backup, ``<backup_dir>/latest.safetensors`` (lstm_native.saving's checkpoint), holds the weights, the
    optimizer's state, the epoch to resume at, the states of the random generators (the library's and
    those that layers with a seed hold) and the states of the fit's other callbacks (:meth:`Callback.get_state`:
    EarlyStopping's and ReduceLROnPlateau's wait counters and best values, ReduceLROnPlateau's cooldown,
    ModelCheckpoint's best value...). It is written at every epoch's end, or with an integer ``save_freq``
    every that many training batches. When ``fit`` begins and a backup exists, it is checked against the model
    (built, compiled as when it was written) and its callbacks (the same stateful ones, in the same order) and
    restored, and ``fit`` starts at its epoch. A run resumed from an epoch's end ends with the weights,
    learning rate, epoch count and callback decisions of an uninterrupted run, bit for bit, as far as its
    callbacks' state is backed up: the built-in callbacks' is; a user callback's only if it implements
    ``get_state``/``set_state`` (otherwise it starts afresh, with whatever ``on_train_begin`` gives it). A
    batch-level backup restarts its epoch from the beginning with the backup's weights (as Keras does).
    ``delete_checkpoint``: remove the backup (and ``backup_dir`` if that leaves it empty) when ``fit``
    completes.

    One fit at a time uses a backup directory: from ``on_train_begin`` to ``on_train_end`` it holds an
    exclusive lock (``fcntl.flock`` on the directory), and a fit in another process, or in another
    thread of this one, that tries to use the directory meanwhile raises RuntimeError naming it. The system
    releases the lock of a process that dies; a fit of the same thread that ended with an exception leaves the
    lock to the next fit of that thread.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = _arguments.boolean("delete_checkpoint", delete_checkpoint)
        self._frequency = _SaveFrequency(save_freq)
        self._path = os.path.join(self.backup_dir, "latest.safetensors")
        self._current_epoch = 0
        self._backed_up: list = []  # the fit's other callbacks (set by CallbackList)
        self._pending_states: list = []  # (callback, state) to restore once every on_train_begin has run

    def _layer_generators(self) -> Dict[str, tuple]:
        """The numpy generators that layers hold (seeded Dropout and LSTM layers have one), as
        {"layers.<k>.[forward.|backward.]<attribute>": (layer, attribute)}."""
        return {prefix + attribute: (part, attribute) for prefix, part in saving.named_parts(self.model)
                for attribute, value in vars(part).items() if isinstance(value, np.random.Generator)}

    def _callback_states(self) -> list:
        """(callback, state) of each callback of the fit that has a state."""
        return [(callback, state) for callback in self._backed_up for state in [callback.get_state()] if state]

    def on_train_begin(self, logs=None):
        _lock_backup_directory(self.backup_dir)
        self._pending_states = []
        if not os.path.exists(self._path):
            return
        restore, state = saving.read_checkpoint(self.model, self._path)
        holders = self._layer_generators()
        if not (isinstance(state, dict) and set(state) == {"epoch", "rng", "layer_rngs", "callbacks"}
                and isinstance(state["epoch"], int) and not isinstance(state["epoch"], bool) and state["epoch"] >= 0
                and isinstance(state["layer_rngs"], dict) and set(state["layer_rngs"]) == set(holders)):
            raise ValueError(f"{self._path}: its training_state is not the one of a backup of this model")
        pending = self._matched_callback_states(state["callbacks"])
        try:
            generators = {name: utils.generator_from_state(state["layer_rngs"][name]) for name in holders}
            utils.set_rng_state(state["rng"])  # the first change, all or nothing; what follows cannot fail
        except ValueError as error:
            raise ValueError(f"{self._path}: training_state: {error}") from None
        restore.apply()
        for name, (layer, attribute) in holders.items():
            setattr(layer, attribute, generators[name])
        self.model._initial_epoch = state["epoch"]
        self._pending_states = pending

    def _matched_callback_states(self, saved) -> list:
        """(callback, saved state) for each stateful callback of this fit; the backup must hold one state for
        each, of the same class, in the same order."""
        current = [type(callback).__name__ for callback, _ in self._callback_states()]
        if not (isinstance(saved, list) and all(isinstance(entry, dict) and set(entry) == {"class", "state"}
                                                for entry in saved)):
            raise ValueError(f"{self._path}: training_state: the callbacks' states are malformed")
        found = [entry["class"] for entry in saved]
        if found != current:
            raise ValueError(f"{self._path}: the backup holds the states of the callbacks {found}, but this fit's "
                             f"callbacks with a state are {current}: resume with the callbacks of the interrupted "
                             "fit (or remove the backup to start afresh)")
        return [(callback, entry["state"]) for (callback, _), entry in zip(self._callback_states(), saved)]

    def _resume_callbacks(self) -> None:
        """Puts the backed-up states into the other callbacks (after their on_train_begin reset them)."""
        pending, self._pending_states = self._pending_states, []
        for callback, state in pending:
            try:
                callback.set_state(state)
            except ValueError as error:
                raise ValueError(f"{self._path}: the state of callback {type(callback).__name__}: {error}") from None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._frequency.due_after_batch():
            self._save(resume_at=self._current_epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self._frequency.per_epoch:
            self._save(resume_at=epoch + 1)

    def on_train_end(self, logs=None):
        try:
            if self.delete_checkpoint and os.path.exists(self._path):
                os.remove(self._path)
                with contextlib.suppress(OSError):  # only an empty directory goes
                    os.rmdir(self.backup_dir)
        finally:
            _unlock_backup_directory(self.backup_dir)

    def _save(self, resume_at: int) -> None:
        layer_rngs = {name: getattr(layer, attribute).bit_generator.state
                      for name, (layer, attribute) in self._layer_generators().items()}
        callback_states = [{"class": type(callback).__name__, "state": state}
                           for callback, state in self._callback_states()]
        saving.save_checkpoint(self.model, self._path, {"epoch": resume_at, "rng": utils.get_rng_state(),
                                                        "layer_rngs": layer_rngs, "callbacks": callback_states})


# The backup directories that this process holds locked: {real path: (descriptor of the locked directory,
# thread of the fit that took it)}. A flock belongs to an open file, so a later fit of this process reuses it.
_locked_directories: Dict[str, tuple] = {}
_locked_directories_guard = threading.Lock()


def _lock_backup_directory(directory: str) -> None:
    """Takes the exclusive lock of a backup directory (creating it) for the fit of the calling thread."""
    key = os.path.realpath(directory)
    with _locked_directories_guard:
        held = _locked_directories.get(key)
        if held is not None:
            descriptor, thread = held
            if thread is not threading.current_thread() and thread.is_alive():
                raise RuntimeError(f"BackupAndRestore: {directory} is in use by another fit of this process "
                                   f"(thread {thread.name!r}); give each fit a backup_dir of its own")
            # the earlier fit of this thread, or of a thread that has ended, ended with an exception
            _locked_directories[key] = (descriptor, threading.current_thread())
            return
        _locked_directories[key] = (_take_directory_lock(directory), threading.current_thread())


def _take_directory_lock(directory: str) -> int:
    """A descriptor of ``directory`` (created if missing) holding its exclusive flock; RuntimeError if another
    process holds it."""
    while True:
        os.makedirs(directory, exist_ok=True)
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RuntimeError(f"BackupAndRestore: {directory} is in use by another fit (another process holds its "
                               "lock): two runs cannot share a backup directory; give each its own backup_dir") from None
        # The holder before us may have removed the (empty) directory after we opened it: then the lock is on a
        # directory that no longer has this name, and we try again.
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(descriptor), os.stat(directory)):
                return descriptor
        os.close(descriptor)


def _unlock_backup_directory(directory: str) -> None:
    """Releases the lock of a backup directory, if this process holds it."""
    with _locked_directories_guard:
        held = _locked_directories.pop(os.path.realpath(directory), None)
    if held is not None:
        os.close(held[0])
