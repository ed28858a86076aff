"""Killed training loses nothing.

A fit with BackupAndRestore runs in a subprocess, is killed with SIGKILL in the middle of an epoch (after a
backup exists), and is started again: it resumes from the backup and ends with the weights of an
uninterrupted run with the same seed, bit for bit. A fault between writing a checkpoint's temporary file and
renaming it (an exception, or SIGKILL at that very point) leaves the previous checkpoint intact and loadable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstm_native import layers, saving, utils
from lstm_native.models import Sequential

EPOCHS = 4

TRAIN = r"""
import json, os, signal, sys, time
import numpy as np
import lstm_native
from lstm_native import callbacks, layers, saving, utils
from lstm_native.models import Sequential

backup_dir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
utils.set_random_seed(1234)
rng = np.random.default_rng(5)
x = rng.standard_normal((96, 6, 3)).astype(np.float32)
y = rng.standard_normal((96, 2)).astype(np.float32)
model = Sequential([layers.Input(shape=(6, 3)),
                    layers.LSTM(8, dropout=0.2, recurrent_dropout=0.1, zoneout_h=0.1, return_sequences=True),
                    layers.Dropout(0.3, seed=3), layers.LSTM(5, peephole="full"), layers.Dense(2)])
model.compile(loss="mse", optimizer="adam")

if mode == "kill-at-rename":  # SIGKILL between the temporary file's write and its rename, at the 2nd save
    saves = [0]
    replace = os.replace
    def dying_replace(source, target):
        if source.endswith(".tmp"):  # the temporary, written and flushed
            saves[0] += 1
            if saves[0] == 2:
                print("DYING", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        replace(source, target)
    os.replace = dying_replace

class Marker(callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"EPOCH_BEGIN {epoch}", flush=True)
    def on_epoch_end(self, epoch, logs=None):  # BackupAndRestore writes its backup after every other callback
        print(f"EPOCH_END {epoch}", flush=True)
    def on_train_batch_end(self, batch, logs=None):
        print(f"BATCH {batch}", flush=True)
        if mode != "plain":
            time.sleep(0.02)  # time for the parent to kill mid-epoch

epochs, plateau = """ + str(EPOCHS) + r""", []
if mode.startswith("plateau"):  # callbacks that act, from the monitored loss: their states must resume too
    epochs, mode = 8, mode.removeprefix("plateau-")
    # min_delta=10: no epoch after the first improves; the learning rate halves after 2 epochs without
    # improvement, then waits 1 epoch (cooldown); training stops 3 epochs after the first, with its weights
    plateau = [callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_delta=10),
               callbacks.EarlyStopping(monitor="loss", patience=3, min_delta=10, restore_best_weights=True)]
model.fit(x, y, batch_size=8, epochs=epochs, shuffle=True, verbose=0,
          callbacks=[callbacks.BackupAndRestore(backup_dir), *plateau, Marker()])
# the weights, and the optimizer's state (Adam's moments, the learning rate, the step count): the whole training
np.savez(out, *model.get_weights(), *(value for _, value in sorted(model.optimizer.variables().items())))
with open(out + ".json", "w") as f:
    json.dump({"epoch": model.history.epoch, "history": model.history.history}, f)
print("DONE", flush=True)
"""


def train(tmp_path, backup_dir, out, mode="plain", **kwargs):
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(backup_dir), str(out), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=dict(os.environ, OMP_NUM_THREADS="2"), **kwargs)


def history(path):
    return json.loads(Path(f"{path}.json").read_text())


def weights(path):
    with np.load(path) as data:
        return [data[f"arr_{k}"] for k in range(len(data.files))]


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes(), f"max difference {np.max(np.abs(u - v))}"


def run_to_the_end(tmp, mode="plain"):
    done = train(tmp, tmp / "backup", tmp / "w.npz", mode=mode)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0 and "DONE" in out, err[-3000:]
    return weights(tmp / "w.npz")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run_to_the_end(tmp_path_factory.mktemp("uninterrupted"))


def kill_in_epoch_2(tmp_path, backup, mode):
    """Starts a fit and kills it with SIGKILL in epoch 2 (0-based), after its 3rd batch: the backup of epoch
    1's end exists. Returns the number of progress lines seen."""
    run = train(tmp_path, backup, tmp_path / "w.npz", mode=mode)
    seen = []
    killed_at = None
    deadline = time.monotonic() + 300
    # kill in epoch 2 (0-based), after its 3rd batch: the backup of epoch 1's end exists
    while time.monotonic() < deadline:
        line = run.stdout.readline()
        if not line:
            break
        seen.append(line.strip())
        if "EPOCH_BEGIN 2" in seen and line.startswith("BATCH 3"):
            assert (backup / "latest.safetensors").exists()
            run.send_signal(signal.SIGKILL)
            killed_at = len(seen)
            break
    run.communicate(timeout=60)
    assert killed_at is not None, f"never reached mid-epoch 2: {seen[-10:]}"
    assert run.returncode == -signal.SIGKILL
    assert not (tmp_path / "w.npz").exists()
    return killed_at


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, uninterrupted):
    backup = tmp_path / "backup"
    killed_at = kill_in_epoch_2(tmp_path, backup, "slow")
    # started again: resumes at epoch 2 from the backup
    again = train(tmp_path, backup, tmp_path / "w.npz", mode="slow")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0 and "DONE" in out, err[-3000:]
    assert out.splitlines()[0] == "EPOCH_BEGIN 2", out.splitlines()[:3]
    assert_bitwise_equal(weights(tmp_path / "w.npz"), uninterrupted)
    assert not backup.exists()  # deleted at the end of a completed fit
    print(f"kill-and-resume: killed mid-epoch 2 after {killed_at} progress lines; resumed weights bitwise equal")


def test_sigkill_between_write_and_rename_keeps_the_previous_checkpoint(tmp_path, uninterrupted):
    backup = tmp_path / "backup"
    run = train(tmp_path, backup, tmp_path / "w.npz", mode="kill-at-rename")
    out, err = run.communicate(timeout=300)
    assert run.returncode == -signal.SIGKILL and "DYING" in out, (out[-2000:], err[-2000:])
    assert "EPOCH_END 1" in out and "EPOCH_BEGIN 2" not in out  # died in the backup of epoch 1's end
    latest = backup / "latest.safetensors"
    assert latest.exists()
    # the previous checkpoint (epoch 0's end) is intact and loadable
    model = Sequential([layers.Input(shape=(6, 3)),
                        layers.LSTM(8, dropout=0.2, recurrent_dropout=0.1, zoneout_h=0.1, return_sequences=True),
                        layers.Dropout(0.3, seed=3), layers.LSTM(5, peephole="full"), layers.Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    _, state = saving.read_checkpoint(model, latest)
    assert state["epoch"] == 1
    # and a restart resumes from it to the uninterrupted result
    again = train(tmp_path, backup, tmp_path / "w.npz")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert out.splitlines()[0] == "EPOCH_BEGIN 1"
    assert_bitwise_equal(weights(tmp_path / "w.npz"), uninterrupted)


def test_a_failed_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    utils.set_random_seed(0)
    model = Sequential([layers.Input(shape=(4, 2)), layers.LSTM(3), layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.ones((8, 4, 2), np.float32), np.zeros((8, 1), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "ckpt.safetensors"
    saving.save_checkpoint(model, path, {"epoch": 1})
    before = path.read_bytes()
    model.fit(x, y, epochs=1, verbose=0)  # new weights

    def failing_replace(src, dst):
        raise OSError("injected fault between write and rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected fault"):
        saving.save_checkpoint(model, path, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]  # the temporary file is gone
    _, state = saving.read_checkpoint(model, path)
    assert state == {"epoch": 1}
    # the same through ModelCheckpoint's path: save_model
    model_path = tmp_path / "model.safetensors"
    model.save(model_path)
    saved = model_path.read_bytes()
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        model.save(model_path)
    monkeypatch.undo()
    assert model_path.read_bytes() == saved
    from lstm_native.models import load_model
    load_model(model_path)


def test_the_states_of_early_stopping_and_reduce_lr_on_plateau_resume_too(tmp_path):
    """With ReduceLROnPlateau and EarlyStopping acting (the learning rate halved, training stopped early, the
    best weights restored), a fit killed in epoch 2 and resumed ends as the uninterrupted fit does, bit for
    bit: weights, optimizer state and learning rate, the epochs run and their logs."""
    (tmp_path / "whole").mkdir()
    expected = run_to_the_end(tmp_path / "whole", mode="plateau-plain")
    expected_history = history(tmp_path / "whole" / "w.npz")
    assert expected_history["epoch"] == [0, 1, 2, 3]  # stopped early, 3 epochs without improvement
    np.testing.assert_array_equal(np.float32(expected_history["history"]["learning_rate"]),
                                  np.float32([0.001, 0.001, 0.001, 0.0005]))  # halved at epoch 2's end
    backup = tmp_path / "backup"
    kill_in_epoch_2(tmp_path, backup, "plateau-slow")
    again = train(tmp_path, backup, tmp_path / "w.npz", mode="plateau-slow")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0 and "DONE" in out, err[-3000:]
    assert out.splitlines()[0] == "EPOCH_BEGIN 2", out.splitlines()[:3]
    assert_bitwise_equal(weights(tmp_path / "w.npz"), expected)
    resumed = history(tmp_path / "w.npz")
    assert resumed["epoch"] == expected_history["epoch"][2:]
    assert resumed["history"] == {key: values[2:] for key, values in expected_history["history"].items()}
    assert not backup.exists()
