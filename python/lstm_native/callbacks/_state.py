"""Checks of the states that callbacks put back from a backup (:meth:`Callback.set_state`)."""

from __future__ import annotations

import reprlib
from typing import Optional

from .. import _arguments


def check_state_keys(state, keys) -> None:
    if not (isinstance(state, dict) and set(state) == set(keys)):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"expected a state with the entries {sorted(keys)}, got {found}")


def state_count(name: str, value) -> int:
    try:
        return _arguments.integer(name, value, at_least=0)
    except TypeError as error:
        raise ValueError(str(error)) from None


def state_value(name: str, value) -> Optional[float]:
    """A monitored value in a state: None or a float (NaN and infinities included: a loss can be NaN)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None if value is None else float(value)
    raise ValueError(f"{name}: expected a number or None, got {reprlib.repr(value)}")


def monitor_value(value) -> Optional[float]:
    """A monitored value (from the logs, a float) as get_state stores it."""
    return None if value is None else float(value)
