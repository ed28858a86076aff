"""The ``lstm-native`` command: look into a saved model, run it on a .npy file.

    lstm-native info MODEL.safetensors
    lstm-native predict MODEL.safetensors INPUT.npy [-o OUTPUT.npy] [--batch-size N]

``predict`` writes the .npy to standard output without ``-o``. Errors (a bad file, a bad input) print one
line to standard error and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import saving
from .models import load_model


def _info(args) -> None:
    model = load_model(args.model)
    print(f"{args.model}: {saving.FORMAT} model, format version {saving.FORMAT_VERSION}")
    print(f"input shape: {model._built_shape}")
    model.summary()
    if model.compiled:
        optimizer = model.optimizer
        print(f"compiled: loss {model.loss.name}, optimizer {type(optimizer).__name__} after "
              f"{optimizer.iterations} updates")
    else:
        print("not compiled (saved without optimizer)")


def _predict(args) -> None:
    model = load_model(args.model, compile=False)
    x = np.load(args.input, allow_pickle=False)
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{args.input}: expected one array (.npy), got an archive of several (.npz)")
    y = model.predict(x, batch_size=args.batch_size)
    if args.output is None:
        np.save(sys.stdout.buffer, y)
    else:
        with open(args.output, "wb") as f:  # np.save would append .npy to a name without it
            np.save(f, y)


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
