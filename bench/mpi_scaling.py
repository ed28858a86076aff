#!/usr/bin/env python3
"""Data-parallel scaling of fit over MPI ranks (lstm_native.distributed.MPIStrategy), one thread per rank.

Run it under mpiexec with 1, then 2 (or more) ranks; rank 0 prints one line: the training throughput
(samples/s of the global batch), the mean step time, the communication share of a step (the time in the
gradient allreduce, waiting for the slowest rank included, over the whole step, from MPIStrategy.timings), and
the time of the allreduce alone (the same buffer after a barrier, no imbalance) as a share of a step.

    mpiexec -n 1 python3 bench/mpi_scaling.py
    mpiexec -n 2 python3 bench/mpi_scaling.py
    mpiexec -n 2 python3 bench/mpi_scaling.py --batch 128 --units 256 --json out.jsonl
    python3 bench/mpi_scaling.py --launch 1 2          # launches both with the mpiexec beside this python

Fixed global batch (strong scaling): with 2 ranks each computes half of every batch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    parser.add_argument("--timesteps", type=int, default=50)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="timed steps (one epoch) after a warm-up epoch")
    parser.add_argument("--json", metavar="PATH", help="append one JSON line to PATH (rank 0)")
    parser.add_argument("--launch", type=int, nargs="+", metavar="N", help="run mpiexec -n N for each N")
    return parser.parse_args()


def launch(args) -> None:
    beside = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    forwarded = [a for a in sys.argv[1:] if a != "--launch" and a not in map(str, args.launch)]
    for ranks in args.launch:
        subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, *forwarded], check=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))


def main() -> None:
    args = parse_args()
    if args.launch:
        return launch(args)
    import lstm_native
    from lstm_native import utils
    from lstm_native.distributed import MPIStrategy
    from lstm_native.layers import LSTM, Dense
    from lstm_native.models import Sequential

    lstm_native.set_num_threads(1)
    strategy = MPIStrategy(timeout=300)
    utils.set_random_seed(0)
    count = args.batch * args.steps
    x = np.random.default_rng(0).normal(size=(count, args.timesteps, args.features)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(count, 10)).astype(np.float32)
    model = Sequential([LSTM(args.units, input_shape=(args.timesteps, args.features)), Dense(10)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x[: args.batch * 3], y[: args.batch * 3], batch_size=args.batch, epochs=1, verbose=0,
              strategy=strategy)  # warm-up
    strategy.comm.Barrier()
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False, strategy=strategy)
    elapsed = time.perf_counter() - start
    timings = strategy.timings
    shares = strategy.comm.gather(timings["allreduce_seconds"] / timings["step_seconds"], root=0)
    send = strategy._send.copy()  # the allreduce alone (no imbalance to wait for): the same buffer, 100 times
    strategy.comm.Barrier()
    transfer = time.perf_counter()
    for _ in range(100):
        strategy._allreduce(send, np.empty_like(send), "the benchmark's allreduce")
    transfer = (time.perf_counter() - transfer) / 100
    parameters = sum(w.value.size for w in model.trainable_weights)
    if strategy.is_chief:
        record = {"ranks": strategy.size, "threads_per_rank": 1, "global_batch": args.batch,
                  "B_T_I_H": [args.batch, args.timesteps, args.features, args.units], "parameters": parameters,
                  "allreduce_bytes": parameters * 4, "samples_per_s": count / elapsed,
                  "step_ms": 1e3 * timings["step_seconds"] / timings["steps"],
                  "communication_share": shares, "allreduce_alone_ms": 1e3 * transfer, "cpus": os.cpu_count()}
        print(f"{strategy.size} rank(s) x 1 thread: {record['samples_per_s']:8.1f} samples/s, step "
              f"{record['step_ms']:.2f} ms, allreduce share of a step (per rank) "
              + ", ".join(f"{100 * s:.1f}%" for s in shares)
              + f"; the allreduce alone {1e3 * transfer:.3f} ms ({100e3 * transfer / record['step_ms']:.1f}% of a step)  [{parameters} parameters, batch {args.batch}]",
              flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
