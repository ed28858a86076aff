"""The public API is typed: every public function and method of the documented modules is annotated, mypy
checks the package with pyproject.toml's [tool.mypy] settings, and the py.typed marker ships in the installed
package (PEP 561: without it, type checkers ignore the hints)."""

from __future__ import annotations

import importlib.resources
import inspect
import pathlib
import subprocess
import sys

import pytest

from support import public_api

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_mypy_passes_on_the_package(tmp_path):
    pytest.importorskip("mypy")
    # From python/ (the package's parent), so that mypy reads the sources; the config is the repository's.
    # A fresh cache: the check holds from a clean clone, as CI runs it (~20 s on 2 cores).
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy_cache"), "-p", "lstm_native"],
        cwd=ROOT / "python", capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"


def test_py_typed_ships_with_the_package():
    marker = importlib.resources.files("lstm_native") / "py.typed"
    assert marker.is_file(), f"py.typed is missing from the installed package ({marker})"


def unannotated(function, bound):
    """What `function` leaves unannotated: its parameters (but self/cls when bound, and *args/**kwargs, which
    pass through), and its return (but __init__'s)."""
    parameters = list(inspect.signature(function).parameters.values())[1 if bound else 0:]
    missing = [p.name for p in parameters
               if p.annotation is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if function.__name__ != "__init__" and inspect.signature(function).return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_public_function_is_annotated():
    found = {}
    for qualified_name, owner, value in public_api():
        if isinstance(value, (staticmethod, classmethod)):
            function, bound = value.__func__, isinstance(value, classmethod)
        elif inspect.isfunction(value):
            function, bound = value, owner is not None
        else:
            continue
        if missing := unannotated(function, bound):
            found[qualified_name] = missing
    assert not found, f"{len(found)} public functions or methods lack annotations: {found}"
