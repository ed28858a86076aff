"""The C++ package: examples/cpp builds with find_package(lstm_native) against an installed copy and
computes what Python computes."""

from __future__ import annotations

import os
import platform
import re
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


def build_example(prefix: Path, build_dir: Path) -> None:
    run("cmake", "-S", EXAMPLE, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release")
    run("cmake", "--build", build_dir)


def isa_and_final_h(output: str) -> tuple[str | None, np.ndarray]:
    """forward_example's output: the build of the CPU code it ran (None from cuda_forward_example) and h."""
    header = re.match(rf"lstm_native {re.escape(lstm_native.__version__)}(?: \((\w+) code\))?, final h:\n", output)
    assert header, output
    return header.group(1), np.array([float(line) for line in output.splitlines()[1:]])


def final_h(output: str) -> np.ndarray:
    return isa_and_final_h(output)[1]


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


X86_64 = platform.machine().lower() in ("x86_64", "amd64")
BUILDS = ("generic", "avx2", "avx512") if X86_64 else ("generic",)


def cpu_runs(isa: str) -> bool:
    return isa == "generic" or lstm_native._core.cpu_supports(isa)


@pytest.fixture(scope="module")
def wheel_example(tmp_path_factory) -> Path:
    """examples/cpp built against the package's own install (the wheel's)."""
    build_dir = tmp_path_factory.mktemp("wheel_example")
    build_example(Path(lstm_native.cmake_prefix()), build_dir)
    return build_dir


def run_forward_example(build_dir: Path, isa: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "LSTM_NATIVE_ISA"}
    if isa is not None:
        env["LSTM_NATIVE_ISA"] = isa
    return subprocess.run([build_dir / "forward_example"], env=env, capture_output=True, text=True, timeout=60)


def disassembly_by_member(archive: Path) -> dict[str, str]:
    """objdump's disassembly of each object in a static archive."""
    text = run("objdump", "-d", "--no-show-raw-insn", archive)
    parts = re.split(r"^(\S+\.o):\s+file format .*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_installed_library_holds_every_build_of_the_cpu_code():
    """Issue 19: lstm_native::lstm_native, the one CPU target, holds the baseline build and, on x86-64, the AVX2
    and AVX-512 builds (the objects of each apart, each with its instructions); the code that runs before the
    choice (the dispatch, the threads, the model loader) and the baseline build have no AVX instructions."""
    if not shutil.which("objdump"):
        pytest.skip("needs binutils' objdump")
    prefix = Path(lstm_native.cmake_prefix())
    targets = (prefix / "lib" / "cmake" / "lstm_native" / "lstm_nativeTargets.cmake").read_text()
    assert "lstm_native::lstm_native_avx2" not in targets and "lstm_native::lstm_native_avx512" not in targets
    archive = prefix / "lib" / "liblstm_native.a"
    symbols = dict(re.findall(r"^(\S+\.o):\n(.*?)(?:\n\n|\Z)", run("nm", "-g", "--defined-only", archive), flags=re.M | re.S))
    for isa in BUILDS:  # a build's one global symbol: its table (the linker would merge the builds' other ones)
        assert [line.split()[-1] for line in symbols[f"lstm_native_kernels_{isa}.o"].splitlines()] == [
            f"lstm_native_cpu_kernels_{isa}"]
    members = disassembly_by_member(archive)
    builds = {isa: members.pop(f"lstm_native_kernels_{isa}.o") for isa in BUILDS}
    assert "%ymm" not in builds["generic"] and "%zmm" not in builds["generic"]
    if X86_64:
        assert "%ymm" in builds["avx2"] and "%zmm" not in builds["avx2"]
        assert "%zmm" in builds["avx512"]
    assert members, "the dispatching objects"
    for name, code in members.items():
        assert "%ymm" not in code and "%zmm" not in code, f"{name} runs before the choice: baseline code only"


def test_the_example_runs_the_fastest_build_this_cpu_has(wheel_example):
    expected = next(isa for isa in reversed(BUILDS) if cpu_runs(isa))
    done = run_forward_example(wheel_example, None)
    assert done.returncode == 0, done.stderr
    isa, h = isa_and_final_h(done.stdout)
    assert isa == expected
    np.testing.assert_allclose(h, expected_final_h(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("forced", BUILDS)
def test_lstm_native_isa_forces_a_build(wheel_example, forced):
    if not cpu_runs(forced):
        pytest.skip(f"this CPU cannot run the {forced} build")
    done = run_forward_example(wheel_example, forced)
    assert done.returncode == 0, done.stderr
    isa, h = isa_and_final_h(done.stdout)
    assert isa == forced
    np.testing.assert_allclose(h, expected_final_h(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("forced", ["avx2", "avx512"])
def test_forcing_a_build_this_cpu_cannot_run_says_so(wheel_example, forced):
    if cpu_runs(forced):
        pytest.skip(f"this CPU runs the {forced} build")
    done = run_forward_example(wheel_example, forced)
    assert done.returncode != 0
    assert f"LSTM_NATIVE_ISA={forced}: this CPU lacks its instructions" in done.stderr


@pytest.mark.parametrize("value", ["sse9", "", "AVX2"])
def test_an_unknown_lstm_native_isa_says_so(wheel_example, value):
    done = run_forward_example(wheel_example, value)
    assert done.returncode != 0
    assert f"LSTM_NATIVE_ISA: expected 'auto', 'generic', 'avx2' or 'avx512', got '{value}'" in done.stderr


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
