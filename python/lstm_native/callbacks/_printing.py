"""The callbacks' messages on standard output (read when written: tests and notebooks replace it)."""

from __future__ import annotations

import sys


def print_message(message: str, line_break: bool = True) -> None:
    sys.stdout.write(message + ("\n" if line_break else ""))
    sys.stdout.flush()
