"""The callbacks, driven with scripted logs on a tiny fake model; Keras 3's callbacks, driven the same way, are
the oracle wherever they run on such a model."""

import csv
import io
import sys
import types

import keras
import numpy as np
import pytest
from keras.src.utils import progbar as keras_progbar

from lstm_native import callbacks, optimizers
from lstm_native.callbacks import progbar


KERAS = types.SimpleNamespace(callbacks=keras.callbacks, clock_owner=keras_progbar)
OURS = types.SimpleNamespace(callbacks=callbacks, clock_owner=progbar)


class FakeModel:
    """What a callback may touch: stop_training, get_weights/set_weights, optimizer.learning_rate."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = types.SimpleNamespace(learning_rate=learning_rate)
        self.weights = [np.zeros((2, 3)), np.zeros(3)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]


def _fit(module, callback_list, logs_per_epoch, batches=0, batch_losses=None):
    """Runs a scripted fit: the model's weights are set to the epoch's index before each epoch's end.
    Returns (per-epoch (stop_training, learning rate) trace, model)."""
    model = FakeModel()
    callback_list = module.callbacks.CallbackList(callback_list, model=model)
    callback_list.on_train_begin()
    trace, logs = [], {}
    for epoch, logs in enumerate(logs_per_epoch):
        callback_list.on_epoch_begin(epoch)
        for batch in range(batches):
            callback_list.on_train_batch_begin(batch)
            callback_list.on_train_batch_end(batch, {"loss": batch_losses[epoch][batch]})
            if model.stop_training:
                break
        model.weights = [np.full((2, 3), epoch), np.full(3, -epoch)]
        callback_list.on_epoch_end(epoch, dict(logs))
        trace.append((model.stop_training, model.optimizer.learning_rate))
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return trace, model


def _compare_with_keras(make, logs_per_epoch, capsys, attributes=(), **fit_args):
    """Runs ``make(module)`` under both libraries; same trace, weights, printed text and attributes."""
    results = []
    for module in (KERAS, OURS):
        callback = make(module.callbacks)
        trace, model = _fit(module, [callback], logs_per_epoch, **fit_args)
        results.append((trace, model, capsys.readouterr().out, {a: getattr(callback, a) for a in attributes}))
    (their_trace, their_model, their_out, their_attrs), (trace, model, out, attrs) = results
    assert trace == their_trace
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, their_model.weights))
    assert out == their_out
    assert attrs == their_attrs
    return trace, model, out


def _losses(*values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


EARLY_STOPPING = {
    "patience-0": (lambda c: c.EarlyStopping(verbose=1), _losses(1.0, 0.9, 0.95, 0.8), 3),
    "patience-2": (lambda c: c.EarlyStopping(patience=2, verbose=1), _losses(1.0, 0.9, 0.95, 0.92, 0.8, 0.7), 4),
    "min-delta": (lambda c: c.EarlyStopping(patience=1, min_delta=0.05),
                  _losses(1.0, 0.9, 0.87, 0.86, 0.5), 3),
    "mode-max": (lambda c: c.EarlyStopping(monitor="val_accuracy", mode="max", patience=1),
                 _losses(0.5, 0.6, 0.7, 0.65, 0.6, 0.9, key="val_accuracy"), 4),
    "mode-min-on-loss": (lambda c: c.EarlyStopping(monitor="loss", mode="min"),
                         [{"loss": v} for v in (3.0, 2.0, 2.5)], 3),
    # Improving without beating the baseline does not stop training, but it does not reset the wait either.
    "baseline-not-beaten": (lambda c: c.EarlyStopping(baseline=0.5, patience=2, verbose=1),
                            _losses(0.9, 0.8, 0.85, 0.7), 3),
    "baseline-not-beaten-improving": (lambda c: c.EarlyStopping(baseline=0.5, patience=2),
                                      _losses(0.9, 0.8, 0.7, 0.6, 0.4, 0.45), 6),
    "baseline-beaten": (lambda c: c.EarlyStopping(baseline=0.5, patience=2), _losses(0.9, 0.4, 0.3, 0.35), 4),
    "restore-best": (lambda c: c.EarlyStopping(patience=2, restore_best_weights=True, verbose=1),
                     _losses(1.0, 0.5, 0.7, 0.6, 0.4), 4),
    "restore-best-never-stopped": (lambda c: c.EarlyStopping(patience=5, restore_best_weights=True),
                                   _losses(1.0, 0.5, 0.7), 3),
    "start-from-epoch": (lambda c: c.EarlyStopping(patience=0, start_from_epoch=3, restore_best_weights=True),
                         _losses(1.0, 2.0, 3.0, 4.0, 5.0, 6.0), 5),
}


@pytest.mark.parametrize("make, logs, epochs_run", EARLY_STOPPING.values(), ids=EARLY_STOPPING.keys())
def test_early_stopping_matches_keras(make, logs, epochs_run, capsys):
    trace, _, _ = _compare_with_keras(make, logs, capsys,
                                      attributes=("stopped_epoch", "best", "best_epoch", "wait"))
    assert len(trace) == epochs_run


def test_early_stopping_details(capsys):
    """The numbers behind a few of the scenarios, spelled out."""
    trace, model, out = _compare_with_keras(EARLY_STOPPING["restore-best"][0], EARLY_STOPPING["restore-best"][1],
                                            capsys)
    assert [stop for stop, _ in trace] == [False, False, False, True]
    assert out == "Epoch 4: early stopping\nRestoring model weights from the end of the best epoch: 2.\n"
    assert np.all(model.weights[0] == 1) and np.all(model.weights[1] == -1)
    _, model, _ = _compare_with_keras(*EARLY_STOPPING["start-from-epoch"][:2], capsys)
    assert np.all(model.weights[0] == 3)  # epochs before start_from_epoch are not candidates


def test_early_stopping_auto_mode_and_missing_metric():
    model = FakeModel()
    for monitor, direction in [("val_accuracy", np.greater), ("auc", np.greater), ("val_mae", np.less),
                               ("val_loss", np.less), ("output_1_loss", np.less)]:
        callback = callbacks.EarlyStopping(monitor=monitor)
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_end(0, {monitor: 0.5})
        assert callback.monitor_op is direction
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    stopper.set_model(model)
    for epoch, value in enumerate((0.5, 0.6, 0.55)):
        stopper.on_epoch_end(epoch, {"val_accuracy": value})
    assert stopper.best == 0.6 and model.stop_training
    weird = callbacks.EarlyStopping(monitor="weirdness")
    weird.set_model(model)
    with pytest.raises(ValueError, match="mode='max'"):
        weird.on_epoch_end(0, {"weirdness": 1.0})
    with pytest.warns(UserWarning, match="unknown, fallback to auto"):
        assert callbacks.EarlyStopping(mode="up").mode == "auto"
    missing = callbacks.EarlyStopping()
    missing.set_model(model)
    with pytest.warns(UserWarning, match="`val_loss` which is not available. Available metrics are: loss,acc"):
        missing.on_epoch_end(0, {"loss": 1.0, "acc": 0.5})


REDUCE_LR = {
    "patience-2": (lambda c: c.ReduceLROnPlateau(patience=2, verbose=1), _losses(1.0, 1.0, 1.0, 0.5, 0.6, 0.7, 0.8)),
    "cooldown": (lambda c: c.ReduceLROnPlateau(patience=1, cooldown=2, factor=0.5, verbose=1),
                 _losses(*[1.0] * 9)),
    "min-lr": (lambda c: c.ReduceLROnPlateau(patience=0, factor=0.2, min_lr=0.005, verbose=1),
               _losses(*[1.0] * 6)),
    "min-delta": (lambda c: c.ReduceLROnPlateau(patience=1, min_delta=0.1),
                  _losses(1.0, 0.95, 0.8, 0.75, 0.74, 0.5)),
    "mode-max": (lambda c: c.ReduceLROnPlateau(monitor="accuracy", mode="max", patience=1),
                 _losses(0.1, 0.2, 0.2, 0.3, 0.25, key="accuracy")),
    "cooldown-while-improving": (lambda c: c.ReduceLROnPlateau(patience=1, cooldown=3),
                                 _losses(1.0, 1.0, 0.9, 0.8, 0.8, 0.8, 0.8)),
}


@pytest.mark.parametrize("make, logs", REDUCE_LR.values(), ids=REDUCE_LR.keys())
def test_reduce_lr_on_plateau_matches_keras(make, logs, capsys):
    trace, _, _ = _compare_with_keras(make, logs, capsys, attributes=("best", "wait", "cooldown_counter"))
    assert len({lr for _, lr in trace}) > 1


def test_reduce_lr_on_plateau_details(capsys):
    trace, _, out = _compare_with_keras(*REDUCE_LR["cooldown"], capsys)
    # Reductions at epochs 1, 3, 5 and 7: the last epoch of a cooldown already counts towards the patience.
    assert [lr for _, lr in trace] == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625,
                                                     0.00625])
    assert out.count("ReduceLROnPlateau reducing learning rate to") == 4
    assert "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.05.\n" in out
    trace, _, _ = _compare_with_keras(*REDUCE_LR["min-lr"], capsys)
    assert [lr for _, lr in trace] == pytest.approx([0.1, 0.02, 0.005, 0.005, 0.005, 0.005])
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_logs_learning_rate_for_history():
    history = callbacks.History()
    _fit(OURS, [callbacks.ReduceLROnPlateau(patience=1), history],
         _losses(1.0, 1.0, 1.0))
    # The logged rate is the one the epoch trained with, before the epoch's reduction.
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01])


def test_reduce_lr_on_plateau_with_a_real_optimizer():
    model = FakeModel()
    model.optimizer = optimizers.Adam(learning_rate=0.01)
    callback = callbacks.ReduceLROnPlateau(patience=0, factor=0.5, monitor="loss")
    callback.set_model(model)
    callback.on_train_begin()
    for epoch in range(3):
        callback.on_epoch_end(epoch, {"loss": 1.0})
    assert model.optimizer.learning_rate == float(np.float32(np.float32(0.01) * 0.5 * 0.5))


@pytest.mark.parametrize("schedule", [
    lambda epoch, lr: lr * 0.5 if epoch > 0 else lr,
    lambda epoch: 0.1 / (epoch + 1),
    lambda epoch, lr: np.float32(lr + 1.0),
], ids=["epoch-and-lr", "epoch-only", "float32"])
def test_learning_rate_scheduler_matches_keras(schedule, capsys):
    trace, _, out = _compare_with_keras(lambda c: c.LearningRateScheduler(schedule, verbose=1), _losses(1, 1, 1),
                                        capsys)
    assert out.count("LearningRateScheduler setting learning rate to") == 3
    history = callbacks.History()
    _fit(OURS, [callbacks.LearningRateScheduler(schedule), history],
         _losses(1, 1, 1))
    assert history.history["learning_rate"] == [lr for _, lr in trace]


def test_learning_rate_scheduler_rejects_non_floats():
    model = FakeModel()
    callback = callbacks.LearningRateScheduler(lambda epoch: 1)
    callback.set_model(model)
    with pytest.raises(ValueError, match="should be a float"):
        callback.on_epoch_begin(0)


CSV_RUNS = {
    "default": ({}, [{"loss": 0.5, "val_loss": 0.7, "acc": 0.25}, {"loss": 0.4, "val_loss": 0.6, "acc": 0.5}]),
    "separator": ({"separator": ";"}, [{"loss": 0.5, "acc": 1}, {"loss": 0.25, "acc": 2}]),
    "no-val-keys": ({}, [{"loss": 0.5}, {"loss": 0.125}]),
    "missing-and-lists": ({}, [{"loss": 0.5, "val_loss": 0.6, "note": "a,b"},
                               {"loss": 0.5, "note": [1, 2]}]),
}


@pytest.mark.parametrize("append", [False, True], ids=["fresh", "append"])
@pytest.mark.parametrize("kwargs, logs", CSV_RUNS.values(), ids=CSV_RUNS.keys())
def test_csv_logger_matches_keras(kwargs, logs, append, tmp_path, capsys):
    contents = []
    for module in (KERAS, OURS):
        path = tmp_path / f"{'ours' if module is OURS else 'keras'}.csv"
        runs = 2 if append else 1  # appending: a second fit continues the file without a second header
        for _ in range(runs):
            _fit(module, [module.callbacks.CSVLogger(path, append=append, **kwargs)], logs)
        contents.append(path.read_bytes())
    assert contents[1] == contents[0]
    rows = list(csv.reader(io.StringIO(contents[1].decode()), delimiter=kwargs.get("separator", ",")))
    assert len(rows) == 1 + len(logs) * (2 if append else 1)
    assert rows[0][0] == "epoch" and rows[1][0] == "0"


def test_csv_logger_content(tmp_path):
    path = tmp_path / "log.csv"
    _fit(OURS, [callbacks.CSVLogger(str(path))],
         [{"loss": 0.5, "acc": 0.25}, {"loss": 0.375, "acc": 0.5}])
    assert path.read_bytes() == (b"epoch,acc,loss,val_acc,val_loss\r\n"
                                 b"0,0.25,0.5,NA,NA\r\n"
                                 b"1,0.5,0.375,NA,NA\r\n")


def test_csv_logger_epoch_end_before_train_begin_names_the_file(tmp_path):
    path = tmp_path / "log.csv"
    logger = callbacks.CSVLogger(str(path))
    with pytest.raises(RuntimeError, match=r"CSVLogger\(.*log\.csv'\): on_epoch_end before on_train_begin"):
        logger.on_epoch_end(0, {"loss": 0.5})
    assert not path.exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_terminate_on_nan_matches_keras(bad, capsys):
    batch_losses = [[1.0, 0.5, 0.4], [0.3, bad, 0.2], [0.1, 0.1, 0.1]]
    trace, _, out = _compare_with_keras(lambda c: c.TerminateOnNaN(), _losses(1, 1, 1), capsys, batches=3,
                                        batch_losses=batch_losses)
    assert trace[-1][0] and len(trace) == 2
    assert out == "Batch 1: Invalid loss, terminating training\n"
    model = FakeModel()
    raising = callbacks.TerminateOnNaN(raise_error=True)
    raising.set_model(model)
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 4"):
        raising.on_train_batch_end(4, {"loss": bad})
    assert not model.stop_training


def test_lambda_callback():
    calls = []
    callback = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, logs["val_loss"])),
        on_train_begin=lambda logs: calls.append(("train_begin",)),
        on_train_end=lambda logs: calls.append(("train_end", logs["loss"])),
        on_train_batch_begin=lambda batch, logs: calls.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch, logs["loss"])),
        on_test_end=lambda logs: calls.append(("test_end", logs)),
    )
    _fit(OURS, [callback], _losses(0.5, 0.25), batches=1,
         batch_losses=[[3.0], [2.0]])
    callbacks.CallbackList([callback]).on_test_end({"x": np.float32(1.5)})  # a hook given by keyword
    assert calls == [("train_begin",), ("epoch_begin", 0), ("batch_begin", 0), ("batch_end", 0, 3.0),
                     ("epoch_end", 0, 0.5), ("epoch_begin", 1), ("batch_begin", 0), ("batch_end", 0, 2.0),
                     ("epoch_end", 1, 0.25), ("train_end", 1.0), ("test_end", {"x": 1.5})]


def test_history():
    model = FakeModel()
    for run in range(2):
        callback_list = callbacks.CallbackList(add_history=True, model=model)
        assert isinstance(model.history, callbacks.History)
        callback_list.on_train_begin()
        for epoch in range(3):
            callback_list.on_epoch_end(epoch, {"loss": np.float32(epoch + 10 * run), "val_loss": epoch / 2})
        callback_list.on_train_end()
        assert model.history.epoch == [0, 1, 2]
        assert model.history.history == {"loss": [10.0 * run, 10.0 * run + 1, 10.0 * run + 2],
                                          "val_loss": [0.0, 0.5, 1.0]}
        assert all(type(v) is float for values in model.history.history.values() for v in values)
    kept = callbacks.History()
    callback_list = callbacks.CallbackList([kept], add_history=True, model=model)
    assert callback_list.callbacks == [kept] and model.history is kept
    kept.on_train_begin()
    kept.on_epoch_end(0, {"loss": 1.0})
    kept.on_train_begin()  # a new fit with the same History resets the epochs and keeps the metrics
    kept.on_epoch_end(0, {"loss": 2.0})
    assert kept.epoch == [0] and kept.history == {"loss": [1.0, 2.0]}


HOOKS = ["on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end"]
BATCH_HOOKS = ["on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
               "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"]


def test_callback_list_dispatch_and_logs():
    seen = []

    def recorder(hook):
        return lambda *args: seen.append((hook,) + args)

    class Aliased(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("alias_begin", batch, logs))

        def on_batch_end(self, batch, logs=None):
            seen.append(("alias_end", batch, logs))

    model = FakeModel()
    recording = callbacks.LambdaCallback(**{hook: recorder(hook) for hook in HOOKS + BATCH_HOOKS})
    callback_list = callbacks.CallbackList([recording, Aliased()], add_progbar=True, model=model, verbose=0,
                                           epochs=1, steps=2)
    assert recording.model is model and recording.params == {"verbose": 0, "epochs": 1, "steps": 2}
    assert isinstance(callback_list.callbacks[-1], callbacks.ProgbarLogger) and len(callback_list.callbacks) == 3
    logs = {"z": np.float64(2.0), "a": np.array(3, dtype=np.int32), "nested": {"m": np.float32(0.5)}, "s": "text"}
    for hook in HOOKS:
        getattr(callback_list, hook)(logs)
    for hook in BATCH_HOOKS:
        getattr(callback_list, hook)(7, logs)
    expected_logs = {"a": 3.0, "m": 0.5, "s": "text", "z": 2.0}  # sorted, flattened, floats where possible
    recorded = [entry for entry in seen if entry[0].startswith("on_")]
    assert [entry[0] for entry in recorded] == HOOKS + BATCH_HOOKS
    for entry in recorded:
        assert list(entry[-1]) == list(expected_logs) and entry[-1] == expected_logs
    assert [entry for entry in seen if entry[0].startswith("alias")] == [("alias_begin", 7, expected_logs),
                                                                         ("alias_end", 7, expected_logs)]
    callbacks.CallbackList([recording], model=None)
    assert recording.model is model


# --------------------------------------------------------------------------------------------- progress bar

class _TTY(io.StringIO):
    def isatty(self):
        return True


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


def _script(callback_list, clock, steps_dt, metrics, validate=True):
    """A fit of len(steps_dt) epochs: the clock advances by each step's duration; validation inside fit."""
    callback_list.on_train_begin()
    for epoch, durations in enumerate(steps_dt):
        callback_list.on_epoch_begin(epoch)
        for batch, dt in enumerate(durations):
            clock.now += dt
            callback_list.on_train_batch_begin(batch)
            callback_list.on_train_batch_end(batch, metrics(epoch, batch))
        if validate:
            callback_list.on_test_begin()
            callback_list.on_test_batch_end(0, {"loss": 9.0})
            callback_list.on_test_end({"loss": 9.0})
        clock.now += 0.5
        logs = dict(metrics(epoch, len(durations)), **({"val_loss": 0.25 / (epoch + 1)} if validate else {}))
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end()


def _metrics(epoch, batch):
    return {"loss": 2.0 / (batch + 1 + epoch), "mae": 0.0004 * batch, "delta": -0.5 + 0.1 * batch}


def _progbar_output(module, monkeypatch, stdout, verbose, steps, steps_dt, validate=True):
    clock = _Clock()
    monkeypatch.setattr(module.clock_owner, "time", clock)
    monkeypatch.setattr(sys, "stdout", stdout)
    callback_list = module.callbacks.CallbackList(None, add_progbar=True, model=FakeModel(), verbose=verbose,
                                                  epochs=len(steps_dt), steps=steps)
    _script(callback_list, clock, steps_dt, _metrics, validate)
    monkeypatch.undo()
    return stdout.getvalue()


PROGBAR_RUNS = {
    "fast": (3, [[0.01, 0.02, 0.002], [0.0004, 0.1, 0.2]]),
    "slow": (12, [[30.0] * 3 + [0.01] * 9]),  # ETAs past an hour, past a minute
    "many-steps": (150, [[0.02] * 150, [0.001] * 150]),
    "unknown-steps": (None, [[0.1, 0.2, 0.3, 0.4], [0.1, 0.1]]),
}


@pytest.mark.parametrize("verbose", [1, 2, "auto"])
@pytest.mark.parametrize("steps, steps_dt", PROGBAR_RUNS.values(), ids=PROGBAR_RUNS.keys())
def test_progbar_on_a_terminal_matches_keras(steps, steps_dt, verbose, monkeypatch):
    expected = _progbar_output(KERAS, monkeypatch, _TTY(), verbose, steps, steps_dt)
    got = _progbar_output(OURS, monkeypatch, _TTY(), verbose, steps, steps_dt)
    assert got == expected
    assert ("━" in got) == (verbose != 2)


def test_progbar_verbose_2_lines(monkeypatch):
    out = _progbar_output(OURS, monkeypatch, io.StringIO(), 2, 3, [[0.01, 0.02, 0.002], [0.0004, 0.1, 0.2]])
    # (0.032 + 0.5) s / 3 steps; Keras' verbose=2 line writes negative values in scientific notation.
    assert out == ("Epoch 1/2\n3/3 - 1s - 177ms/step - delta: -2.0000e-01 - loss: 0.5000 - mae: 0.0012"
                   " - val_loss: 0.2500\n"
                   "Epoch 2/2\n3/3 - 1s - 267ms/step - delta: -2.0000e-01 - loss: 0.4000 - mae: 0.0012"
                   " - val_loss: 0.1250\n")


def test_progbar_without_a_terminal_prints_final_lines(monkeypatch):
    out = _progbar_output(OURS, monkeypatch, io.StringIO(), 1, 3, [[0.01, 0.02, 0.002], [0.0004, 0.1, 0.2]])
    # The per-step time leaves the first step out: (0.02 + 0.002 + 0.5) s / 2 steps.
    assert out == ("Epoch 1/2\n3/3 ━━━━━━━━━━━━━━━━━━━━ 1s 261ms/step - delta: -0.2000 - loss: 0.5000 - mae: 0.0012"
                   " - val_loss: 0.2500\n"
                   "Epoch 2/2\n3/3 ━━━━━━━━━━━━━━━━━━━━ 1s 400ms/step - delta: -0.2000 - loss: 0.4000 - mae: 0.0012"
                   " - val_loss: 0.1250\n")
    # Without steps, the count seen becomes the target when the epoch ends.
    out = _progbar_output(OURS, monkeypatch, io.StringIO(), 1, None, [[0.5, 2.0]], validate=False)
    assert out == "2/2 ━━━━━━━━━━━━━━━━━━━━ 3s 2s/step - delta: -0.3000 - loss: 0.6667 - mae: 8.0000e-04\n"


def test_progbar_is_quiet_at_verbose_0(monkeypatch):
    logger = callbacks.ProgbarLogger()
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    callback_list = callbacks.CallbackList([logger], model=FakeModel(), verbose=0, epochs=2, steps=2)
    _script(callback_list, _Clock(), [[0.1, 0.1]] * 2, _metrics)
    assert out.getvalue() == ""


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("stage", ["test", "predict"])
def test_progbar_evaluate_and_predict(stage, verbose, tty, monkeypatch):
    def run(module):
        clock = _Clock()
        stdout = _TTY() if tty else io.StringIO()
        monkeypatch.setattr(module.clock_owner, "time", clock)
        monkeypatch.setattr(sys, "stdout", stdout)
        callback_list = module.callbacks.CallbackList(None, add_progbar=True, model=FakeModel(), verbose=verbose,
                                                      epochs=1, steps=4)
        getattr(callback_list, f"on_{stage}_begin")()
        for batch in range(4):
            clock.now += 0.25 * (batch + 1)
            getattr(callback_list, f"on_{stage}_batch_end")(batch, {"loss": 1.0 / (batch + 1)})
        getattr(callback_list, f"on_{stage}_end")({"loss": 0.125} if stage == "test" else None)
        monkeypatch.undo()
        return stdout.getvalue()

    got = run(OURS)
    if tty or verbose == 2:
        assert got == run(KERAS)  # Keras always draws as on a terminal
    if not tty or verbose == 2:
        loss = " - loss: 0.1250" if stage == "test" else ""
        # 2.5 s in all. verbose=1 follows every step and leaves the first out of its estimate: 2.25 s / 3;
        # verbose=2 sees only the end: 2.5 s / 4.
        assert got == {1: f"4/4 {'━' * 20} 2s 750ms/step{loss}\n", 2: f"4/4 - 2s - 625ms/step{loss}\n"}[verbose]


NAN = float("nan")


@pytest.mark.parametrize("make, error, message", [
    (lambda: callbacks.EarlyStopping(patience=-1), ValueError, r"patience: expected an integer >= 0, got -1"),
    (lambda: callbacks.EarlyStopping(patience=1.5), TypeError, r"patience: expected an integer, got 1\.5"),
    (lambda: callbacks.EarlyStopping(patience=True), TypeError, r"patience: expected an integer, got True"),
    (lambda: callbacks.EarlyStopping(min_delta=-0.1), ValueError, r"min_delta: expected a number >= 0"),
    (lambda: callbacks.EarlyStopping(min_delta=NAN), ValueError, r"min_delta: expected a finite number, got nan"),
    (lambda: callbacks.EarlyStopping(min_delta="a"), TypeError, r"min_delta: expected a number, got 'a'"),
    (lambda: callbacks.EarlyStopping(baseline="x"), TypeError, r"baseline: expected a number, got 'x'"),
    (lambda: callbacks.EarlyStopping(baseline=NAN), ValueError, r"baseline: expected a finite number"),
    (lambda: callbacks.EarlyStopping(start_from_epoch=-1), ValueError, r"start_from_epoch: expected an integer >= 0"),
    (lambda: callbacks.EarlyStopping(verbose=-3), ValueError, r"verbose: expected an integer >= 0, got -3"),
    (lambda: callbacks.EarlyStopping(restore_best_weights=1), TypeError, r"restore_best_weights: expected True or"),
    (lambda: callbacks.EarlyStopping(monitor=3), TypeError, r"monitor: expected a string, got 3"),
    (lambda: callbacks.EarlyStopping(mode=None), TypeError, r"mode: expected a string, got None"),
    (lambda: callbacks.ReduceLROnPlateau(factor=1.0), ValueError, r"does not support a factor >= 1\.0"),  # Keras
    (lambda: callbacks.ReduceLROnPlateau(factor=0), ValueError, r"factor: expected a number > 0, got 0\.0"),
    (lambda: callbacks.ReduceLROnPlateau(factor=-1), ValueError, r"factor: expected a number > 0, got -1\.0"),
    (lambda: callbacks.ReduceLROnPlateau(factor=NAN), ValueError, r"factor: expected a finite number, got nan"),
    (lambda: callbacks.ReduceLROnPlateau(cooldown=-1), ValueError, r"cooldown: expected an integer >= 0"),
    (lambda: callbacks.ReduceLROnPlateau(min_lr=-1), ValueError, r"min_lr: expected a number >= 0, got -1\.0"),
    (lambda: callbacks.ReduceLROnPlateau(patience=-2), ValueError, r"patience: expected an integer >= 0"),
    (lambda: callbacks.ModelCheckpoint("m.safetensors", save_freq=0), ValueError, r"Unrecognized save_freq: 0"),
    (lambda: callbacks.ModelCheckpoint("m.safetensors", save_freq=True), ValueError, r"Unrecognized save_freq: True"),
    (lambda: callbacks.ModelCheckpoint("m.safetensors", save_freq=2.0), ValueError, r"Unrecognized save_freq: 2\.0"),
    (lambda: callbacks.ModelCheckpoint("m.safetensors", initial_value_threshold=NAN), ValueError,
     r"initial_value_threshold: expected a finite number"),
    (lambda: callbacks.ModelCheckpoint("m.safetensors", save_best_only="yes"), TypeError, r"save_best_only: expected"),
    (lambda: callbacks.BackupAndRestore("d", save_freq=-3), ValueError, r"Unrecognized save_freq: -3"),
    (lambda: callbacks.BackupAndRestore("d", delete_checkpoint=None), TypeError, r"delete_checkpoint: expected"),
    (lambda: callbacks.CSVLogger("x.csv", separator=3), ValueError, r"separator: expected a string of one character"),
    (lambda: callbacks.CSVLogger("x.csv", append="no"), TypeError, r"append: expected True or False, got 'no'"),
    (lambda: callbacks.TerminateOnNaN(raise_error=3), TypeError, r"raise_error: expected True or False, got 3"),
    (lambda: callbacks.LearningRateScheduler(3), TypeError, r"schedule: expected a function"),
])
def test_callback_arguments_are_checked_when_constructed(make, error, message):
    """Every numeric (and boolean, string) argument is checked when the callback is made, with an error naming
    the argument and the value: Keras' error where Keras raises one, and where Keras accepts nonsense
    (negative patience, factor 0, NaN) ours."""
    with pytest.raises(error, match=message):
        make()


def test_valid_callback_arguments_are_kept_as_plain_values():
    early = callbacks.EarlyStopping(patience=np.int64(3), min_delta=np.float32(0.5), baseline=1, verbose=1)
    assert (early.patience, early.min_delta, early.baseline) == (3, 0.5, 1.0)
    assert type(early.patience) is int and type(early.baseline) is float
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, min_lr=1e-6, cooldown=2)
    assert (reduce.factor, reduce.min_lr, reduce.cooldown) == (0.5, 1e-6, 2)
    assert callbacks.ModelCheckpoint("m.safetensors", save_freq=np.int32(4))._frequency._every == 4


def test_callback_states_round_trip_and_bad_states_are_refused():
    """get_state/set_state: what BackupAndRestore backs up; a malformed state names the entry."""
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", patience=2)
    reduce.wait, reduce.cooldown_counter, reduce.best = 1, 3, 0.25
    other = callbacks.ReduceLROnPlateau(monitor="loss", patience=2)
    other.set_state(reduce.get_state())
    assert (other.wait, other.cooldown_counter, other.best) == (1, 3, 0.25)
    with pytest.raises(ValueError, match=r"wait: expected an integer >= 0, got -1"):
        other.set_state({**reduce.get_state(), "wait": -1})
    with pytest.raises(ValueError, match=r"expected a state with the entries \['best', 'cooldown_counter', 'wait'\]"):
        other.set_state({"wait": 1})
    with pytest.raises(ValueError, match=r"best: expected a number or None, got 'x'"):
        other.set_state({**reduce.get_state(), "best": "x"})
    checkpoint = callbacks.ModelCheckpoint("m.safetensors", save_freq=3)
    with pytest.raises(ValueError, match=r"batches_since_save: expected fewer than save_freq=3, got 3"):
        checkpoint.set_state({"best": None, "batches_since_save": 3})
    assert callbacks.TerminateOnNaN().get_state() == {}
    with pytest.raises(ValueError, match="expected a state with the entries"):
        callbacks.TerminateOnNaN().set_state({"wait": 1})
