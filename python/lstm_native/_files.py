"""Files on disk, for the model files and the command line's arrays: reading a whole regular file, and
replacing a file atomically.

Reading opens the path without blocking (a FIFO would wait for a writer forever) and checks on the open
descriptor, not before opening, that it is a regular file; then it reads the whole file into memory, never
memory-maps it: a file truncated or rewritten by another process meanwhile raises ValueError, not SIGBUS.

Writing (:func:`replace_file`) fills a temporary file next to the target, ``.<name>.<12 hex digits>.tmp``,
flushes it to disk and renames it over the target, so that a crash leaves the old file or the new one. The
temporary is created with the mode any new file of the user gets (0666 & ~umask); replacing an existing file
keeps that file's permission bits. A symlink is written through: the file it points to is replaced and the link
stays. A target that exists and is not a regular file (directory, FIFO, device, socket) is refused. A
temporary is locked (flock) while its writer lives; a save removes the temporaries of its own target that
no living writer holds and that have not changed for STALE_AFTER_S seconds (left by a process killed
mid-save), so concurrent writers of one target never remove each other's and each writes a complete file.
A handled signal (KeyboardInterrupt, or a SIGTERM handler that raises) removes the temporary being written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
import time
from typing import BinaryIO, Callable

NAME_MAX = 255  # bytes in one file name (Linux file systems)
_RANDOM_DIGITS = 12
_TEMPORARY_EXTRA = len("." + "." + "0" * _RANDOM_DIGITS + ".tmp")
# A temporary this recent may belong to a writer that has created it and not yet locked it.
STALE_AFTER_S = 5.0

# File name extensions of other libraries' formats: a file of another format under such a name misleads.
_FORMATS_BY_SUFFIX = {
    ".keras": "Keras", ".h5": "HDF5", ".hdf5": "HDF5", ".hdf": "HDF5", ".pt": "PyTorch", ".pth": "PyTorch",
    ".onnx": "ONNX", ".pb": "TensorFlow", ".tflite": "TensorFlow Lite", ".pkl": "pickle", ".pickle": "pickle",
    ".joblib": "joblib", ".npy": "NumPy", ".npz": "NumPy", ".safetensors": "safetensors", ".json": "JSON",
}


def user_path(filepath) -> str:
    """``filepath`` (str, bytes or os.PathLike) as a str (undecodable bytes kept, as os.fsdecode does)."""
    path = os.fsdecode(os.fspath(filepath))
    if not path:
        raise ValueError("the file path is empty ('')")
    return path


def check_suffix(path: str, suffix: str, advice: str) -> None:
    """Refuses a name whose extension means another format than the one of ``suffix`` (e.g. ".safetensors")
    that the caller writes; ``advice`` says what to do instead."""
    found = os.path.splitext(path)[1].lower()
    if found != suffix and found in _FORMATS_BY_SUFFIX:
        raise ValueError(f"{path}: a {found} name means a {_FORMATS_BY_SUFFIX[found]} file; {advice}")


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "a special file")


def _not_regular(path: str, mode: int) -> ValueError:
    return ValueError(f"{path}: is {_kind(mode)}, not a regular file")


# ----------------------------------------------------------------------------------------------- reading

def read_regular_file(filepath) -> bytes:
    """The whole content of the regular file ``filepath``; anything else (a FIFO, a directory, a device, a
    socket) and a file that changes while it is read raise ValueError naming the path."""
    path = user_path(filepath)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        _explain_special_file(path)  # a socket cannot be opened at all (ENXIO)
        raise error from None
    try:
        before = os.fstat(descriptor)
        if not stat.S_ISREG(before.st_mode):
            raise _not_regular(path, before.st_mode)
        data = _read_exactly(descriptor, before.st_size, path)
        after = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise ValueError(f"{path}: the file changed while it was read (written by another process?)")
    return data


def _explain_special_file(path: str) -> None:
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)


def _read_exactly(descriptor: int, size: int, path: str) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(descriptor, remaining)  # at most about 2 GiB at a time
        if not chunk:
            raise ValueError(f"{path}: the file became shorter while it was read (written by another process?)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# ----------------------------------------------------------------------------------------------- writing

def replace_file(filepath, write: Callable[[BinaryIO], None]) -> None:
    """Writes the file ``filepath`` atomically: ``write(file)`` writes the content into ``file``, the open
    temporary file; see the module's docstring. Errors name ``filepath``, never the temporary."""
    path = user_path(filepath)
    target = _resolved_target(path)
    mode = _existing_mode(path, target)
    directory, name = os.path.split(target)
    _remove_stale_temporaries(directory, name)
    temporary = os.path.join(directory, _temporary_prefix(name) + secrets.token_hex(_RANDOM_DIGITS // 2) + ".tmp")
    nothing_to_remove = False  # once renamed over the target, or when the name is another writer's
    # The temporary is created inside the try, so that a signal handled right after its creation (a Ctrl-C,
    # a SIGTERM handler that raises) still removes it.
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # tells other writers' cleanups that this one is alive
            if mode is not None:
                os.fchmod(descriptor, mode)
            with open(descriptor, "wb", closefd=False) as file:
                write(file)
            os.fsync(descriptor)
            os.replace(temporary, target)
            nothing_to_remove = True
        finally:
            os.close(descriptor)
        _fsync_directory(directory)
    except FileExistsError as error:  # O_EXCL: that name is another writer's temporary, never ours to remove
        nothing_to_remove = True
        raise _write_error(path, error) from None
    except OSError as error:
        raise _write_error(path, error) from None
    finally:
        if not nothing_to_remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)


def _write_error(path: str, error: OSError) -> OSError:
    reason = error.strerror or str(error)
    if error.errno is None:
        return OSError(f"{path}: cannot write the file ({reason})")
    return OSError(error.errno, f"{path}: cannot write the file ({reason})")  # the errno's subclass


def _resolved_target(path: str) -> str:
    """The file that writing ``path`` replaces: ``path``, or where it leads through symlinks."""
    name = os.path.basename(path)
    if name in ("", ".", ".."):
        raise ValueError(f"{path}: names a directory, not a file")
    directory = os.path.dirname(path) or os.curdir
    try:  # as the system resolves it, so that "a/missing/../m" fails as open() would
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    except OSError as error:
        raise type(error)(error.errno, f"{path}: cannot write the file: its directory {directory} cannot be "
                                       f"used ({error.strerror})") from None
    return os.path.realpath(path)


def _existing_mode(path: str, target: str):
    """The permission bits of the regular file ``target``, None where it does not exist; ValueError where it
    exists and is not a regular file (saving onto /dev/null must not replace the device)."""
    try:
        status = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _write_error(path, error) from None
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"{path}: exists and is {_kind(status.st_mode)}, not a regular file: only a regular "
                         "file is replaced")
    return stat.S_IMODE(status.st_mode) & 0o777


def _temporary_prefix(name: str) -> str:
    """``.<name>.`` — or, where a temporary's name would pass NAME_MAX, ``.<name's start>~<its hash>.``."""
    encoded = os.fsencode(name)
    if len(encoded) + _TEMPORARY_EXTRA <= NAME_MAX:
        return f".{name}."
    digest = hashlib.blake2b(encoded, digest_size=4).hexdigest()
    start = os.fsdecode(encoded[:NAME_MAX - _TEMPORARY_EXTRA - len(digest) - 1])
    return f".{start}~{digest}."


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Removes the temporaries of ``name`` whose writer is gone: not locked, and not modified for a while."""
    pattern = re.compile(re.escape(_temporary_prefix(name)) + f"[0-9a-f]{{{_RANDOM_DIGITS}}}\\.tmp")
    stale = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        stale = [entry.path for entry in entries if pattern.fullmatch(entry.name)]
    for temporary in stale:
        with contextlib.suppress(OSError):
            _remove_if_stale(temporary)


def _remove_if_stale(temporary: str) -> None:
    descriptor = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or time.time() - status.st_mtime < STALE_AFTER_S:
            return
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its writer lives
        os.remove(temporary)
    finally:
        os.close(descriptor)


def _fsync_directory(directory: str) -> None:
    """Makes a rename in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
