#!/usr/bin/env python3
"""Training throughput with the fused regularizers against without them, side by side in one run.

The training step (lstm_forward(training=True) + lstm_backward) of one diagonal-peephole LSTM layer, float32,
at B=64, T=100, I=128, H=256 by default, without regularization and with dropout + recurrent dropout +
zoneout (and optionally weight-drop). The two are timed in alternation, repeat after repeat, so that machine
noise hits both alike; the median ratio is the figure.

    python3 bench/regularization_speed.py [--threads N] [--repeats 15] [--weight-drop]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lstm_native
from lstm_native import ops

REGULARIZED = dict(dropout=0.25, recurrent_dropout=0.25, zoneout_h=0.1, zoneout_c=0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(64, 100, 128, 256), metavar=("B", "T", "I", "H"))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--weight-drop", action="store_true", help="add weight_drop=0.25 to the regularizers")
    args = parser.parse_args()
    if args.threads:
        lstm_native.set_num_threads(args.threads)
    B, T, I, H = args.shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    W, U = (0.1 * rng.standard_normal(s, dtype=np.float32) for s in ((I, 4 * H), (H, 4 * H)))
    b, p = np.zeros(4 * H, np.float32), np.zeros((3, H), np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    regularized = dict(REGULARIZED, weight_drop=0.25) if args.weight_drop else REGULARIZED

    def step(rates, seed):
        out = ops.lstm_forward(x, W, U, b, p, training=True, seed=seed, **rates)
        ops.lstm_backward(out.context, dy=dy)

    times = {"plain": [], "regularized": []}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, rates in (("plain", {}), ("regularized", regularized)):
            start = time.perf_counter()
            step(rates, repeat)
            if repeat:
                times[name].append(time.perf_counter() - start)
    plain, reg = (statistics.median(times[k]) for k in ("plain", "regularized"))
    ratios = [a / b for a, b in zip(times["plain"], times["regularized"])]
    print(f"lstm_native {lstm_native.__version__} ({lstm_native.isa}), {lstm_native.get_num_threads()} thread(s), "
          f"B={B} T={T} I={I} H={H}, {args.repeats} repeats")
    print(f"plain training step:       {B / plain:8.1f} sequences/s (median)")
    print(f"with {', '.join(f'{k}={v}' for k, v in regularized.items())}: {B / reg:8.1f} sequences/s (median)")
    print(f"throughput ratio regularized/plain: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
