"""One version (CMakeLists.txt's project()), shown alike by the module, the installed distribution's metadata
and the installed CMake package."""

import importlib.metadata
import re
from pathlib import Path

import lstm_native


def cmake_package_version() -> str:
    """PACKAGE_VERSION in the installed lstm_nativeConfigVersion.cmake (what find_package(lstm_native 0.1) checks)."""
    path = Path(lstm_native.cmake_prefix()) / "lib" / "cmake" / "lstm_native" / "lstm_nativeConfigVersion.cmake"
    match = re.search(r'^set\(PACKAGE_VERSION "([^"]+)"\)', path.read_text(), re.M)
    assert match, f"{path} sets no PACKAGE_VERSION"
    return match.group(1)


def test_module_metadata_and_cmake_package_show_one_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", lstm_native.__version__), lstm_native.__version__
    assert importlib.metadata.version("lstm_native") == lstm_native.__version__
    assert cmake_package_version() == lstm_native.__version__
