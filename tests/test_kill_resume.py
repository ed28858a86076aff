"""Killed training loses nothing.

A fit with BackupAndRestore runs in a subprocess, is killed with SIGKILL in the middle of an epoch (after a
backup exists), and is started again: it resumes from the backup and ends with the weights of an
uninterrupted run with the same seed, bit for bit. A fault between writing a checkpoint's temporary file and
renaming it (an exception, or SIGKILL at that very point) leaves the previous checkpoint intact and loadable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstm_native import callbacks, layers, saving, utils
from lstm_native.models import Sequential

EPOCHS = 4

TRAIN = r"""
import os, signal, sys, time
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
    def on_epoch_end(self, epoch, logs=None):  # after BackupAndRestore (listed first) wrote its backup
        print(f"BACKED_UP {epoch}", flush=True)
    def on_train_batch_end(self, batch, logs=None):
        print(f"BATCH {batch}", flush=True)
        if mode != "plain":
            time.sleep(0.02)  # time for the parent to kill mid-epoch

model.fit(x, y, batch_size=8, epochs=""" + str(EPOCHS) + r""", shuffle=True, verbose=0,
          callbacks=[callbacks.BackupAndRestore(backup_dir), Marker()])
np.savez(out, *model.get_weights())
print("DONE", flush=True)
"""


def train(tmp_path, backup_dir, out, mode="plain", **kwargs):
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(backup_dir), str(out), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=dict(os.environ, OMP_NUM_THREADS="2"), **kwargs)


def weights(path):
    with np.load(path) as data:
        return [data[f"arr_{k}"] for k in range(len(data.files))]


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes(), f"max difference {np.max(np.abs(u - v))}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    done = train(tmp, tmp / "backup", tmp / "w.npz")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0 and "DONE" in out, err[-3000:]
    return weights(tmp / "w.npz")


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, uninterrupted):
    backup = tmp_path / "backup"
    run = train(tmp_path, backup, tmp_path / "w.npz", mode="slow")
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
    assert "BACKED_UP 0" in out and "BACKED_UP 1" not in out
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
