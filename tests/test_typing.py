"""The public API is typed: mypy checks the package with pyproject.toml's [tool.mypy] settings, and the
py.typed marker ships in the installed package (PEP 561: without it, type checkers ignore the hints)."""

from __future__ import annotations

import importlib.resources
import pathlib
import subprocess
import sys

import pytest

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
