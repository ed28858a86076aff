"""BackupAndRestore, and the locks that keep two fits from sharing a backup directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from typing import Dict, Optional, Union

import numpy as np

from .. import _arguments, saving, utils
from ._save_frequency import SaveFrequency
from .callback import Callback, Logs


class BackupAndRestore(Callback):
    """Backs the training state up, and a later ``fit`` resumes from it after an interruption.

    The backup, ``<backup_dir>/latest.safetensors`` (lstm_native.saving's checkpoint), holds the weights, the
    optimizer's state, the epoch to resume at, the states of the random generators (the library's and
    those that layers with a seed hold) and the states of the fit's other callbacks (:meth:`Callback.get_state`:
    EarlyStopping's and ReduceLROnPlateau's wait counters and best values, ReduceLROnPlateau's cooldown,
    ModelCheckpoint's best value...). It is written at every epoch's end, or with an integer ``save_freq``
    every that many training batches. When ``fit`` begins and a backup exists, it is checked against the model
    (built, compiled as when it was written) and its callbacks (the same stateful ones, in the same order) and
    restored, and ``fit`` starts at its epoch. A run resumed from an epoch's end ends with the weights,
    learning rate, epoch count and callback decisions of an uninterrupted run, bit for bit, as far as its
    callbacks' state is backed up: the built-in callbacks' is; a user callback's only if it implements
    ``get_state``/``set_state`` (otherwise it starts afresh, with whatever ``on_train_begin`` gives it). A
    batch-level backup restarts its epoch from the beginning with the backup's weights (as Keras does).
    ``delete_checkpoint``: remove the backup (and ``backup_dir`` if that leaves it empty) when ``fit``
    completes.

    One fit at a time uses a backup directory: from ``on_train_begin`` to ``on_train_end`` it holds an
    exclusive lock (``fcntl.flock`` on the directory), and a fit in another process, or in another
    thread of this one, that tries to use the directory meanwhile raises RuntimeError naming it. The system
    releases the lock of a process that dies; a fit of the same thread that ended with an exception leaves the
    lock to the next fit of that thread.
    """

    def __init__(self, backup_dir: Union[str, os.PathLike], save_freq: Union[str, int] = "epoch",
                 delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = _arguments.boolean("delete_checkpoint", delete_checkpoint)
        self._frequency = SaveFrequency(save_freq)
        self._path = os.path.join(self.backup_dir, "latest.safetensors")
        self._current_epoch = 0
        self._backed_up: list = []  # the fit's other callbacks (set by CallbackList)
        self._pending_states: list = []  # (callback, state) to restore once every on_train_begin has run

    def _layer_generators(self) -> Dict[str, tuple]:
        """The numpy generators that layers hold (seeded Dropout and LSTM layers have one), as
        {"layers.<k>.[forward.|backward.]<attribute>": (layer, attribute)}."""
        return {prefix + attribute: (part, attribute) for prefix, part in saving.named_parts(self.model)
                for attribute, value in vars(part).items() if isinstance(value, np.random.Generator)}

    def _callback_states(self) -> list:
        """(callback, state) of each callback of the fit that has a state."""
        return [(callback, state) for callback in self._backed_up for state in [callback.get_state()] if state]

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        _lock_backup_directory(self.backup_dir)
        self._pending_states = []
        if not os.path.exists(self._path):
            return
        restore, state = saving.read_checkpoint(self.model, self._path)
        holders = self._layer_generators()
        if not (isinstance(state, dict) and set(state) == {"epoch", "rng", "layer_rngs", "callbacks"}
                and isinstance(state["epoch"], int) and not isinstance(state["epoch"], bool) and state["epoch"] >= 0
                and isinstance(state["layer_rngs"], dict) and set(state["layer_rngs"]) == set(holders)):
            raise ValueError(f"{self._path}: its training_state is not the one of a backup of this model")
        pending = self._matched_callback_states(state["callbacks"])
        try:
            generators = {name: utils.generator_from_state(state["layer_rngs"][name]) for name in holders}
            utils.set_rng_state(state["rng"])  # the first change, all or nothing; what follows cannot fail
        except ValueError as error:
            raise ValueError(f"{self._path}: training_state: {error}") from None
        restore.apply()
        for name, (layer, attribute) in holders.items():
            setattr(layer, attribute, generators[name])
        self.model._initial_epoch = state["epoch"]
        self._pending_states = pending

    def _matched_callback_states(self, saved) -> list:
        """(callback, saved state) for each stateful callback of this fit; the backup must hold one state for
        each, of the same class, in the same order."""
        current = [type(callback).__name__ for callback, _ in self._callback_states()]
        if not (isinstance(saved, list) and all(isinstance(entry, dict) and set(entry) == {"class", "state"}
                                                for entry in saved)):
            raise ValueError(f"{self._path}: training_state: the callbacks' states are malformed")
        found = [entry["class"] for entry in saved]
        if found != current:
            raise ValueError(f"{self._path}: the backup holds the states of the callbacks {found}, but this fit's "
                             f"callbacks with a state are {current}: resume with the callbacks of the interrupted "
                             "fit (or remove the backup to start afresh)")
        return [(callback, entry["state"]) for (callback, _), entry in zip(self._callback_states(), saved)]

    def _resume_callbacks(self) -> None:
        """Puts the backed-up states into the other callbacks (after their on_train_begin reset them)."""
        pending, self._pending_states = self._pending_states, []
        for callback, state in pending:
            try:
                callback.set_state(state)
            except ValueError as error:
                raise ValueError(f"{self._path}: the state of callback {type(callback).__name__}: {error}") from None

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        if self._frequency.due_after_batch():
            self._save(resume_at=self._current_epoch)

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self._frequency.per_epoch:
            self._save(resume_at=epoch + 1)

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        try:
            if self.delete_checkpoint and os.path.exists(self._path):
                os.remove(self._path)
                with contextlib.suppress(OSError):  # only an empty directory goes
                    os.rmdir(self.backup_dir)
        finally:
            _unlock_backup_directory(self.backup_dir)

    def _save(self, resume_at: int) -> None:
        layer_rngs = {name: getattr(layer, attribute).bit_generator.state
                      for name, (layer, attribute) in self._layer_generators().items()}
        callback_states = [{"class": type(callback).__name__, "state": state}
                           for callback, state in self._callback_states()]
        saving.save_checkpoint(self.model, self._path, {"epoch": resume_at, "rng": utils.get_rng_state(),
                                                        "layer_rngs": layer_rngs, "callbacks": callback_states})


# The backup directories that this process holds locked: {real path: (descriptor of the locked directory,
# thread of the fit that took it)}. A flock belongs to an open file, so a later fit of this process reuses it.
_locked_directories: Dict[str, tuple] = {}
_locked_directories_guard = threading.Lock()


def _lock_backup_directory(directory: str) -> None:
    """Takes the exclusive lock of a backup directory (creating it) for the fit of the calling thread."""
    key = os.path.realpath(directory)
    with _locked_directories_guard:
        held = _locked_directories.get(key)
        if held is not None:
            descriptor, thread = held
            if thread is not threading.current_thread() and thread.is_alive():
                raise RuntimeError(f"BackupAndRestore: {directory} is in use by another fit of this process "
                                   f"(thread {thread.name!r}); give each fit a backup_dir of its own")
            # the earlier fit of this thread, or of a thread that has ended, ended with an exception
            _locked_directories[key] = (descriptor, threading.current_thread())
            return
        _locked_directories[key] = (_take_directory_lock(directory), threading.current_thread())


def _take_directory_lock(directory: str) -> int:
    """A descriptor of ``directory`` (created if missing) holding its exclusive flock; RuntimeError if another
    process holds it."""
    while True:
        os.makedirs(directory, exist_ok=True)
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RuntimeError(f"BackupAndRestore: {directory} is in use by another fit (another process holds its "
                               "lock): two runs cannot share a backup directory; give each its own backup_dir") from None
        # The holder before us may have removed the (empty) directory after we opened it: then the lock is on a
        # directory that no longer has this name, and we try again.
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(descriptor), os.stat(directory)):
                return descriptor
        os.close(descriptor)


def _unlock_backup_directory(directory: str) -> None:
    """Releases the lock of a backup directory, if this process holds it."""
    with _locked_directories_guard:
        held = _locked_directories.pop(os.path.realpath(directory), None)
    if held is not None:
        os.close(held[0])
