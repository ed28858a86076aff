"""lstm_native: a fast, honest peephole LSTM with a native C++ core and a Keras-shaped API.

>>> from lstm_native.models import Sequential
>>> from lstm_native.layers import LSTM, Dense
>>> model = Sequential([LSTM(8, input_shape=(5, 3)), Dense(2, activation="softmax")])
>>> model.predict(np.zeros((4, 5, 3), np.float32), verbose=0).shape
(4, 2)

The functional API over the core is :mod:`lstm_native.ops`.
"""

from __future__ import annotations

from pathlib import Path

from ._backend import core as _core
from . import (activations, callbacks, datasets, gate_orders, initializers, interop, layers, losses, metrics, models,
               onnx, ops, optimizers, regularizers, utils)
from ._backend import isa

__version__ = _core.__version__
with_cuda = _core.with_cuda
with_openmp = _core.with_openmp
get_num_threads = _core.get_num_threads
max_num_threads = _core.max_num_threads

__all__ = [
    "__version__", "activations", "callbacks", "cmake_prefix", "datasets", "gate_orders", "get_num_threads",
    "initializers", "interop", "isa", "layers", "losses", "max_num_threads", "metrics", "models", "onnx", "ops",
    "optimizers", "regularizers", "set_num_threads", "utils", "with_cuda", "with_openmp",
]


def set_num_threads(n: int) -> None:
    """Sets the number of threads of later calls: an integer in [1, max_num_threads()] (4 per CPU, at least
    16), ``TypeError`` for anything that is not an integer (a bool, float or string), ``ValueError`` outside
    the range. OMP_NUM_THREADS sets the default. The native module checks ``n``: one check for Python and C++."""
    _core.set_num_threads(n)


def cmake_prefix() -> str:
    """The prefix to add to CMAKE_PREFIX_PATH for find_package(lstm_native) in a C++ project."""
    return str(Path(__file__).resolve().parent)
