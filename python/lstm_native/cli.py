"""The ``lstm-native`` command: look into a saved model, run it on a .npy file.

    lstm-native info MODEL.safetensors
    lstm-native predict MODEL.safetensors INPUT.npy [-o OUTPUT.npy] [--batch-size N]

``predict`` writes the .npy to standard output without ``-o``; a file given by ``-o`` is written as the
model files are (atomically: lstm_native._files), and must not be one of the inputs. Inputs are regular files,
read whole; an input .npy holds numbers (bool, integers or floats: never objects, which would need pickle, nor
complex values). Errors (a bad file, a bad input) print one line to standard error and exit with status 1.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys

import numpy as np

from . import _files, saving
from .models import load_model


def _info(args) -> None:
    model = load_model(args.model)
    print(f"{args.model}: {saving.FORMAT} model, format version {saving.FORMAT_VERSION}")
    print(f"input shape: {model._built_shape}")
    model.summary()
    if model.compiled:
        loss, optimizer = model.loss, model.optimizer
        assert loss is not None and optimizer is not None  # compile refuses a None of either
        print(f"compiled: loss {loss.name}, optimizer {type(optimizer).__name__} after "
              f"{optimizer.iterations} updates")
    else:
        print("not compiled (saved without optimizer)")


def _predict(args) -> None:
    if args.output is not None:
        _files.check_suffix(args.output, ".npy", "lstm-native predict writes a NumPy .npy array")
        _refuse_overwriting(args.output, (args.model, args.input))
    model = load_model(args.model, compile=False)
    y = model.predict(_read_npy(args.input), batch_size=args.batch_size, verbose=0)  # stdout may be the output
    if args.output is None:
        np.save(sys.stdout.buffer, y)
    else:
        _files.replace_file(args.output, lambda file: np.save(file, y))


def _refuse_overwriting(output: str, inputs) -> None:
    """Refuses an output that is one of the inputs (the same name, a symlink to it or a hard link)."""
    try:
        written = os.stat(output)
    except OSError:  # not there yet: no input can be it
        return
    for name in inputs:
        try:
            if os.path.samestat(written, os.stat(name)):
                raise ValueError(f"{output}: the output is the input {name}; choose another output file")
        except FileNotFoundError:
            continue


def _read_npy(path: str) -> np.ndarray:
    """The array of a .npy file, its header checked against the file's size before anything is allocated."""
    data = _files.read_regular_file(path)
    if data.startswith(b"PK\x03\x04"):
        raise ValueError(f"{path}: expected one array (.npy), got an archive of several (.npz)")
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except ValueError as error:
        raise ValueError(f"{path}: not a .npy file ({error})") from None
    if dtype.kind not in "biuf":
        kind = {"c": "complex numbers (the model takes real ones)",
                "O": "Python objects, which only pickle could read (allow_pickle is never on here)"}.get(dtype.kind, f"values of dtype {dtype}")
        raise ValueError(f"{path}: the array holds {kind}; expected bool, integers or floats")
    size = math.prod(shape) * dtype.itemsize
    if size != len(data) - stream.tell():
        raise ValueError(f"{path}: its header declares shape {shape} of {dtype} ({size} bytes), but the file holds "
                         f"{len(data) - stream.tell()} bytes of data")
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=stream.tell()) if size else np.empty(0, dtype)
    return values.reshape(shape, order="F" if fortran_order else "C")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-native", description="Inspect and run lstm_native model files.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="the model's layers, shapes, parameter count and file format version")
    info.add_argument("model", help="a file written by model.save")
    info.set_defaults(run=_info)
    predict = commands.add_parser("predict", help="run the model on the array of a .npy file")
    predict.add_argument("model", help="a file written by model.save")
    predict.add_argument("input", help="a .npy file: the batch of inputs")
    predict.add_argument("-o", "--output", help="the .npy file to write (default: standard output)")
    predict.add_argument("--batch-size", type=_positive_int, default=32, help="samples per forward pass (default 32)")
    predict.set_defaults(run=_predict)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except (OSError, ValueError, TypeError) as error:
        print(f"lstm-native {args.command}: error: {error}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"lstm-native {args.command}: error: out of memory", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
