#!/usr/bin/env python3
"""Streaming latency: one step per call at batch 1, the state kept between calls, for small models (issue 20).

Per config, each implementation runs the same model (random weights, no peepholes, float32, one thread) one step at
a time over a test signal and times every call; the table gives the median and the 99th percentile per step:

    ours C++     lstm_native::Stream::step (examples/cpp/stream.cpp, built against the installed package)
    ours Python  model.stream(1).step(frame)
    onnxruntime  the graph of lstm_native.onnx.export(model, streaming=True), one session.run per step, the
                 final h/c of each LSTM fed back as the next step's initial ones
    torch        nn.LSTM stepping with its (h, c), under torch.inference_mode()

The implementations take turns in rounds (each round times every implementation of a config), so that a load
that drifts on a shared machine falls on all of them alike; the percentiles pool the rounds' steps.
Targets: C++ <= 1 us per step for LSTM(16) with one input feature; C++ >= 3x faster than onnxruntime's step;
Python within 10 us.

    python3 bench/streaming.py                  # every config, 3 rounds of 3000 steps (~1 min)
    python3 bench/streaming.py --quick          # a test run (tests/test_bench_smoke.py)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "cpp"
# name: (input features, LSTM units per layer)
CONFIGS = {"lstm16-in1": (1, [16]), "lstm32-in1": (1, [32]), "lstm32-in16": (16, [32]), "2xlstm32-in8": (8, [32, 32])}
IMPLS = ("ours C++", "ours Python", "onnxruntime", "torch")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--steps", type=int, default=3000, help="timed steps per round and implementation")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one config, 1 round of 300 steps: a test run")
    args = parser.parse_args()
    if args.quick:
        args.configs, args.steps, args.rounds = ["lstm16-in1"], 300, 1
    return args


def build_model(features: int, units: list):
    import lstm_native as ln

    model = ln.models.Sequential([ln.layers.Input((None, features))] + [
        ln.layers.LSTM(u, peephole=None, return_sequences=k + 1 < len(units)) for k, u in enumerate(units)])
    model.build((None, None, features))
    return model


def signal(steps: int, features: int) -> np.ndarray:
    t = np.arange(steps, dtype=np.float32)[:, None]
    return np.sin(np.float32(0.05) * t + np.arange(features, dtype=np.float32)).astype(np.float32)


def timed_steps(step, frames) -> np.ndarray:
    """Microseconds of each call step(frame) after 100 untimed ones."""
    for frame in frames[:100]:
        step(frame)
    times = np.empty(len(frames) - 100)
    clock = time.perf_counter_ns
    for k, frame in enumerate(frames[100:]):
        start = clock()
        step(frame)
        times[k] = clock() - start
    return times / 1000.0


def ours_python(model, features: int, steps: int):
    stream = model.stream(1)
    frames = [f.reshape(1, -1) for f in signal(steps + 100, features)]
    return timed_steps(stream.step, frames)


def ours_cpp(program: Path, model_file: Path, steps: int) -> np.ndarray:
    """The example's median and 99th percentile (it times each step itself, with steady_clock)."""
    out = subprocess.run([program, model_file, str(steps)], capture_output=True, text=True, check=True).stdout
    median, p99 = map(float, re.search(r"step_us median (\S+) p99 (\S+)", out).groups())
    return np.array([median, p99])


def onnxruntime_session(model, path: Path):
    import onnxruntime

    import lstm_native.onnx

    lstm_native.onnx.export(model, path, streaming=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnxruntime_steps(session, features: int, units: list, steps: int):
    states = {}
    for k, u in enumerate(units):
        states[f"h0_{k}"] = np.zeros((1, u), np.float32)
        states[f"c0_{k}"] = np.zeros((1, u), np.float32)
    outputs = ["output"] + [f"{kind}_n_{k}" for k in range(len(units)) for kind in ("h", "c")]

    def step(frame):
        results = session.run(outputs, {"input": frame, **states})
        for k in range(len(units)):
            states[f"h0_{k}"], states[f"c0_{k}"] = results[1 + 2 * k], results[2 + 2 * k]
        return results[0]

    frames = [f.reshape(1, 1, -1) for f in signal(steps + 100, features)]
    return timed_steps(step, frames)


def torch_steps(features: int, units: list, steps: int):
    import torch

    torch.set_num_threads(1)
    lstm = torch.nn.LSTM(features, units[0], num_layers=len(units), batch_first=True).eval()
    state = [None]

    def step(frame):
        with torch.inference_mode():
            y, state[0] = lstm(frame, state[0])
        return y

    frames = [torch.from_numpy(f.reshape(1, 1, -1)) for f in signal(steps + 100, features)]
    return timed_steps(step, frames)


def build_example(build_dir: Path) -> Path:
    import lstm_native

    for command in (["cmake", "-S", EXAMPLE, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={lstm_native.cmake_prefix()}",
                     "-DCMAKE_BUILD_TYPE=Release"], ["cmake", "--build", build_dir, "--target", "stream_example"]):
        subprocess.run(command, check=True, capture_output=True, text=True)
    return build_dir / "stream_example"


def main():
    args = parse_args()
    import lstm_native as ln

    ln.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        program = build_example(scratch / "build") if "ours C++" in args.impls else None
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, lstm_native {ln.isa} build, "
              f"{args.rounds} rounds x {args.steps} steps, batch 1, one thread; microseconds per step")
        print(f"{'config':14} {'impl':12} {'median':>8} {'p99':>8}   ratio of medians")
        for name in args.configs:
            features, units = CONFIGS[name]
            model = build_model(features, units)
            model_file = scratch / f"{name}.safetensors"
            model.save(model_file)
            session = onnxruntime_session(model, scratch / f"{name}.onnx") if "onnxruntime" in args.impls else None
            pooled = {impl: [] for impl in args.impls}
            for _ in range(args.rounds):
                for impl in args.impls:
                    if impl == "ours C++":
                        pooled[impl].append(ours_cpp(program, model_file, args.steps))
                    elif impl == "ours Python":
                        pooled[impl].append(ours_python(model, features, args.steps))
                    elif impl == "onnxruntime":
                        pooled[impl].append(onnxruntime_steps(session, features, units, args.steps))
                    else:
                        pooled[impl].append(torch_steps(features, units, args.steps))
            summary = {}
            for impl, runs in pooled.items():
                if impl == "ours C++":  # each run's (median, p99): their medians over the rounds
                    summary[impl] = tuple(np.median(np.array(runs), axis=0))
                else:
                    times = np.concatenate(runs)
                    summary[impl] = (float(np.median(times)), float(np.percentile(times, 99)))
            for impl, (median, p99) in summary.items():
                ratios = [f"{peer}/{impl}: {summary[peer][0] / median:.1f}x" for peer in ("onnxruntime", "torch")
                          if peer in summary and impl.startswith("ours")]
                print(f"{name:14} {impl:12} {median:8.2f} {p99:8.2f}   {'  '.join(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
