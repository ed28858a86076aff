#!/usr/bin/env python3
"""Throughput of lstm_native alone (float32): inference forward and training step, next to this machine's sgemm.

For each config, peephole variant and mode it prints sequences/s and GFLOP/s, median and min-max over the
repeats that follow a warm-up, and the median as a percentage of the sgemm ceiling measured in the same run
(docs/DESIGN.md §6). FLOPs count the matmuls of docs/DESIGN.md §6 only: inference 2*T*B*(I+H)*4H, a
training step (forward with training=True, then backward with dy) 3 times that. The same count is used for
every peephole variant, so "full" (whose c @ p matmuls are not counted) reads lower than the work it does.

    python3 bench/throughput.py                          # all configs, all cores, peephole None and diagonal
    python3 bench/throughput.py --threads 1 --configs small medium --json out.jsonl
    python3 bench/throughput.py --quick --configs small  # a test run of a few seconds
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import time

CONFIGS = {  # name: (B, T, I, H)
    "small": (32, 50, 32, 64),
    "medium": (64, 100, 128, 256),
    "large": (64, 100, 512, 512),
}
SGEMM_N = 1024
MIN_REPEAT_S = 0.2  # a repeat loops over calls until it lasts this long, so that tiny calls are not timer noise


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="threads (default: lstm_native.get_num_threads(), all cores)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats after the warm-up (default 7)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS), help="default: all")
    parser.add_argument("--full-peephole", action="store_true", help='also time peephole="full"')
    parser.add_argument("--quick", action="store_true", help="3 repeats of one call each: a test run, not a measure")
    parser.add_argument("--json", metavar="PATH", help="also write one JSON line per config/variant/mode to PATH")
    args = parser.parse_args()
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def calls_per_repeat(fn, min_repeat_s: float) -> int:
    """How many calls of fn (warmed up) a repeat needs to last min_repeat_s, from one timed call."""
    start = time.perf_counter()
    fn()
    return max(1, math.ceil(min_repeat_s / (time.perf_counter() - start)))


def seconds_per_call(fn, repeats: int, min_repeat_s: float) -> list[float]:
    """Seconds per call of fn in each of `repeats` repeats, after a warm-up call and a calibration call."""
    fn()
    calls = calls_per_repeat(fn, min_repeat_s)
    result = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        result.append((time.perf_counter() - start) / calls)
    return result


def summary(per_second: list[float]) -> dict:
    return {"median": statistics.median(per_second), "min": min(per_second), "max": max(per_second)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def numpy_blas(np) -> str:
    """numpy's BLAS: from threadpoolctl when installed (it also names the kernel chosen at run time), else
    from numpy's build config (numpy >= 1.26)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        except TypeError:  # numpy < 1.26: show_config() only prints
            return "unknown (see numpy.show_config())"
        return f"{blas['name']} {blas['version']}"
    blas = next((info for info in threadpool_info() if info["user_api"] == "blas"), None)
    if blas is None:
        return "unknown (threadpoolctl found no BLAS)"
    return (f"{blas['internal_api']} {blas['version']}, {blas.get('architecture')} kernels, "
            f"{blas['num_threads']} thread(s)")


def main():
    args = parse_args()
    # numpy's OpenBLAS reads its thread count once, when numpy is imported: set it before, so that the sgemm
    # ceiling uses the same threads as lstm_native. Without --threads both use all cores.
    if args.threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np

    import lstm_native
    from lstm_native.ops import lstm_backward, lstm_forward

    if args.threads is not None:
        lstm_native.set_num_threads(args.threads)
    threads = lstm_native.get_num_threads()
    repeats, min_repeat_s = (3, 0.0) if args.quick else (args.repeats, MIN_REPEAT_S)
    rng = np.random.default_rng(0)

    # The sgemm ceiling, measured first, before OpenMP threads of lstm_native may still spin on the cores.
    # numpy's BLAS (usually OpenBLAS) is not the Eigen GEMM lstm_native uses, so this is "what this machine
    # gives a good sgemm", not an exact bound. OPENBLAS_CORETYPE, when set (it may be, on our machines),
    # forces an older OpenBLAS kernel and slows numpy: the header prints it; we report what numpy gives.
    a, b = (rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    sgemm_s = seconds_per_call(lambda: np.matmul(a, b, out=out), repeats, min_repeat_s)
    sgemm = statistics.median(2 * SGEMM_N**3 / s / 1e9 for s in sgemm_s)
    time.sleep(0.5)  # OpenBLAS threads spin ~0.1 s after a call, slowing the next calls on a small machine

    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "lstm_native": lstm_native.__version__,
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(np),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "sgemm_gflops": sgemm,
        "load_average": os.getloadavg()[0],  # 1 min, at the start: this machine is shared, the load is noise
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    print(f"- machine: {machine['cpu']}, {machine['cores']} cores; lstm_native {machine['lstm_native']} "
          f"on {threads} thread(s); float32; {repeats} repeats{' (--quick)' if args.quick else ''}; "
          f"load average {machine['load_average']:.2f}")
    print(f"- sgemm ceiling: {sgemm:.1f} GFLOP/s (median, numpy float32 {SGEMM_N}x{SGEMM_N} matmul; "
          f"numpy {np.__version__}, {machine['numpy_blas']}, OPENBLAS_NUM_THREADS={machine['OPENBLAS_NUM_THREADS']}, "
          f"OPENBLAS_CORETYPE={machine['OPENBLAS_CORETYPE']})")
    print()
    print("| config (B,T,I,H) | peephole | mode | seq/s median | seq/s min-max | GFLOP/s median | GFLOP/s min-max "
          "| % of sgemm |")
    print("|---|---|---|--:|--:|--:|--:|--:|")

    peepholes = [None, "diagonal"] + (["full"] if args.full_peephole else [])
    records = []
    for name in args.configs:
        B, T, I, H = CONFIGS[name]
        x = rng.standard_normal((B, T, I), dtype=np.float32)
        dy = rng.standard_normal((B, T, H), dtype=np.float32)
        W = rng.standard_normal((I, 4 * H), dtype=np.float32) / np.float32(math.sqrt(I))
        U = rng.standard_normal((H, 4 * H), dtype=np.float32) / np.float32(math.sqrt(H))
        bias = rng.standard_normal(4 * H, dtype=np.float32) / np.float32(10)
        p_shapes = {None: None, "diagonal": (3, H), "full": (3, H, H)}
        forward_flops = 2 * T * B * (I + H) * 4 * H
        for peephole in peepholes:
            shape = p_shapes[peephole]
            p = None if shape is None else rng.standard_normal(shape, dtype=np.float32) / np.float32(math.sqrt(H))

            def forward():
                lstm_forward(x, W, U, bias, p, peephole=peephole, training=False)

            def train():
                lstm_backward(lstm_forward(x, W, U, bias, p, peephole=peephole, training=True).context, dy)

            for mode, fn, flops in (("forward", forward, forward_flops), ("train", train, 3 * forward_flops)):
                seconds = seconds_per_call(fn, repeats, min_repeat_s)
                seqs = summary([B / s for s in seconds])
                gflops = summary([flops / s / 1e9 for s in seconds])
                print(f"| {name} ({B},{T},{I},{H}) | {peephole} | {mode} "
                      f"| {seqs['median']:.1f} | {seqs['min']:.1f}-{seqs['max']:.1f} "
                      f"| {gflops['median']:.2f} | {gflops['min']:.2f}-{gflops['max']:.2f} "
                      f"| {100 * gflops['median'] / sgemm:.0f}% |", flush=True)
                records.append({"config": name, "B": B, "T": T, "I": I, "H": H, "peephole": peephole,
                                "mode": mode, "dtype": "float32", "repeats": repeats, "seconds": seconds,
                                "seq_per_s": seqs, "gflops": gflops, **machine})

    if args.json:
        with open(args.json, "w") as out_file:
            out_file.writelines(json.dumps(record) + "\n" for record in records)


if __name__ == "__main__":
    main()
