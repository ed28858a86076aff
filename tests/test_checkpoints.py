"""ModelCheckpoint (Keras 3 semantics, .safetensors files) and BackupAndRestore (an interrupted fit resumes and
ends exactly where an uninterrupted one does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from lstm_native import callbacks, layers, saving, utils
from lstm_native.models import Sequential, load_model

T, I, CLASSES = 4, 3, 2


def data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, T, I)).astype(np.float32), np.eye(CLASSES, dtype=np.float32)[rng.integers(0, 2, n)]


def model(seed=0):
    """Random numbers everywhere: initializers, shuffling, dropout from the library's generator and from
    layers' own (seeded) ones, inside a Bidirectional too."""
    utils.set_random_seed(seed)
    result = Sequential([
        layers.Input((T, I)),
        layers.Bidirectional(layers.LSTM(6, return_sequences=True, dropout=0.2, recurrent_dropout=0.1, seed=3)),
        layers.Dropout(0.3),
        layers.LSTM(5, dropout=0.1),
        layers.Dropout(0.2, seed=11),
        layers.Dense(CLASSES, activation="softmax"),
    ])
    result.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return result


def fit(m, callback_list=(), epochs=4, **kwargs):
    x, y = data()
    return m.fit(x, y, batch_size=8, epochs=epochs, validation_split=0.2, verbose=0, callbacks=list(callback_list),
                 **kwargs)


# --------------------------------------------------------------------------------------------- ModelCheckpoint

def test_filepath_templates_name_each_epoch_and_create_directories(tmp_path):
    template = str(tmp_path / "runs" / "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors")
    m = model()
    history = fit(m, [callbacks.ModelCheckpoint(template)], epochs=3)
    expected = {f"ckpt-{e + 1:02d}-{loss:.3f}.safetensors" for e, loss in enumerate(history.history["val_loss"])}
    assert set(os.listdir(tmp_path / "runs")) == expected
    last = tmp_path / "runs" / sorted(expected)[-1]
    restored = load_model(last)
    assert restored.optimizer.iterations == m.optimizer.iterations == 6
    x, _ = data()
    np.testing.assert_array_equal(restored.predict(x), m.predict(x))


def test_batch_level_saves_fill_in_the_batch(tmp_path):
    fit(model(), [callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.safetensors"), save_freq=3)], epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["e2-b1.safetensors", "e3-b2.safetensors"]  # 2 batches per epoch


def test_weights_only_files_hold_no_model(tmp_path):
    path = tmp_path / "weights.safetensors"
    m = model()
    fit(m, [callbacks.ModelCheckpoint(str(path), save_weights_only=True)], epochs=1)
    with pytest.raises(ValueError, match="no 'config' entry"):
        load_model(path)
    other = model(seed=1)
    other.load_weights(path)
    x, _ = data()
    np.testing.assert_array_equal(other.predict(x), m.predict(x))


def scripted(tmp_path, values, monitor="val_loss", logged=None, **kwargs):
    """Drives a checkpoint callback with one value of `logged` (default: the monitored key) per epoch: the
    epochs (1-based) it saved at."""
    callback = callbacks.ModelCheckpoint(str(tmp_path / "{epoch}.safetensors"), monitor=monitor,
                                         save_best_only=True, **kwargs)
    m = model()
    callback.set_model(m)
    saved = []
    for epoch, value in enumerate(values):
        before = set(os.listdir(tmp_path))
        callback.on_epoch_end(epoch, {logged or monitor: value})
        saved += [int(name.split(".")[0]) for name in set(os.listdir(tmp_path)) - before]
    return saved


@pytest.mark.parametrize("monitor, mode, values, expected", [
    ("val_loss", "auto", [0.5, 0.6, 0.4, 0.4, 0.3], [1, 3, 5]),
    ("val_accuracy", "auto", [0.5, 0.6, 0.4, 0.7, 0.7], [1, 2, 4]),
    ("val_loss", "max", [0.5, 0.6, 0.4], [1, 2]),
    ("custom", "min", [3.0, 1.0, 2.0], [1, 2]),
])
def test_save_best_only_follows_the_mode(tmp_path, monitor, mode, values, expected):
    assert scripted(tmp_path, values, monitor=monitor, mode=mode) == expected


def test_initial_value_threshold_is_the_first_value_to_beat(tmp_path):
    assert scripted(tmp_path, [0.5, 0.35, 0.2], initial_value_threshold=0.4) == [2, 3]


def test_save_best_only_without_the_monitored_value_warns_and_saves(tmp_path):
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        assert scripted(tmp_path, [1.0], logged="loss") == [1]


def test_an_undeterminable_direction_asks_for_a_mode(tmp_path):
    with pytest.raises(ValueError, match="mode='max'"):
        scripted(tmp_path, [1.0], monitor="custom")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"a \.keras name means a Keras file.*safetensors format.*interop\.to_keras"):
        callbacks.ModelCheckpoint(str(tmp_path / "model.keras"))
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint(str(tmp_path / "m.safetensors"), save_freq="batch")
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        fit(model(), [callbacks.ModelCheckpoint(str(tmp_path / "{nonexistent}.safetensors"))], epochs=1)


# -------------------------------------------------------------------------------------------- BackupAndRestore

class Interrupt(callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError(f"interrupted at epoch {epoch}")


def test_an_interrupted_fit_resumes_bitwise(tmp_path):
    uninterrupted = model()
    fit(uninterrupted, epochs=5)
    generator_state = utils.get_rng_state()
    backup = tmp_path / "backup"
    interrupted = model()
    with pytest.raises(RuntimeError, match="interrupted at epoch 2"):
        fit(interrupted, [callbacks.BackupAndRestore(backup), Interrupt(2)], epochs=5)
    assert os.listdir(backup) == ["latest.safetensors"]
    resumed = model(seed=99)  # another process: other initial weights, another generator state
    history = fit(resumed, [callbacks.BackupAndRestore(backup)], epochs=5)
    assert history.epoch == [2, 3, 4]
    for ours, theirs in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations == 10
    assert utils.get_rng_state() == generator_state
    assert not backup.exists()  # deleted once the fit completed
    assert fit(resumed, epochs=1).epoch == [0]  # the resumed epoch does not stick to the model


def test_the_backup_stays_with_delete_checkpoint_false_and_the_next_fit_starts_past_it(tmp_path):
    fit(model(), [callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)], epochs=2)
    assert os.listdir(tmp_path) == ["latest.safetensors"]
    assert fit(model(), [callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)], epochs=3).epoch == [2]


def test_batch_level_backups_restart_their_epoch(tmp_path):
    with pytest.raises(RuntimeError):
        fit(model(), [callbacks.BackupAndRestore(tmp_path, save_freq=3), Interrupt(2)], epochs=4)
    # 2 batches per epoch: the one backup came after the third batch, the first of epoch 1 (0-based)
    assert fit(model(), [callbacks.BackupAndRestore(tmp_path, save_freq=3)], epochs=4).epoch == [1, 2, 3]


def test_a_damaged_backup_is_an_error_before_anything_changes(tmp_path):
    m = model()
    fit(m, [callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)], epochs=1)
    path = tmp_path / "latest.safetensors"
    restore, state = saving.read_checkpoint(m, path)
    saving.save_checkpoint(m, path, {**state, "rng": {"bit_generator": "MT19937"}})
    fresh = model(seed=5)
    weights, generator_state = fresh.get_weights(), utils.get_rng_state()
    with pytest.raises(ValueError, match="latest.safetensors: training_state: not a PCG64 generator state"):
        fit(fresh, [callbacks.BackupAndRestore(tmp_path)], epochs=2)
    saving.save_checkpoint(m, path, {**state, "epoch": "2"})
    with pytest.raises(ValueError, match="not the one of a backup of this model"):
        fit(fresh, [callbacks.BackupAndRestore(tmp_path)], epochs=2)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        fit(fresh, [callbacks.BackupAndRestore(tmp_path)], epochs=2)
    for old, new in zip(weights, fresh.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert utils.get_rng_state() == generator_state and fresh.optimizer.iterations == 0


def test_backup_and_restore_arguments():
    with pytest.raises(ValueError, match="Empty `backup_dir`"):
        callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.BackupAndRestore("somewhere", save_freq=0)


LOCKING_FIT = r"""
import sys, time
import numpy as np
from lstm_native import callbacks, layers, utils
from lstm_native.models import Sequential

utils.set_random_seed(0)
model = Sequential([layers.Input((4, 3)), layers.LSTM(4), layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
x, y = np.ones((16, 4, 3), np.float32), np.zeros((16, 1), np.float32)

class Slow(callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"EPOCH {epoch}", flush=True)
        time.sleep(float(sys.argv[2]) if epoch else 0)  # from epoch 1 on, the backup of epoch 0 exists

try:
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[callbacks.BackupAndRestore(sys.argv[1]), Slow()])
except RuntimeError as error:
    print(f"REFUSED {error}", flush=True)
    sys.exit(3)
print("DONE", flush=True)
"""


def _locking_fit(backup, pause):
    return subprocess.Popen([sys.executable, "-c", LOCKING_FIT, str(backup), str(pause)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_line(process, prefix):
    for line in process.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no {prefix!r} line: {process.communicate()}")


def test_two_processes_cannot_share_a_backup_directory(tmp_path):
    """While one process fits with BackupAndRestore on a directory, a second one is refused with an error that
    names the directory, and touches nothing; the first ends normally and cleans up."""
    backup = tmp_path / "backup"
    first = _locking_fit(backup, 0.5)
    _wait_for_line(first, "EPOCH 1")
    second = _locking_fit(backup, 0)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 3, (out, err)
    assert f"REFUSED BackupAndRestore: {backup} is in use by another fit" in out
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "DONE" in out, err[-2000:]
    assert not backup.exists()  # the first fit's cleanup, with nothing of the second left behind


def test_the_lock_of_a_killed_process_is_released(tmp_path):
    """A fit killed with SIGKILL leaves its backup, not its lock: the next fit resumes from the backup."""
    backup = tmp_path / "backup"
    killed = _locking_fit(backup, 60)
    _wait_for_line(killed, "EPOCH 1")
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert (backup / "latest.safetensors").exists()
    again = _locking_fit(backup, 0)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and out.splitlines() == ["EPOCH 1", "EPOCH 2", "DONE"], (out, err[-2000:])


def test_another_thread_cannot_share_a_backup_directory_but_the_same_thread_takes_over(tmp_path):
    backup = tmp_path / "backup"
    holder = callbacks.BackupAndRestore(backup)
    holder.on_train_begin()  # a fit of this thread that never ended (an exception ends it without a hook)
    errors = []

    def other_fit():
        try:
            callbacks.BackupAndRestore(backup).on_train_begin()
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=other_fit, name="other")
    thread.start()
    thread.join()
    assert len(errors) == 1 and f"{backup} is in use by another fit of this process" in errors[0]
    fit(model(), [callbacks.BackupAndRestore(backup)], epochs=1)  # this thread's next fit takes it over
    assert not backup.exists()


def test_a_resume_with_other_stateful_callbacks_is_refused(tmp_path):
    class Interrupt(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        fit(model(), [callbacks.BackupAndRestore(backup), callbacks.EarlyStopping(patience=5), Interrupt()])
    with pytest.raises(ValueError, match=r"holds the states of the callbacks \['EarlyStopping'\], but this fit's "
                                         r"callbacks with a state are \['ReduceLROnPlateau'\]"):
        fit(model(), [callbacks.BackupAndRestore(backup), callbacks.ReduceLROnPlateau()])
    history = fit(model(), [callbacks.BackupAndRestore(backup), callbacks.EarlyStopping(patience=5)])
    assert history.epoch == [2, 3]
