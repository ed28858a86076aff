"""The C++ package: examples/cpp builds with find_package(lstm_native) against an installed copy and
computes what Python computes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstm_native
import lstm_native.cuda
from lstm_native import ops

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cpp"


def run(*command, cwd=None):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def pattern(n: int, seed: float) -> np.ndarray:
    """examples/cpp/forward.cpp's inputs: 0.5 sin(seed + 0.37 k)."""
    k = np.arange(n, dtype=np.float32)
    return (0.5 * np.sin(np.float32(seed) + np.float32(0.37) * k)).astype(np.float32)


def expected_final_h() -> np.ndarray:
    B, T, I, H = 2, 5, 3, 4
    x = pattern(B * T * I, 0.1).reshape(B, T, I)
    W = pattern(I * 4 * H, 1.0).reshape(I, 4 * H)
    U = pattern(H * 4 * H, 2.0).reshape(H, 4 * H)
    b = pattern(4 * H, 3.0)
    p = pattern(3 * H, 4.0).reshape(3, H)
    return ops.lstm_forward(x, W, U, b, p, peephole="diagonal").h.ravel()


def build_example(prefix: Path, build_dir: Path) -> None:
    run("cmake", "-S", EXAMPLE, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release")
    run("cmake", "--build", build_dir)


def final_h(output: str) -> np.ndarray:
    assert output.startswith(f"lstm_native {lstm_native.__version__}, final h:"), output
    return np.array([float(line) for line in output.splitlines()[1:]])


def build_and_run_example(prefix: Path, build_dir: Path) -> np.ndarray:
    build_example(prefix, build_dir)
    return final_h(run(build_dir / "forward_example"))


@pytest.fixture(scope="module")
def standalone_prefix(tmp_path_factory) -> Path:
    """The C++ library alone, configured, built and installed by plain CMake into a temporary prefix."""
    root = tmp_path_factory.mktemp("standalone")
    build, prefix = root / "build", root / "prefix"
    run("cmake", "-S", REPO, "-B", build, f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release")
    run("cmake", "--build", build, "--parallel", "2")
    run("cmake", "--install", build, "--prefix", prefix)
    return prefix


def test_cmake_is_available():
    assert shutil.which("cmake"), "cmake is needed to build C++ programs against lstm_native"


def test_example_against_the_installed_wheel(tmp_path):
    h = build_and_run_example(Path(lstm_native.cmake_prefix()), tmp_path / "example")
    np.testing.assert_allclose(h, expected_final_h(), rtol=0, atol=1e-5)


def test_example_against_a_standalone_install(standalone_prefix, tmp_path):
    assert (standalone_prefix / "lib" / "cmake" / "lstm_native" / "lstm_nativeConfig.cmake").is_file()
    assert not (standalone_prefix / "lib" / "cmake" / "lstm_native" / "lstm_nativeTargets.cmake").read_text().count(
        "Eigen3::"
    ), "the installed package must not need Eigen"
    h = build_and_run_example(standalone_prefix, tmp_path / "example")
    np.testing.assert_allclose(h, expected_final_h(), rtol=0, atol=1e-5)


def test_cuda_example_against_a_standalone_install(standalone_prefix, tmp_path):
    """With the CUDA backend built, the package exports lstm_native::lstm_native_cuda and installs cuda.hpp:
    examples/cpp/cuda_forward.cpp links against them and computes forward_example's h on a GPU (or, without
    one, says so)."""
    targets = (standalone_prefix / "lib" / "cmake" / "lstm_native" / "lstm_nativeTargets.cmake").read_text()
    if "lstm_native_cuda" not in targets:
        pytest.skip("this install has no CUDA backend (no CUDA toolkit with cuBLAS where it was built)")
    assert (standalone_prefix / "include" / "lstm_native" / "cuda.hpp").is_file()
    build_example(standalone_prefix, tmp_path / "example")
    output = run(tmp_path / "example" / "cuda_forward_example")
    if "no CUDA device" in output:
        assert not lstm_native.cuda.is_available()
    else:
        np.testing.assert_allclose(final_h(output), expected_final_h(), rtol=0, atol=1e-5)
