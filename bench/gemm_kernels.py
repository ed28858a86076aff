#!/usr/bin/env python3
"""The core's matrix products with each candidate kernel, one thread: which library would make them faster.

The CPU core spends most of its time in three kinds of product (docs/DESIGN.md §3), each on one thread's share:
    recurrence   z_t += h_{t-1} U per step, for a chunk of batch rows     M = rows, K = H, N = 4H
    projection   x W + b for a block of at most 64 rows (x-rows)            M = 64,   K = I, N = 4H
    backward     dh = dz_t Uᵀ per step, for a chunk of batch rows         M = rows, K = 4H, N = H
This script builds bench/gemm_kernels.cpp and times them at the shapes of bench/peers.py's configs with the
kernels at hand: the core's own (Eigen's gebp behind cpp/src/packed_gemm_cpu.hpp, the weights packed once), MKL
(`mkl-static`: plain, and with the weights packed once) and OpenBLAS (`scipy-openblas32`). MKL and OpenBLAS
are installed from the package index into --prefix (once; pip install --no-deps --prefix) when asked for.
oneDNN is not a candidate here: the package index's `onednn` is a SYCL build that needs Intel's SYCL and
OpenCL runtimes (`dpcpp-cpp-rt`, `intel-opencl-rt`).

    python3 bench/gemm_kernels.py                         # every kernel, every config (~2 min, plus downloads)
    python3 bench/gemm_kernels.py --kernels eigen --quick # a test run (tests/test_bench_smoke.py)
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE.parent / "cpp" / "src"
CONFIGS = {"tiny": (1, 100, 16, 32), "small": (32, 50, 32, 64), "medium": (64, 100, 128, 256),
           "large": (64, 100, 512, 512), "long": (16, 1000, 64, 128)}  # bench/peers.py's: B, T, I, H
KERNELS = ("eigen", "mkl", "openblas")
WHEELS = {"mkl": ["mkl-static", "mkl-include"], "openblas": ["scipy-openblas32"]}
ISA_FLAGS = {"avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
             "avx2": ["-mavx2", "-mfma"], "generic": []}  # as cmake/LstmNativeLibraries.cmake builds the core


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per product (default 7)")
    parser.add_argument("--prefix", type=Path, default=Path.home() / ".cache" / "lstm_native-bench",
                        help="where MKL and OpenBLAS are installed from the package index (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one config (small), 2 repeats: a test run")
    args = parser.parse_args()
    if args.quick:
        args.configs, args.repeats = ["small"], 2
    return args


def recurrence_rows(batch: int, hidden: int) -> int:
    """The core's batch-row chunk of the recurrence (recurrence_chunk_rows in cpp/src/sequence_cpu.hpp)."""
    half = (batch // 2 + 3) // 4 * 4
    return max(4, min(16 if hidden < 256 else 32, half))


def products(config: str) -> dict[str, tuple[int, int, int]]:
    B, T, I, H = CONFIGS[config]
    rows = min(B, recurrence_rows(B, H))
    return {"recurrence": (rows, H, 4 * H), "projection": (min(64, B * T), I, 4 * H), "backward": (rows, 4 * H, H)}


def install(prefix: Path, kernel: str) -> None:
    marker = prefix / f".{kernel}-installed"
    if marker.exists():
        return
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--prefix", str(prefix), *WHEELS[kernel]]
    subprocess.run(command, check=True)
    marker.touch()


def library_flags(prefix: Path, kernel: str) -> list[str]:
    if kernel == "mkl":
        lib = prefix / "lib"
        return ["-DLSTM_NATIVE_BENCH_MKL=1", f"-I{prefix / 'include'}", "-Wl,--start-group",
                *(str(lib / f"libmkl_{name}.a") for name in ("intel_lp64", "sequential", "core")), "-Wl,--end-group",
                "-lpthread", "-lm", "-ldl"]
    found = glob.glob(str(prefix / "lib" / "python3*" / "site-packages" / "scipy_openblas32" / "lib"))
    if not found:
        sys.exit(f"scipy-openblas32 is not under {prefix}: remove {prefix}/.openblas-installed and run again")
    return ["-DLSTM_NATIVE_BENCH_OPENBLAS=1", f"-L{found[0]}", "-lscipy_openblas", f"-Wl,-rpath,{found[0]}"]


def build(args, build_dir: Path) -> Path:
    import lstm_native

    eigen = Path(str(importlib.metadata.distribution("cmeel-eigen").locate_file("cmeel.prefix"))) / "include" / "eigen3"
    program = build_dir / "gemm_kernels"
    command = [os.environ.get("CXX", "g++"), "-std=c++17", "-O3", "-DNDEBUG", *ISA_FLAGS.get(lstm_native.isa, []),
               f"-I{eigen}", f"-I{SOURCES}", str(HERE / "gemm_kernels.cpp"), "-o", str(program)]
    for kernel in args.kernels:
        if kernel != "eigen":
            install(args.prefix, kernel)
            command += library_flags(args.prefix, kernel)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return program


def main() -> int:
    args = parse_args()
    import lstm_native
    from throughput import cpu_model

    build_dir = Path(tempfile.mkdtemp(prefix="lstm_native-gemm-"))
    try:
        program = build(args, build_dir)
        shapes = {(config, name): shape for config in args.configs for name, shape in products(config).items()}
        distinct = list(dict.fromkeys(shapes.values()))
        done = subprocess.run([str(program), str(args.repeats), *(str(n) for shape in distinct for n in shape)],
                              capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    rates: dict[tuple[int, int, int], dict[str, float]] = {}
    for line in done.stdout.splitlines():
        M, K, N, kernel, gflops = line.split()
        rates.setdefault((int(M), int(K), int(N)), {})[kernel] = float(gflops)
    kernels = list(next(iter(rates.values())))
    print(f"# The core's products, one thread, GFLOP/s (median of {args.repeats})\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; "
          f"built for {lstm_native.isa}\n")
    print("| config | product | M | K | N | " + " | ".join(kernels) + " | best ÷ eigen |")
    print("|---|---|--:|--:|--:|" + "--:|" * len(kernels) + "--:|")
    for (config, name), shape in shapes.items():
        row = rates[shape]
        print(f"| {config} | {name} | {' | '.join(map(str, shape))} | "
              + " | ".join(f"{row[k]:.1f}" for k in kernels) + f" | {max(row.values()) / row['eigen']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
