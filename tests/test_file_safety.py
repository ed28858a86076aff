"""How model files are opened, read and written (lstm_native._files, through lstm_native.saving): special
files as sources and targets, names of other formats, permissions, symlinks, stale temporaries, signals
during a save, a file rewritten while it is read, and odd paths."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lstm_native import _files, callbacks, interop, layers, saving
from lstm_native.models import Sequential, load_model

T, I = 3, 2


def small_model(compiled=True):
    model = Sequential([layers.Input((T, I)), layers.LSTM(4), layers.Dense(2)])
    if compiled:
        model.compile(optimizer="adam", loss="mse")
    return model


def fit_once(model, *callback_list):
    x = np.ones((4, T, I), np.float32)
    model.fit(x, np.zeros((4, 2), np.float32), epochs=1, verbose=0, callbacks=list(callback_list))


def save_entry_points():
    """Every way a model file is written: name -> function(model, path)."""
    return {
        "save": lambda model, path: model.save(path),
        "save_weights": lambda model, path: model.save_weights(path),
        "save_checkpoint": lambda model, path: saving.save_checkpoint(model, path, {"epoch": 0}),
        "ModelCheckpoint": lambda model, path: fit_once(model, callbacks.ModelCheckpoint(path)),
        "ModelCheckpoint-weights": lambda model, path: fit_once(model, callbacks.ModelCheckpoint(
            path, save_weights_only=True)),
    }


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def temporaries(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


# ------------------------------------------------------------------------------------- names of other formats

@pytest.mark.parametrize("entry", list(save_entry_points()))
@pytest.mark.parametrize("name", ["m.keras", "m.h5", "w.weights.h5", "m.HDF5", "m.pt", "m.onnx"])
def test_every_save_entry_point_refuses_names_of_other_formats(tmp_path, entry, name):
    path = tmp_path / name
    with pytest.raises(ValueError, match=r"safetensors format.*lstm_native\.interop\.to_keras"):
        save_entry_points()[entry](small_model(), path)
    assert os.listdir(tmp_path) == []
    assert callable(interop.to_keras)  # the function the message points to exists


def test_other_names_are_saved(tmp_path):
    for name in ("model.safetensors", "model", "model.st", "model.bin"):
        model = small_model()
        model.save(tmp_path / name)
        assert load_model(tmp_path / name).get_config() == model.get_config()


# ------------------------------------------------------------------------------------ permissions, symlinks

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_the_permissions_the_umask_gives(tmp_path, mask):
    for entry, save in save_entry_points().items():
        path = tmp_path / f"{entry}.safetensors"
        with umask(mask):
            save(small_model(), path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask, entry


def test_saving_over_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.safetensors"
    small_model().save(path)
    os.chmod(path, 0o640)
    with umask(0o022):
        small_model().save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "model.safetensors"
    small_model(compiled=False).save(real)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(os.path.join("runs", "model.safetensors"))
    model = small_model()
    fit_once(model)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("runs", "model.safetensors")
    assert load_model(real).compiled  # the file the link points to holds the new model
    assert temporaries(tmp_path) == temporaries(tmp_path / "runs") == []


# ---------------------------------------------------------------------------------- targets that are not files

def special_targets(tmp_path):
    """(name, path) of things that exist and are not regular files; a device node only where we may make one."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "directory").mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "socket"))
    (tmp_path / "link-to-fifo").symlink_to("fifo")
    targets = [("fifo", tmp_path / "fifo"), ("directory", tmp_path / "directory"),
               ("socket", tmp_path / "socket"), ("symlink to a FIFO", tmp_path / "link-to-fifo")]
    with contextlib.suppress(PermissionError):  # a /dev/null-like node: only as root
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets.append(("character device", tmp_path / "null"))
    return targets, listener


@pytest.mark.parametrize("entry", list(save_entry_points()))
def test_saving_onto_what_is_not_a_regular_file_is_refused(tmp_path, entry):
    targets, listener = special_targets(tmp_path)
    with listener:
        for kind, path in targets:
            before = os.lstat(path)
            with pytest.raises(ValueError, match=re.escape(f"{path}: exists and is ") + ".*, not a regular file"):
                save_entry_points()[entry](small_model(), path)
            after = os.lstat(path)
            assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode), kind  # left as it was
    assert temporaries(tmp_path) == []


# ----------------------------------------------------------------------------------- reading what is not a file

LOADERS = textwrap.dedent("""
    import json, sys
    from lstm_native import callbacks, layers, saving
    from lstm_native.models import Sequential, load_model
    model = Sequential([layers.Input((3, 2)), layers.LSTM(4), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    loaders = {"load_model": load_model, "load_weights": model.load_weights,
               "read_checkpoint": lambda path: saving.read_checkpoint(model, path)}
    results = {}
    for path in sys.argv[1:]:
        for name, load in loaders.items():
            try:
                load(path)
                results[f"{name} {path}"] = "loaded"
            except ValueError as error:
                results[f"{name} {path}"] = str(error)
            except Exception as error:
                results[f"{name} {path}"] = f"{type(error).__name__}: {error}"
    print(json.dumps(results))
""")


def test_every_loader_refuses_what_is_not_a_regular_file_without_hanging(tmp_path):
    targets, listener = special_targets(tmp_path)
    paths = [path for _, path in targets] + ["/dev/null"]  # only opened for reading
    with listener:
        done = subprocess.run([sys.executable, "-c", LOADERS, *map(str, paths)], capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert len(results) == 3 * len(paths)
    for key, message in results.items():
        path = key.split(" ", 1)[1]
        assert message.startswith(f"{path}: is a ") and message.endswith(", not a regular file"), (key, message)


BACKUP_RESTORER = textwrap.dedent("""
    import sys
    import numpy as np
    from lstm_native import callbacks, layers
    from lstm_native.models import Sequential
    model = Sequential([layers.Input((3, 2)), layers.LSTM(4), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    try:
        model.fit(np.ones((4, 3, 2), np.float32), np.zeros((4, 2), np.float32), epochs=1, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(sys.argv[1])])
    except ValueError as error:
        print(error)
""")


def test_backup_and_restore_refuses_a_backup_that_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "latest.safetensors")
    done = subprocess.run([sys.executable, "-c", BACKUP_RESTORER, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == f"{tmp_path / 'latest.safetensors'}: is a FIFO, not a regular file", done.stderr
    assert stat.S_ISFIFO(os.lstat(tmp_path / "latest.safetensors").st_mode)


# ------------------------------------------------------------------------------------- a file rewritten in place

REWRITER = textwrap.dedent("""
    import os, sys, time
    path, seconds = sys.argv[1], float(sys.argv[2])
    content = open(path, "rb").read()
    end = time.monotonic() + seconds
    with open(path, "r+b") as f:  # in place: the same inode, truncated and written again
        while time.monotonic() < end:
            f.truncate(len(content) // 3)
            f.seek(0)
            f.write(content)
            f.flush()
""")

LOADER_LOOP = textwrap.dedent("""
    import sys, time
    from lstm_native.models import load_model
    path, seconds = sys.argv[1], float(sys.argv[2])
    loaded = refused = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            load_model(path, compile=False)
            loaded += 1
        except ValueError as error:
            assert str(error).startswith(path + ": "), error
            refused += 1
    print(loaded, refused)
""")


def test_a_file_rewritten_while_it_loads_is_an_error_not_a_signal(tmp_path):
    model = Sequential([layers.Input((T, 64)), layers.LSTM(256), layers.Dense(2)])  # about 1 MB
    path = str(tmp_path / "m.safetensors")
    model.save(path)
    seconds = "4"
    writer = subprocess.Popen([sys.executable, "-c", REWRITER, path, seconds])
    try:
        done = subprocess.run([sys.executable, "-c", LOADER_LOOP, path, seconds], capture_output=True, text=True,
                              timeout=120)
    finally:
        writer.wait(timeout=60)
    assert done.returncode == 0, f"the loader exited with {done.returncode} (negative: a signal)\n{done.stderr[-2000:]}"
    loaded, refused = map(int, done.stdout.split())
    assert refused > 0, (loaded, refused)


# ------------------------------------------------------------------------------------------ stale temporaries

def test_a_save_removes_the_stale_temporaries_of_its_own_target_only(tmp_path):
    path = tmp_path / "m.safetensors"
    old = time.time() - 3600

    def temporary(name, age=old):
        (tmp_path / name).write_bytes(b"partial")
        os.utime(tmp_path / name, (age, age))
        return name

    stale = temporary(".m.safetensors.0123456789ab.tmp")  # left by a writer killed mid-save
    recent = temporary(".m.safetensors.00000000000a.tmp", age=time.time())  # may still be getting its lock
    other_target = temporary(".n.safetensors.0123456789ab.tmp")
    not_ours = temporary(".m.safetensors.backup.tmp")
    live = temporary(".m.safetensors.fedcba987654.tmp")
    with open(tmp_path / live, "rb") as held:  # as a living writer holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        small_model().save(path)
    assert temporaries(tmp_path) == sorted([recent, other_target, not_ours, live])
    assert stale not in os.listdir(tmp_path) and load_model(path).compiled


def test_a_long_name_gets_a_temporary_within_name_max_that_it_recognises(tmp_path):
    name = "é" * 100 + "x" * 40 + ".safetensors"  # 252 bytes
    assert len(os.fsencode(name)) == 252
    small_model().save(tmp_path / name)
    assert load_model(tmp_path / name).compiled
    held = {}

    def fake_temporary_writer(file):  # a save that dies between writing and renaming, leaving its temporary
        file.write(b"partial")
        held["names"] = temporaries(tmp_path)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _files.replace_file(tmp_path / name, fake_temporary_writer)
    (left,) = held["names"]
    assert len(os.fsencode(left)) <= 255 and left.startswith(".ééé")
    assert temporaries(tmp_path) == []  # the interrupted writer removed it; now leave one as a killed one would
    (tmp_path / left).write_bytes(b"partial")
    os.utime(tmp_path / left, (time.time() - 3600,) * 2)
    small_model().save(tmp_path / name)
    assert temporaries(tmp_path) == []


CONCURRENT_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from lstm_native import layers
    from lstm_native.models import Sequential
    model = Sequential([layers.Input((3, 2)), layers.LSTM(int(sys.argv[2])), layers.Dense(2)])
    for _ in range(25):
        model.save(sys.argv[1])
""")


def test_two_processes_saving_one_target_each_write_a_complete_file(tmp_path):
    path = tmp_path / "m.safetensors"
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(path), str(units)],
                                stderr=subprocess.PIPE, text=True) for units in (8, 16)]
    for writer in writers:
        _, errors = writer.communicate(timeout=300)
        assert writer.returncode == 0, errors[-2000:]
    assert load_model(path).layers[0].units in (8, 16) and temporaries(tmp_path) == []


# ------------------------------------------------------------------------------------------------- signals

SAVER = textwrap.dedent("""
    import signal, sys
    from lstm_native import layers
    from lstm_native.models import Sequential
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(3))  # handled; SIGINT: Python's KeyboardInterrupt
    model = Sequential([layers.Input((2, 1024)), layers.LSTM(1024, recurrent_initializer="zeros")])  # 34 MB
    print("ready", flush=True)
    while True:
        model.save(sys.argv[1])
""")


@pytest.mark.parametrize("signal_number, status", [(signal.SIGTERM, 3), (signal.SIGINT, -signal.SIGINT)])
def test_a_handled_signal_during_a_save_removes_the_temporary(tmp_path, signal_number, status):
    path = tmp_path / "m.safetensors"
    with subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as saver:
        try:
            assert saver.stdout.readline() == "ready\n", saver.stderr.read()[-2000:]
            deadline = time.monotonic() + 60
            while not temporaries(tmp_path) and time.monotonic() < deadline:  # until a save is under way
                time.sleep(0.001)
            assert temporaries(tmp_path), "no save seen"
            saver.send_signal(signal_number)
            _, errors = saver.communicate(timeout=60)
            assert saver.returncode == status, errors[-2000:]
        finally:
            if saver.poll() is None:
                saver.kill()
    assert os.listdir(tmp_path) in ([], ["m.safetensors"])  # no temporary of any name


# ------------------------------------------------------------------------------------------------ odd paths

def test_an_empty_path_is_a_clear_error(tmp_path):
    for entry, save in save_entry_points().items():
        if entry.startswith("ModelCheckpoint"):
            continue  # ModelCheckpoint("") fails in its constructor, the same way
        with pytest.raises(ValueError, match=r"the file path is empty"):
            save(small_model(), "")
    with pytest.raises(ValueError, match=r"the file path is empty"):
        callbacks.ModelCheckpoint("")
    with pytest.raises(ValueError, match=r"the file path is empty"):
        load_model("")


def test_errors_name_the_users_path_never_the_temporary(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    cases = {tmp_path / "missing" / ".." / "m.safetensors": FileNotFoundError,  # as open() would: no such directory
             tmp_path / "file" / "m.safetensors": NotADirectoryError,
             tmp_path / ("y" * 256 + ".safetensors"): OSError}  # longer than NAME_MAX
    for path, error_type in cases.items():
        with pytest.raises(error_type) as caught:
            small_model().save(path)
        assert str(path) in str(caught.value) and ".tmp" not in str(caught.value), caught.value
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_names_up_to_name_max_bytes_and_paths_as_bytes_or_pathlike_are_saved(tmp_path):
    class PathLike:
        def __init__(self, path):
            self.path = path

        def __fspath__(self):
            return self.path

    paths = [tmp_path / ("z" * (238 + k) + ".safetensors") for k in (0, 5)] + [tmp_path / ("w" * 243 + ".st")]
    paths += [os.fsencode(tmp_path / "bytes.safetensors"), os.fsencode(tmp_path) + b"/not-utf8-\xff.safetensors",
              PathLike(str(tmp_path / "pathlike.safetensors")), PathLike(os.fsencode(tmp_path / "pathlike-bytes"))]
    for path in paths:
        small_model().save(path)
        assert load_model(path).compiled
        model = small_model()
        model.save_weights(path)
        model.load_weights(path)
    assert b"not-utf8-\xff.safetensors" in os.listdir(os.fsencode(tmp_path))
    assert temporaries(tmp_path) == []
