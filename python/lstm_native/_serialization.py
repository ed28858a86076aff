"""Configs of the library's objects in Keras' form, ``{"class_name": ..., "config": {...}}``.

:func:`deserialize` instantiates only classes of a registry that its caller passes (the library's own
classes, by name): a config never names code to import or run. Before a constructor sees a config, each
value whose argument defaults to a bool or a number must be one; the constructors check the rest.
"""

from __future__ import annotations

import inspect
import reprlib
from numbers import Real
from typing import Any, Callable, Dict, Union

# What a get() resolves: a Keras name, a {"class_name", "config"} dict, an instance or a callable.
Identifier = Union[str, Dict[str, Any], Callable]


def _named_parameters(cls) -> Dict[str, inspect.Parameter]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def constructor_arguments(obj) -> dict:
    """``{argument: value}`` for every named argument of ``type(obj).__init__`` that ``obj`` keeps in an
    attribute of the same name (Keras' convention). An argument without one is either accepted at its
    default only (as LSTM's activation) or kept in another form, which the class's get_config handles."""
    return {name: getattr(obj, name) for name in _named_parameters(type(obj)) if hasattr(obj, name)}


def serialize(obj) -> dict:
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def _check_argument_types(cls, config: dict, kind: str) -> None:
    parameters = _named_parameters(cls)
    for name, value in config.items():
        default = parameters[name].default if name in parameters else None
        if isinstance(default, bool):
            expected, ok = "a bool", isinstance(value, bool)
        elif isinstance(default, Real):
            expected, ok = "a number", isinstance(value, Real) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            raise ValueError(f"{kind} {cls.__name__}: {name} must be {expected}, got {reprlib.repr(value)}")


def deserialize(entry, registry: dict, kind: str):
    """The object that ``entry`` (a :func:`serialize` dict) describes, of a class in ``registry`` (name ->
    class); anything else raises ValueError."""
    if not (isinstance(entry, dict) and isinstance(entry.get("class_name"), str)
            and isinstance(entry.get("config", {}), dict)):
        raise ValueError(f"expected a {kind} as {{'class_name': str, 'config': dict}}, got {reprlib.repr(entry)}")
    cls = registry.get(entry["class_name"])
    if cls is None:
        raise ValueError(f"unknown {kind} class {reprlib.repr(entry['class_name'])}; known: "
                         f"{', '.join(sorted({c.__name__ for c in registry.values()}))}")
    config = entry.get("config", {})
    _check_argument_types(cls, config, kind)
    try:
        return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    except TypeError as error:  # an unknown or missing argument
        raise ValueError(f"{kind} {cls.__name__}: invalid config ({error})") from None
