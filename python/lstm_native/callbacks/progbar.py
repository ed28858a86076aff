"""Keras 3's progress bar."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ._printing import print_message


class Progbar:
    """Keras 3's progress bar (``keras.utils.Progbar``), every metric shown as given.

    ``verbose=1``: on a terminal (``sys.stdout.isatty()``, or in Jupyter) the bar
    ``n/N ━━━━━━━━━━━━━━━━━━━━ ETA per-step - metric: value ...`` is redrawn in place, Keras' exact bytes;
    elsewhere (a log file, a pipe) only the final line of each bar is written, without colours.
    ``verbose=2``: the final line ``n/N - elapsed - per-step - metric: value ...`` only.
    """

    def __init__(self, target: Optional[int], width: int = 20, verbose: int = 1, interval: float = 0.05,
                 unit_name: str = "step"):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._dynamic_display = (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) or "ipykernel" in sys.modules
        self._values: Dict[str, Union[float, np.floating, np.ndarray]] = {}
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: Optional[float] = None
        self._samples_after_first_step = 0
        self._samples_per_second: Optional[float] = None
        self._prev_total_width = 0

    def update(self, current: int, values: Optional[List[Tuple[str, Any]]] = None, finalize: Optional[bool] = None,
               samples: Optional[int] = None) -> None:
        """Shows step ``current`` with ``values`` (a list of ``(name, value)``); ``samples``, the samples seen
        so far, adds their rate (samples/s) after the time per step."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for key, value in values or []:
            self._values[key] = value
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now, samples)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            if self._dynamic_display:
                print_message(self._bar_line(current, finalize, now, time_per_unit), line_break=False)
            elif finalize:
                print_message(self._bar_line(current, finalize, now, time_per_unit, colour=False))
        elif self.verbose == 2 and finalize and self.target is not None and self.target > 0:
            count = f"%{int(math.log10(self.target)) + 1}d/%d" % (current, self.target)
            info = f"{count} - {now - self._start:.0f}s -{self._format_time(time_per_unit)}{self._rate_text()}"
            print_message(info + self._metrics_text(verbose2=True))
        self._last_update = now

    def _bar_line(self, current, finalize, now, time_per_unit, colour=True) -> str:
        def bold(text):
            return f"\x1b[1m{text}\x1b[0m" if colour else text

        special_char_len = 0
        if self.target is not None and self.target > 0:
            bar = bold(f"%{int(math.log10(self.target)) + 1}d/%d" % (current, self.target)) + " "
            prog_width = int(self.width * float(current) / self.target)
            if prog_width > 0:
                bar += f"\33[32m{'━' * prog_width}\x1b[0m" if colour else "━" * prog_width
                special_char_len += 9
            bar += f"\33[37m{'━' * (self.width - prog_width)}\x1b[0m" if colour else "━" * (self.width - prog_width)
            special_char_len += 17
        else:
            bar = "%7d/Unknown" % current
        if self.target is not None and self.target > 0 and not finalize:
            info = " " + bold(self._format_eta(time_per_unit * (self.target - current)))
        else:
            info = " " + bold(f"{now - self._start:.0f}s")
        special_char_len += 8
        info += self._format_time(time_per_unit) + self._rate_text() + self._metrics_text(verbose2=False)
        if not colour:
            return bar + info
        total_width = len(bar) + len(info) - special_char_len
        message = "\b" * self._prev_total_width + "\r" + bar + info
        if self._prev_total_width > total_width:
            message += " " * (self._prev_total_width - total_width)
        self._prev_total_width = total_width
        return message + ("\n" if finalize else "")

    def _metrics_text(self, verbose2: bool) -> str:
        text = ""
        for key, value in self._values.items():
            avg = value if isinstance(value, float) else np.mean(value)
            # Keras compares the signed value on the verbose=2 line and its magnitude on the bar.
            text += f" - {key}: {avg:.4f}" if (avg if verbose2 else abs(avg)) > 1e-3 else f" - {key}: {avg:.4e}"
        return text

    @staticmethod
    def _format_eta(eta: float) -> str:
        if eta > 3600:
            return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
        if eta > 60:
            return "%d:%02d" % (eta // 60, eta % 60)
        return "%ds" % eta

    def _format_time(self, time_per_unit: float) -> str:
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{self.unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1000.0:.0f}ms/{self.unit_name}"
        return f" {time_per_unit * 1000000.0:.0f}us/{self.unit_name}"

    def _rate_text(self) -> str:
        return "" if self._samples_per_second is None else f" - {self._samples_per_second:,.0f} samples/s"

    def _estimate_step_duration(self, current: int, now: float, samples: Optional[int] = None) -> float:
        """Seconds per step (and, given the samples seen, samples per second), leaving the (unrepresentative)
        first step out once there are more."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            elapsed, steps = now - self._time_after_first_step, current - 1
            samples = None if samples is None else samples - self._samples_after_first_step
        else:
            elapsed, steps = now - self._start, current
        if samples is not None and elapsed > 0:
            self._samples_per_second = samples / elapsed
        if current == 1:
            self._time_after_first_step = now
            self._samples_after_first_step = samples or 0
        return elapsed / steps
