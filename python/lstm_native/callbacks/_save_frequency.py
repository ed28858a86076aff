"""The ``save_freq`` of the checkpoint callbacks."""

from __future__ import annotations

from .. import _arguments


class SaveFrequency:
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
