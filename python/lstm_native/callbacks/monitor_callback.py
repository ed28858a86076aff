"""MonitorCallback: the base of the callbacks that watch a metric."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import numpy as np

from .. import _arguments
from .callback import Callback


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


def optional_number(name: str, value) -> Optional[float]:
    return None if value is None else _arguments.number(name, value)


class MonitorCallback(Callback):
    """Keras' ``MonitorCallback``: which way the monitored quantity improves, and by how much it must."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0, baseline_name="baseline"):
        super().__init__()
        if _arguments.string("mode", mode) not in ("auto", "min", "max"):  # Keras warns, and falls back
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
            mode = "auto"
        self.monitor = _arguments.string("monitor", monitor)
        self.mode = mode
        self.best = optional_number(baseline_name, baseline)
        self.min_delta = _arguments.number("min_delta", min_delta, at_least=0)
        self.monitor_op: Optional[Callable[[Any, Any], Any]] = None  # np.less or np.greater, by _set_monitor_op

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
        assert self.monitor_op is not None, "_set_monitor_op runs before the first comparison"
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))
