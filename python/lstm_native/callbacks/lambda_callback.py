"""LambdaCallback."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .callback import Callback, Logs


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; any other hook can be given as a keyword argument too."""

    def __init__(self, on_epoch_begin: Optional[Callable[[int, Logs], Any]] = None,
                 on_epoch_end: Optional[Callable[[int, Logs], Any]] = None,
                 on_train_begin: Optional[Callable[[Logs], Any]] = None,
                 on_train_end: Optional[Callable[[Logs], Any]] = None,
                 on_train_batch_begin: Optional[Callable[[int, Logs], Any]] = None,
                 on_train_batch_end: Optional[Callable[[int, Logs], Any]] = None, **kwargs: Callable) -> None:
        super().__init__()
        self.__dict__.update(kwargs)
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end}
        for hook, function in hooks.items():
            if function is not None:
                setattr(self, hook, function)
