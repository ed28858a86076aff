"""Streaming inference: a Sequential run one time step at a time, every LSTM layer's h and c kept between calls
(``model.stream(batch_size)``), for audio frames, sensor samples or keystrokes that arrive one by one.

    stream = model.stream(batch_size=1)
    for frame in frames:                      # frame: (1, features)
        y = stream.step(frame)                # the model's output for this step
    stream.reset()                            # a new stream: every state back to zero

A step gives what ``predict`` gives for the sequence seen so far: its output at this step for a model that
returns sequences, else the output of the sequence ending here. ``step`` also takes a chunk of steps
(batch, steps, features) and then gives what ``predict`` gives for the chunk, the state carried in and out.
``get_state`` / ``set_state`` snapshot and restore the state of every LSTM.

The session runs in the C++ core's ``lstm_native::Stream`` (the one C++ programs use, lstm_native/model.hpp),
with its own float32 copy of the weights packed for the step, taken when ``stream`` is called (later training
does not reach it): a float64 model streams in float32. Each step runs on the calling thread and allocates no
native memory after the first. Sessions are independent (one per thread); a session serves one call at a
time (a concurrent call from another thread raises RuntimeError). Bidirectional layers and ``go_backwards``
LSTMs cannot stream (they read a sequence's end first): ``stream`` raises ValueError for them, as for a
model without an LSTM. Masks (Masking, Embedding(mask_zero=True)) act per step: a masked step keeps the
state.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

from . import saving
from ._arguments import integer
from ._backend import core
from .layers.lstm import LSTM


class Stream:
    """A streaming session of a Sequential model; see :mod:`lstm_native.streaming`."""

    def __init__(self, model: Any, batch_size: int):  # Any: a Sequential (not imported: models imports this module)
        batch_size = integer("batch_size", batch_size, at_least=1)
        if not getattr(core, "with_model_io", False):
            raise RuntimeError("this build of lstm_native lacks the C++ model loader that streams run in")
        name = f"model {model.name!r}"  # stands for the file in the loader's messages
        native_model = core.Model.from_bytes(saving.model_bytes(model, name), name)
        self._native = native_model.stream(batch_size)
        self._step_shape = tuple(self._native.step_input_shape)
        # every LSTM's state, (h, c), in the order of the native state vector
        self._state_shapes = [((batch_size, lstm.proj_size or lstm.units), (batch_size, lstm.units))
                              for lstm in model.layers if isinstance(lstm, LSTM)]

    @property
    def batch_size(self) -> int:
        """The number of independent streams stepped together."""
        return self._native.batch

    @property
    def step_shape(self) -> Tuple[int, ...]:
        """The shape of one step's input: (batch_size, features...), the model's input without its time axis."""
        return self._step_shape

    def step(self, x: ArrayLike) -> np.ndarray:
        """The model's float32 output for one step x of shape ``step_shape``, or for a chunk of steps
        (batch_size, steps, features...): what ``predict`` gives for it, continuing from the state."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x: expected numbers, got an array of dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape == self._step_shape:
            return self._native.step(x)
        chunk = len(x.shape) == len(self._step_shape) + 1 and x.shape[0] == self._step_shape[0] and \
            x.shape[1] >= 1 and x.shape[2:] == self._step_shape[1:]
        if not chunk:
            steps = (self._step_shape[0], "steps") + self._step_shape[1:]
            raise ValueError(f"x: expected one step of shape {self._step_shape} or a chunk of shape "
                             f"({', '.join(map(str, steps))}), got {x.shape}")
        return self._native.steps(x)

    def reset(self) -> None:
        """Every state back to zero: the next step starts a new sequence."""
        self._native.reset()

    def get_state(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """A copy of every LSTM layer's state, (h, c) per layer in the model's order."""
        flat, states, at = self._native.state(), [], 0
        for h_shape, c_shape in self._state_shapes:
            h_size, c_size = int(np.prod(h_shape)), int(np.prod(c_shape))
            states.append((flat[at:at + h_size].reshape(h_shape), flat[at + h_size:at + h_size + c_size].reshape(c_shape)))
            at += h_size + c_size
        return states

    def set_state(self, states: Iterable[Sequence[ArrayLike]]) -> None:
        """Restores a state that ``get_state`` gave (of a stream of the same model and batch size)."""
        states = list(states)
        if len(states) != len(self._state_shapes):
            raise ValueError(f"states: expected {len(self._state_shapes)} (h, c) pairs, one per LSTM layer, "
                             f"got {len(states)}")
        parts = []
        for k, (pair, shapes) in enumerate(zip(states, self._state_shapes)):
            pair = tuple(pair)
            if len(pair) != 2:
                raise ValueError(f"states[{k}]: expected an (h, c) pair, got {len(pair)} arrays")
            for name, value, shape in zip("hc", pair, shapes):
                value = np.asarray(value)
                if value.shape != shape or value.dtype.kind not in "biuf":
                    raise ValueError(f"states[{k}] {name}: expected numbers of shape {shape}, got {value.dtype} "
                                     f"{value.shape}")
                parts.append(value.astype(np.float32).reshape(-1))
        self._native.set_state(np.concatenate(parts))
