"""History: the logs of every epoch, the model's ``history``."""

from __future__ import annotations

from typing import Dict

from .callback import Callback


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
