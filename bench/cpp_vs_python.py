#!/usr/bin/env python3
"""The installed C++ library against the Python module, in one run: examples/cpp/timing.cpp (built here
against lstm_native.cmake_prefix()) and lstm_native.ops time the same float32 diagonal-peephole LSTM, inference
(forward) and a training step (forward with training=True, then backward with dy, every gradient), at the
same size and threads, each the median over its repeats after a warm-up call. It prints the build of the CPU
code each ran and the ratio (Python's median / C++'s: above 1, the C++ program is faster).

    python3 bench/cpp_vs_python.py                       # medium: B=64, T=100, I=128, H=256
    python3 bench/cpp_vs_python.py --threads 1 --repeats 20
    python3 bench/cpp_vs_python.py --quick               # a test run of a few seconds (small sizes)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cpp"
MEDIUM = (64, 100, 128, 256)  # B, T, I, H
QUICK = (8, 10, 16, 32)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="threads of both (default: lstm_native's default)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per mode (default 10)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repeats: a test run")
    parser.add_argument("--build-dir", type=Path, help="where to build examples/cpp (default: a temporary folder)")
    return parser.parse_args()


def build_timing_program(build_dir: Path, prefix: str) -> Path:
    for command in (["cmake", "-S", EXAMPLE, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"],
                    ["cmake", "--build", build_dir, "--target", "timing_example"]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}")
    return build_dir / "timing_example"


def time_cpp(program: Path, size, repeats: int, threads: int) -> dict:
    """timing_example's report: isa, threads, and the median seconds of inference and train."""
    # The environment of this process: the OMP_WAIT_POLICY lstm_native set at import, LSTM_NATIVE_ISA if given.
    done = subprocess.run([program, *map(str, size), str(repeats), str(threads)], capture_output=True, text=True,
                          env=os.environ)
    if done.returncode != 0:
        sys.exit(f"{program} failed: {done.stderr}")
    report = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    return {"isa": report["isa"], "threads": int(report["threads"]), "inference": float(report["inference"]),
            "train": float(report["train"])}


def median_seconds(call, repeats: int) -> float:
    call()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def time_python(size, repeats: int) -> dict:
    import numpy as np

    from lstm_native.ops import lstm_backward, lstm_forward

    B, T, I, H = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    W = rng.standard_normal((I, 4 * H), dtype=np.float32) / np.float32(math.sqrt(I))
    U = rng.standard_normal((H, 4 * H), dtype=np.float32) / np.float32(math.sqrt(H))
    b = rng.standard_normal(4 * H, dtype=np.float32) / np.float32(10)
    p = rng.standard_normal((3, H), dtype=np.float32) / np.float32(math.sqrt(H))

    def inference():
        lstm_forward(x, W, U, b, p, peephole="diagonal", training=False)

    def train():
        lstm_backward(lstm_forward(x, W, U, b, p, peephole="diagonal", training=True).context, dy)

    return {"inference": median_seconds(inference, repeats), "train": median_seconds(train, repeats)}


def main():
    args = parse_args()
    import lstm_native

    if args.threads is not None:
        lstm_native.set_num_threads(args.threads)
    threads = lstm_native.get_num_threads()
    size, repeats = (QUICK, 3) if args.quick else (MEDIUM, args.repeats)
    with tempfile.TemporaryDirectory() as scratch:
        program = build_timing_program(args.build_dir or Path(scratch), lstm_native.cmake_prefix())
        cpp = time_cpp(program, size, repeats, threads)
        python = time_python(size, repeats)
    load = os.getloadavg()[0]
    print(f"- lstm_native {lstm_native.__version__}, float32, diagonal peephole, B,T,I,H = {size}, {threads} thread(s), "
          f"{repeats} repeats, median; C++: {cpp['isa']} code on {cpp['threads']} thread(s), Python: "
          f"lstm_native.isa = {lstm_native.isa}; load average {load:.2f} (a shared machine adds noise)")
    print()
    print("| mode | C++ ms | Python ms | Python / C++ |")
    print("|---|--:|--:|--:|")
    for mode in ("inference", "train"):
        print(f"| {mode} | {1e3 * cpp[mode]:.4g} | {1e3 * python[mode]:.4g} | {python[mode] / cpp[mode]:.2f} |")


if __name__ == "__main__":
    main()
