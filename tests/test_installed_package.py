"""The installed package carries what a wheel must: the CPU modules (on x86-64 the portable, AVX2 and AVX-512
builds) and the C++ package (headers, static libraries, CMake files). tools/check_wheel.sh runs this against
the repaired wheel installed in an environment without a compiler."""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

import lstm_native


def test_the_cpu_modules_are_installed():
    builds = ["_core"] + (["_core_avx2", "_core_avx512"] if platform.machine().lower() in ("x86_64", "amd64") else [])
    missing = [name for name in builds if importlib.util.find_spec(f"lstm_native.{name}") is None]
    assert not missing, f"lstm_native lacks the modules {missing}"


def test_the_cpp_package_is_installed():
    prefix = Path(lstm_native.cmake_prefix())
    cmake = prefix / "lib" / "cmake" / "lstm_native"
    expected = [prefix / "include" / "lstm_native" / name for name in ("lstm_native.hpp", "config.hpp", "cpu.hpp")]
    expected += [prefix / "lib" / name for name in ("liblstm_native.a", "liblstm_native_common.a")]
    expected += [cmake / name for name in ("lstm_nativeConfig.cmake", "lstm_nativeConfigVersion.cmake",
                                           "lstm_nativeTargets.cmake")]
    missing = [str(path.relative_to(prefix)) for path in expected if not path.is_file()]
    assert not missing, f"{prefix} lacks {missing}"
