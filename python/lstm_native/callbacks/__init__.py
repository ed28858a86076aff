"""Training callbacks with Keras 3's hooks, arguments and behaviour, one module per callback as Keras lays
them out (``callback``, ``callback_list``, ``history``, ``progbar_logger``, ``early_stopping``, ...).

A callback reaches the model only through ``model.stop_training`` (bool), ``model.get_weights()`` /
``model.set_weights(list of arrays)``, ``model.optimizer.learning_rate`` (read and assigned), and for the
checkpoint callbacks ``model.save`` / ``model.save_weights``, lstm_native.saving's checkpoints and
``model._initial_epoch`` (the epoch a resumed fit starts from, as in Keras).
"""

from __future__ import annotations

from .backup_and_restore import BackupAndRestore
from .callback import Callback
from .callback_list import CallbackList
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .history import History
from .lambda_callback import LambdaCallback
from .learning_rate_scheduler import LearningRateScheduler
from .model_checkpoint import ModelCheckpoint
from .progbar import Progbar
from .progbar_logger import ProgbarLogger
from .reduce_lr_on_plateau import ReduceLROnPlateau
from .terminate_on_nan import TerminateOnNaN

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
