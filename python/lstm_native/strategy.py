"""The protocol between the training loop (:mod:`lstm_native.training`) and a distribution strategy.

The loop of ``fit`` (and the evaluation of its validation data) is written once; where it runs is a
``Strategy``. This base class is the single process, the default; a strategy that trains on several processes
(``lstm_native.distributed.MPIStrategy``) overrides the hooks below. The loop calls them in this order:

* ``check_fit(plan)`` once, after fit's own argument checks and before anything runs: refuse what the
  strategy cannot do, check that every process calls fit alike.
* ``is_chief``: whether this process runs the callbacks and the progress bar.
* ``begin_fit(model, initial_epoch)`` after the callbacks' ``on_train_begin`` (a BackupAndRestore restore has
  run): make the processes start alike; returns the epoch to start from.
* Per epoch, ``train_batches(batches)``: this process' part of each batch, as :class:`Batch`.
* Per step, ``step_scope()`` around the whole step; ``stop_requested(model)`` before it;
  ``reduce_step(model, accumulators, batch, stopping)`` after the forward and backward passes, before the
  optimizer's update: combine the gradients (left in each trainable weight's ``grad``) and the logs'
  accumulators; returns the step's results, or None when the processes agreed to stop before this update.
  ``stop_after_batch(model)`` after the batch's callbacks, ``stop_after_epoch(model)`` after the epoch's.
* For validation, ``evaluation_batches(batches)`` and ``reduce_results(accumulators, batches_seen)``.

The accumulators are the loss tracker and the compiled metrics, in the order of the logs; each has
``result()`` and, for a strategy that sums them across processes, ``total`` and ``count``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from .data import ArrayBatches, SourceBatches


class Batch(NamedTuple):
    """This process' part of one batch of an epoch."""
    x: np.ndarray
    y: Optional[np.ndarray]
    sample_weight: Optional[np.ndarray]
    global_size: int  # the samples of the whole batch, on all processes (len(x) in one process)


class FitPlan(NamedTuple):
    """What ``fit`` was called with, after its checks: what ``Strategy.check_fit`` may refuse or compare."""
    model: Any  # the Sequential being fit (not imported: models imports this module)
    batches: Union[ArrayBatches, SourceBatches]
    validation: Union[ArrayBatches, SourceBatches, None]
    arguments: Dict[str, Any]  # the loop's arguments by name (batch_size, epochs, initial_epoch, ...)
    metrics: tuple  # compile's metrics, then its weighted_metrics, as given


class Strategy:
    """A single process: the default of ``fit``. Subclass it, overriding the hooks, for another placement."""

    @property
    def is_chief(self) -> bool:
        """Whether this process runs the callbacks and the progress bar (the single process does)."""
        return True

    def check_fit(self, plan: FitPlan) -> None:
        """Raises for what this strategy cannot run; the default runs everything fit accepts."""

    def begin_fit(self, model, initial_epoch: int) -> int:
        """Prepares a ``fit`` that starts at ``initial_epoch``; returns the epoch to start at."""
        return initial_epoch

    def train_batches(self, batches) -> Iterator[Batch]:
        return self._whole(batches)

    def evaluation_batches(self, batches) -> Iterator[Batch]:
        return self._whole(batches)

    @staticmethod
    def _whole(batches) -> Iterator[Batch]:
        for x, y, sample_weight in batches.epoch():
            yield Batch(x, y, sample_weight, len(x))

    def step_scope(self):
        return contextlib.nullcontext()

    def stop_requested(self, model) -> bool:
        """Whether this process skips the next step to tell the others that training stops (False: a single
        process stops at the batch's end instead)."""
        return False

    def reduce_step(self, model, accumulators: Sequence, batch: Batch, stopping: bool) -> Optional[List[float]]:
        return self.results(accumulators)

    def reduce_results(self, accumulators: Sequence, batches_seen: int) -> Optional[List[float]]:
        """The results of an evaluation; None when no process saw a batch."""
        return self.results(accumulators) if batches_seen else None

    def stop_after_batch(self, model) -> bool:
        """Whether training stops after this batch (the model's ``stop_training``)."""
        return model.stop_training

    def stop_after_epoch(self, model) -> bool:
        """Whether training stops after this epoch (the model's ``stop_training``)."""
        return model.stop_training

    @staticmethod
    def results(accumulators: Sequence) -> List[float]:
        return [accumulator.result() for accumulator in accumulators]


SINGLE_PROCESS = Strategy()
