"""ProgbarLogger: the progress bars of fit, evaluate and predict."""

from __future__ import annotations

from typing import Optional

from ._printing import print_message
from .callback import Callback, Logs
from .progbar import Progbar


class ProgbarLogger(Callback):
    """Prints the progress of ``fit``, ``evaluate`` and ``predict`` (a :class:`Progbar` per epoch or run);
    ``params["verbose"]`` picks the bar (1, "auto") or one line per epoch (2). Validation inside ``fit`` is
    silent. ``CallbackList(add_progbar=True)`` adds one."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.samples_seen = 0  # counted by CallbackList.count_samples
        self.progbar: Optional[Progbar] = None
        self.target: Optional[int] = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        verbose = params["verbose"]
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self._called_in_fit = True

    def on_test_begin(self, logs: Optional[Logs] = None) -> None:
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs: Optional[Logs] = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            print_message(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._finalize_progbar(logs)

    def on_test_end(self, logs: Optional[Logs] = None) -> None:
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs: Optional[Logs] = None) -> None:
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.samples_seen = 0
        self.progbar = None

    def _maybe_init_progbar(self) -> Progbar:
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step")
        return self.progbar

    def _update_progbar(self, batch, logs):
        progbar = self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            progbar.update(self.seen, list((logs or {}).items()), finalize=False, samples=self._samples())

    def _finalize_progbar(self, logs):
        progbar = self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            progbar.target = self.target
        progbar.update(self.target, list((logs or {}).items()), finalize=True, samples=self._samples())

    def _samples(self) -> Optional[int]:
        return self.samples_seen or None
