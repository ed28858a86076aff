#!/usr/bin/env python3
"""Peak memory of one training step of one LSTM layer (float32), lstm_native against PyTorch's nn.LSTM.

The step: ours lstm_native.ops.lstm_forward(training=True) then lstm_backward(dy); PyTorch nn.LSTM
(batch_first) forward then y.backward(dy), with x.requires_grad so that both compute dx, dW, dU and the bias
gradient. Both compute the same function: ours runs with peephole=None (nn.LSTM has no peepholes).

Each measure runs in a fresh interpreter that imports one framework, sets its threads, runs a step on a tiny
shape (lazy initialization, kernels, thread pools), allocates x, dy and the weights (both from the same numpy
generator), collects garbage, and then resets the kernel's peak-RSS mark (`5` into /proc/self/clear_refs,
which getrusage's ru_maxrss follows). The figure is ru_maxrss after the step minus the RSS just before it:
what the step itself adds at its peak (workspace, saved activations, outputs, gradients, scratch). A second
step follows, after the first's results are dropped, measured the same way (steady state). Where the mark
cannot be reset (not Linux), the baseline is the RSS before the step and the figure is flagged: an earlier,
higher peak would hide the step's.

Two figures that do not depend on the allocator are reported beside it: ours, the training workspace that
forward fills for backward (the core's training_workspace_size; lstm_native.ops does not expose it, so it is
read from the native module) plus the arrays the step returns; PyTorch, the bytes of the tensors its autograd
graph saves for backward (saved_tensors_hooks; storages of x and the weights, allocated before, not counted).

    python3 bench/peak_memory.py                       # small, medium, large; 3 fresh processes each; ~1-1.5 min
    python3 bench/peak_memory.py --configs large --repeats 5 --json memory.jsonl
    python3 bench/peak_memory.py --quick               # small only, 1 process each: a test run of seconds
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import resource
import statistics
import subprocess
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as every bench script: numpy's BLAS on one thread

from throughput import cpu_model  # noqa: E402  bench/throughput.py (this script's folder is sys.path[0])

CONFIGS = {  # name: (B, T, I, H), as bench/throughput.py
    "small": (32, 50, 32, 64),
    "medium": (64, 100, 128, 256),
    "large": (64, 100, 512, 512),
}
MIB = 2**20
MARK = "RESULT "  # a worker's last stdout line: MARK + JSON


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS), help="default: all")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both frameworks "
                        "(default: all logical CPUs)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per framework and config (default 3)")
    parser.add_argument("--quick", action="store_true", help="small config, one process each: a test run")
    parser.add_argument("--json", metavar="PATH", help="also write one JSON line per config to PATH")
    parser.add_argument("--worker", choices=("ours", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    if args.quick:
        args.configs, args.repeats = ["small"], 1
    return args


# -- the worker: one framework, one shape, in a fresh process ------------------------------------------------
def rss_bytes() -> int:
    """The resident set size now (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak() -> bool:
    """Resets the peak-RSS mark to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measured(step) -> dict:
    """Runs step() once: its peak RSS minus the RSS before it, and what it leaves resident."""
    gc.collect()
    reset = reset_peak()
    before = rss_bytes()
    peak_before = max_rss_bytes()
    result = step()
    peak = max_rss_bytes()
    after = rss_bytes()
    del result
    return {"peak_delta": peak - before, "retained_delta": after - before, "rss_before": before,
            "peak_reset": reset, "hidden_by_earlier_peak": (not reset) and peak_before > before and peak == peak_before}


def ours_worker(B, T, I, H, threads) -> dict:
    import numpy as np

    import lstm_native
    from lstm_native import ops
    from lstm_native._backend import core

    lstm_native.set_num_threads(threads)

    def arrays(B, T, I, H):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, T, I), dtype=np.float32)
        dy = rng.standard_normal((B, T, H), dtype=np.float32)
        W = rng.standard_normal((I, 4 * H), dtype=np.float32) / np.float32(np.sqrt(I))
        U = rng.standard_normal((H, 4 * H), dtype=np.float32) / np.float32(np.sqrt(H))
        b = np.zeros(4 * H, np.float32)
        return x, dy, W, U, b

    def step(x, dy, W, U, b):
        out = ops.lstm_forward(x, W, U, b, None, peephole=None, training=True)
        return out.y, out.h, out.c, ops.lstm_backward(out.context, dy=dy)

    step(*arrays(2, 3, 4, 5))  # warm-up on a tiny shape
    data = arrays(B, T, I, H)
    first = measured(lambda: step(*data))
    second = measured(lambda: step(*data))
    workspace = core.training_workspace_size(B, T, I, H) * 4
    returned = 4 * (B * T * H + 2 * B * H  # y, h, c
                    + B * T * I + 2 * B * H + (I + H + 1) * 4 * H)  # dx, dh0, dc0, dW, dU, db
    return {"first": first, "second": second, "analytic": workspace + returned, "analytic_workspace": workspace,
            "analytic_returned": returned, "version": lstm_native.__version__, "isa": lstm_native.isa}


def torch_worker(B, T, I, H, threads) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)

    def tensors(B, T, I, H):
        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.standard_normal((B, T, I), dtype=np.float32)).requires_grad_()
        dy = torch.from_numpy(rng.standard_normal((B, T, H), dtype=np.float32))
        torch.manual_seed(0)
        lstm = torch.nn.LSTM(I, H, batch_first=True)
        return x, dy, lstm

    def step(x, dy, lstm):
        y, (h, c) = lstm(x)
        y.backward(dy)
        return y, h, c

    def drop_gradients(x, dy, lstm):  # as the arrays ours returns, dropped between steps (not measured)
        x.grad = None
        lstm.zero_grad(set_to_none=True)

    step(*tensors(2, 3, 4, 5))  # warm-up on a tiny shape
    data = tensors(B, T, I, H)
    first = measured(lambda: step(*data))
    drop_gradients(*data)
    second = measured(lambda: step(*data))

    x, dy, lstm = data  # what autograd keeps for backward, new storages only
    known = {x.untyped_storage().data_ptr()} | {p.untyped_storage().data_ptr() for p in lstm.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in known:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y, _ = lstm(x)
    grad_fn = type(y.grad_fn.next_functions[0][0]).__name__ if y.grad_fn.next_functions else type(y.grad_fn).__name__
    return {"first": first, "second": second, "analytic": sum(saved.values()), "saved_tensors": len(saved),
            "version": torch.__version__, "grad_fn": grad_fn, "mkldnn": torch.backends.mkldnn.is_available()}


# -- the driver ------------------------------------------------------------------------------------------------
def run_worker(worker: str, shape, threads: int) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--worker", worker, "--threads", str(threads),
            "--shape", *map(str, shape)]
    run = subprocess.run(argv, capture_output=True, text=True)
    lines = run.stdout.splitlines()
    if run.returncode != 0 or not lines or not lines[-1].startswith(MARK):
        sys.exit(f"worker {worker} {shape} failed (exit status {run.returncode}):\n{run.stdout}\n{run.stderr}")
    return json.loads(lines[-1][len(MARK):])


def mib_summary(values) -> dict:
    values = [v / MIB for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def cell(summary: dict) -> str:
    if f"{summary['min']:.1f}" == f"{summary['max']:.1f}":
        return f"{summary['median']:.1f}"
    return f"{summary['median']:.1f} ({summary['min']:.1f}-{summary['max']:.1f})"


def main():
    args = parse_args()
    if args.worker:
        worker = ours_worker if args.worker == "ours" else torch_worker
        print(MARK + json.dumps(worker(*args.shape, args.threads)), flush=True)
        return
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; {args.threads} thread(s) for each framework; "
          f"float32; {args.repeats} fresh process(es) per framework and config"
          f"{'; --quick: a test run' if args.quick else ''}", flush=True)
    records, header_done = [], False
    for name in args.configs:
        shape = CONFIGS[name]
        runs = {w: [run_worker(w, shape, args.threads) for _ in range(args.repeats)] for w in ("ours", "torch")}
        ours, torch = runs["ours"][0], runs["torch"][0]
        if not header_done:
            print(f"- lstm_native {ours['version']} ({ours['isa']}); PyTorch {torch['version']} (nn.LSTM's backward "
                  f"node: {torch['grad_fn']}; mkldnn {'available' if torch['mkldnn'] else 'not available'})")
            print("- peak: peak RSS during the step minus RSS before it, MiB, median (min-max) over processes; "
                  "analytic: ours workspace + returned arrays, PyTorch tensors saved for backward\n")
            print("| config (B,T,I,H) | ours peak | PyTorch peak | ratio ours/PyTorch | ours 2nd step | "
                  "PyTorch 2nd step | ours kept for backward (workspace) + returned | PyTorch saved for backward |")
            print("|---|--:|--:|--:|--:|--:|--:|--:|")
            header_done = True
        figures = {w: {step: mib_summary([r[step]["peak_delta"] for r in runs[w]]) for step in ("first", "second")}
                   for w in runs}
        ratio = figures["ours"]["first"]["median"] / figures["torch"]["first"]["median"]
        flagged = any(r[s]["hidden_by_earlier_peak"] for w in runs for r in runs[w] for s in ("first", "second"))
        print(f"| {name} {shape} | {cell(figures['ours']['first'])} | {cell(figures['torch']['first'])} "
              f"| {ratio:.2f}{' (flagged)' if flagged else ''} "
              f"| {cell(figures['ours']['second'])} | {cell(figures['torch']['second'])} "
              f"| {ours['analytic_workspace'] / MIB:.1f} + {ours['analytic_returned'] / MIB:.1f} "
              f"| {torch['analytic'] / MIB:.1f} ({torch['saved_tensors']} tensors) |", flush=True)
        B, T, I, H = shape
        records.append({"config": name, "B": B, "T": T, "I": I, "H": H, "dtype": "float32", "threads": args.threads,
                        "peak_mib": figures, "ratio_ours_torch": ratio, "flagged": flagged,
                        "ours_analytic_mib": ours["analytic"] / MIB, "torch_saved_mib": torch["analytic"] / MIB,
                        "runs": runs, "cpu": cpu_model(), "cores": os.cpu_count(), "quick": args.quick,
                        "date": datetime.datetime.now().isoformat(timespec="seconds")})
    print("\nratio: ours' peak over PyTorch's, first step (issue target: <= 1)")
    if args.json:
        with open(args.json, "w") as out_file:
            out_file.writelines(json.dumps(record) + "\n" for record in records)


if __name__ == "__main__":
    main()
