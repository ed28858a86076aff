"""The C++ package: examples/cpp builds with find_package(lstm_native) against an installed copy and
computes what Python computes."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstm_native
import lstm_native.cuda
from lstm_native import ops

from support import EXAMPLE, REPO, run


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


def build_example(prefix: Path, build_dir: Path, library: str = "lstm_native::lstm_native") -> None:
    run("cmake", "-S", EXAMPLE, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release",
        f"-DLSTM_NATIVE_LIBRARY={library}")
    run("cmake", "--build", build_dir)


def final_h(output: str) -> np.ndarray:
    assert output.startswith(f"lstm_native {lstm_native.__version__}, final h:"), output
    return np.array([float(line) for line in output.splitlines()[1:]])


def build_and_run_example(prefix: Path, build_dir: Path, library: str = "lstm_native::lstm_native") -> np.ndarray:
    build_example(prefix, build_dir, library)
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


# Instructions that only the AVX2 (ymm registers) and AVX-512 (zmm registers) builds contain.
ISA_REGISTERS = {"avx2": "%ymm", "avx512": "%zmm"}


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_the_installed_package_has_the_fast_builds(isa, tmp_path):
    """Issue 15: the installed C++ library was the portable build only. The ISA variants install beside it
    (lstm_native::lstm_native_avx2 / _avx512), hold their instructions, and compute the same h."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the instruction-set variants are built on x86-64 only")
    prefix = Path(lstm_native.cmake_prefix())
    targets = (prefix / "lib" / "cmake" / "lstm_native" / "lstm_nativeTargets.cmake").read_text()
    assert f"lstm_native::lstm_native_{isa}" in targets
    archive = prefix / "lib" / f"liblstm_native_{isa}.a"
    if shutil.which("objdump"):
        disassembly = run("objdump", "-d", "--no-show-raw-insn", archive)
        assert ISA_REGISTERS[isa] in disassembly
        assert "%zmm" not in run("objdump", "-d", "--no-show-raw-insn", prefix / "lib" / "liblstm_native.a")
    if not lstm_native._core.cpu_supports(isa):
        pytest.skip(f"this CPU cannot run the {isa} build")
    h = build_and_run_example(prefix, tmp_path / "example", f"lstm_native::lstm_native_{isa}")
    np.testing.assert_allclose(h, expected_final_h(), rtol=0, atol=1e-5)


def configure(tmp_path, *options):
    """Configures the standalone C++ build (no CUDA, to keep it quick); returns (exit status, output)."""
    done = subprocess.run(["cmake", "-S", REPO, "-B", tmp_path / "build", f"-DPython_EXECUTABLE={sys.executable}",
                           "-DLSTM_NATIVE_CUDA=OFF", *options], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def test_a_standalone_build_without_eigen_says_how_to_get_it(tmp_path):
    status, output = configure(tmp_path, "-DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=TRUE")
    assert status != 0
    assert "pip install cmeel-eigen" in " ".join(output.split()) and "libeigen3-dev" in output


def test_a_standalone_build_finds_the_json_parser_of_the_nlohmann_json_wheel(tmp_path):
    """Without a system nlohmann_json (disabled here), the headers of the nlohmann-json wheel, a build
    requirement, give the C++ model loader."""
    pytest.importorskip("nlohmann_json", reason="the nlohmann-json wheel (requirements-build.txt) is not installed")
    status, output = configure(tmp_path, "-DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=TRUE")
    assert status == 0, output
    config = (tmp_path / "build" / "include" / "lstm_native" / "config.hpp").read_text()
    assert "#define LSTM_NATIVE_WITH_MODEL_IO 1" in config
