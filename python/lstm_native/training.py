"""The one loop of ``Sequential.fit``, with its train step, evaluation and prediction; where it runs (one
process, or several: sharding, reduction, broadcast) is a :class:`lstm_native.strategy.Strategy`.

This module is the model's own loop: it uses the model's step methods (forward pass, loss and backward pass,
trackers, logs); a strategy sees only what the hooks of ``lstm_native.strategy`` hand it.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from . import callbacks as callbacks_module
from .strategy import SINGLE_PROCESS, Batch, FitPlan, Strategy


def _accumulators(model, trackers) -> list:
    """The loss tracker and the compiled metrics, in the order of the logs."""
    return [trackers["loss"]] + model._compiled_metrics()


def _logs(model, results) -> Dict[str, float]:
    return model._logs(results[0], results[1:])


def train_step(model, strategy: Strategy, batch: Batch, trackers, stopping: bool = False):
    """One step: forward and backward passes on this process' part of the batch, the strategy's reduction,
    the optimizer's update; returns the logs so far, or None when the processes agreed to stop."""
    with strategy.step_scope():
        x, y, sample_weight = batch.x, batch.y, batch.sample_weight
        if len(x) and not stopping:
            y_pred, mask = model._forward(x, training=True)
            loss = model._loss_and_backward(y, y_pred, model._masked_weights(sample_weight, mask, reduce=True))
            model._update_trackers(trackers, loss, y, y_pred, sample_weight, mask)
        results = strategy.reduce_step(model, _accumulators(model, trackers), batch, stopping)
        if results is None:
            return None
        model.optimizer.apply(model.trainable_weights)
    return _logs(model, results)


def inference_callbacks(model, callbacks, verbose: int, steps):
    """The callbacks of an evaluate or predict, as Keras makes them: those given, and a progress bar unless
    ``verbose`` is 0."""
    return callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=model, verbose=verbose,
                                         epochs=1, steps=steps)


def evaluate(model, batches, strategy: Strategy = SINGLE_PROCESS, callback_list=None) -> Dict[str, float]:
    """The loss and metrics over ``batches`` (restarting the compiled metrics, as Keras does); {} when no
    process saw a batch. ``callback_list`` (evaluate's own, or fit's for its validation) gets the ``on_test_*``
    hooks, each batch's end with this process' logs so far."""
    callback_list = callbacks_module.CallbackList() if callback_list is None else callback_list
    trackers = model._fresh_trackers()
    model._reset_metrics(trackers)
    callback_list.on_test_begin()
    seen = 0
    for step, batch in enumerate(strategy.evaluation_batches(batches)):
        callback_list.on_test_batch_begin(step)
        if batch.y is None:
            raise ValueError(f"{batches.name}: a batch without targets; evaluation needs (x, y) batches")
        y_pred, mask = model._forward(batch.x, training=False)
        loss = model._evaluation_loss(batch.y, y_pred, batch.sample_weight, mask)
        model._update_trackers(trackers, loss, batch.y, y_pred, batch.sample_weight, mask)
        seen += 1
        callback_list.on_test_batch_end(step, _logs(model, Strategy.results(_accumulators(model, trackers))))
    batches.end_epoch()
    results = strategy.reduce_results(_accumulators(model, trackers), seen)
    logs = {} if results is None else _logs(model, results)
    callback_list.on_test_end(logs)
    return logs


def predict(model, batches, callback_list) -> np.ndarray:
    """The outputs over ``batches``; ``callback_list`` gets the ``on_predict_*`` hooks, each batch's end with
    ``{"outputs": the batch's outputs}``."""
    callback_list.on_predict_begin()
    outputs = []
    for step, (x, _, _) in enumerate(batches.epoch()):
        callback_list.on_predict_batch_begin(step)
        outputs.append(model._forward(x, training=False)[0])
        callback_list.on_predict_batch_end(step, {"outputs": outputs[-1]})
    if not outputs:
        raise ValueError("predict: x holds no samples")
    callback_list.on_predict_end()
    return np.concatenate(outputs, axis=0)


def fit(model, batches, validation, callbacks, strategy: Strategy, verbose: int, arguments: Dict[str, Any]):
    """The loop of ``fit`` over prepared, checked batches; returns the History. ``arguments``: the loop's
    checked arguments by name (epochs, initial_epoch, validation_freq, class_weight, and what
    ``strategy.check_fit`` compares)."""
    epochs, initial_epoch = arguments["epochs"], arguments["initial_epoch"]
    validation_freq, class_weight = arguments["validation_freq"], arguments["class_weight"]
    strategy.check_fit(FitPlan(model, batches, validation, arguments,
                               tuple(model._metric_identifiers) + tuple(model._weighted_metric_identifiers)))
    chief = strategy.is_chief
    callback_list = callbacks_module.CallbackList(
        callbacks if chief else None, add_history=True, add_progbar=chief and verbose != 0, model=model,
        verbose=verbose if chief else 0, epochs=epochs, steps=batches.steps)
    trackers = model._fresh_trackers()
    model.stop_training = False
    callback_list.on_train_begin()
    if model._initial_epoch is not None:  # set by BackupAndRestore
        initial_epoch, model._initial_epoch = model._initial_epoch, None
    initial_epoch = strategy.begin_fit(model, initial_epoch)
    logs: Dict[str, float] = {}
    epoch_logs: Dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        model._reset_metrics(trackers)
        callback_list.on_epoch_begin(epoch)
        steps_done = 0
        for step, batch in enumerate(strategy.train_batches(batches)):
            stopping = strategy.stop_requested(model)
            if not stopping:
                callback_list.on_train_batch_begin(step)
            if batch.y is None:
                raise ValueError(f"x: batch {step} has no targets; fit needs (x, y) batches")
            batch = batch._replace(sample_weight=model._sample_weights(batch.y, batch.sample_weight, class_weight))
            step_logs = train_step(model, strategy, batch, trackers, stopping)
            if step_logs is None:
                break
            logs = step_logs
            steps_done = step + 1
            callback_list.count_samples(batch.global_size)
            callback_list.on_train_batch_end(step, logs)
            if strategy.stop_after_batch(model):
                break
        if steps_done == 0 and batches.exhausted:  # the batches ran out before this epoch (SourceBatches warned)
            break
        batches.end_epoch()
        epoch_logs = dict(logs)
        if validation is not None and (epoch + 1) % validation_freq == 0:
            # as Keras' fit, whose validation is an evaluate with fit's callbacks (the progress bar stays quiet)
            val_logs = evaluate(model, validation, strategy, callback_list)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if strategy.stop_after_epoch(model) or batches.exhausted:
            break
    callback_list.on_train_end(epoch_logs or logs)
    return model.history
