"""Which calls may run on one model at the same time, from several threads.

Inference (``predict``, ``evaluate``, ``__call__``, ``trace``) writes nothing shared, so any number of
threads may run it at once on one model. Training (``fit``, ``train_on_batch``) changes the weights and keeps
per-step state in the layers, so it runs alone: started while another thread uses the model, or used by
another thread while it runs, the later call raises ``RuntimeError`` at once (no waiting, no wrong results).
Calls nested in one thread (``fit`` evaluating its validation data, a callback calling ``predict``) are
fine. A stateful model carries its states from call to call, so its inference runs alone too.
"""

from __future__ import annotations

import functools
import threading

from .layers.bidirectional import recurrent_layers

_GUARDS_LOCK = threading.Lock()  # creates each model's guard once


class CallGuard:
    """The calls in progress on one model: their threads, and the training call if one runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls = {}  # thread id -> [calls of that thread in progress, the outermost one's name]
        self._alone = None  # (thread id, name) of the call that runs alone, if one does

    def __deepcopy__(self, memo):  # a copied model has no calls in progress
        return CallGuard()

    def __reduce__(self):
        return CallGuard, ()

    def enter(self, name: str, alone: bool) -> None:
        me = threading.get_ident()
        with self._lock:
            others = [call[1] for thread, call in self._calls.items() if thread != me]
            if self._alone is not None and self._alone[0] != me:
                raise RuntimeError(f"{name}: {self._alone[1]} is running on this model in another thread; it "
                                   "needs the model alone (inference from many threads at once is fine)")
            if alone and others:
                raise RuntimeError(f"{name}: this model is in use by another thread ({others[0]}); {name} needs "
                                   "the model alone: wait for the other call to end, or train a copy")
            call = self._calls.setdefault(me, [0, name])
            call[0] += 1
            if alone and self._alone is None:
                self._alone = (me, name)

    def leave(self) -> None:
        me = threading.get_ident()
        with self._lock:
            call = self._calls[me]
            call[0] -= 1
            if call[0] == 0:
                del self._calls[me]
                if self._alone is not None and self._alone[0] == me:
                    self._alone = None


def _guard(model) -> CallGuard:
    guard = model.__dict__.get("_call_guard")
    if guard is None:
        with _GUARDS_LOCK:
            guard = model.__dict__.setdefault("_call_guard", CallGuard())
    return guard


def _runs_alone(model) -> bool:
    return any(lstm.stateful for layer in model.layers for lstm in recurrent_layers(layer))


def _guarded(method, training: bool):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        guard = _guard(self)
        guard.enter(method.__name__, alone=training or _runs_alone(self))
        try:
            return method(self, *args, **kwargs)
        finally:
            guard.leave()

    return call


def training_call(method):
    """Decorates a model method that trains: it runs alone on its model (see the module's docstring)."""
    return _guarded(method, training=True)


def inference_call(method):
    """Decorates a model method that only reads the model: many threads may run it at once."""
    return _guarded(method, training=False)
