"""History: the logs of every epoch, the model's ``history``."""

from __future__ import annotations

from typing import Dict, Optional

from .callback import Callback, Logs


class History(Callback):
    """Records the logs of every epoch: ``history[metric]`` is the list of its values, ``epoch`` the epochs'
    indices. It is the model's ``history`` attribute (``fit`` returns it)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, list] = {}
        self.epoch: list = []

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self
