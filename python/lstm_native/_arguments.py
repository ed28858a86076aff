"""Checks of the arguments that users pass to the callbacks and to fit/evaluate/predict.

Each check returns the value (as a plain Python int, float, bool or str) or raises an error that names the
argument and the value: TypeError for a value of the wrong type, ValueError for one out of range. A bool is
not an integer or a number here, and NaN or an infinity is not a number.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Optional, Sequence

import numpy as np

__all__ = ["integer", "number", "boolean", "choice", "string"]


def _bounds_text(at_least, above, at_most, below) -> str:
    parts = [f"{sign} {bound}" for sign, bound in ((">=", at_least), (">", above), ("<=", at_most), ("<", below))
             if bound is not None]
    return " " + " and ".join(parts) if parts else ""


def _check_range(name: str, value, kind: str, at_least=None, above=None, at_most=None, below=None) -> None:
    if ((at_least is not None and value < at_least) or (above is not None and value <= above)
            or (at_most is not None and value > at_most) or (below is not None and value >= below)):
        raise ValueError(f"{name}: expected {kind}{_bounds_text(at_least, above, at_most, below)}, got {value!r}")


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def integer(name: str, value, at_least: Optional[int] = None, at_most: Optional[int] = None) -> int:
    """``value`` as an int: an integer (Python's or numpy's, not a bool, not a float such as 3.0) in
    [at_least, at_most] (each bound optional)."""
    if _is_bool(value) or not isinstance(value, Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    _check_range(name, value, "an integer", at_least=at_least, at_most=at_most)
    return value


def number(name: str, value, at_least: Optional[float] = None, above: Optional[float] = None,
           at_most: Optional[float] = None, below: Optional[float] = None) -> float:
    """``value`` as a float: a finite real number (int or float, Python's or numpy's, not a bool) within the
    bounds given (``at_least`` <=, ``above`` <, ``at_most`` >=, ``below`` >)."""
    if _is_bool(value) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    _check_range(name, value, "a number", at_least=at_least, above=above, at_most=at_most, below=below)
    return value


def boolean(name: str, value) -> bool:
    """``value`` as a bool: True or False (Python's or numpy's); 0, 1, "yes" and None are refused."""
    if not _is_bool(value):
        raise TypeError(f"{name}: expected True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def string(name: str, value) -> str:
    """``value``, a str."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, got {value!r} ({type(value).__name__})")
    return value


def _kind(value) -> str:
    if _is_bool(value):
        return "bool"
    if isinstance(value, Integral):
        return "int"
    return "number" if isinstance(value, Real) else type(value).__name__


def choice(name: str, value, choices: Sequence):
    """The one of ``choices`` that ``value`` equals, of the same kind (a bool never matches 0 or 1, nor a float
    an int, nor numpy's str a str)."""
    for option in choices:
        if _kind(value) == _kind(option) and value == option:
            return option
    raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
