#!/usr/bin/env python3
"""lstm_native.torch.LSTM where PyTorch users train: a training step and inference of a classifier (one LSTM
layer, its last step's output through a Linear head), ours against the module a PyTorch user has today, in one
run, float32 on the CPU.

Rows, each ours against its peer in the same run (ratios: ours' sequences/s over the peer's, medians):
    plain        lstm_native.torch.LSTM                          vs torch.nn.LSTM (oneDNN's RNN on the CPU)
    diagonal     lstm_native.torch.LSTM(peephole="diagonal")     vs bench/peers.py's torch.jit.script peephole loop
    compiled     torch.compile(fullgraph=True) of the plain model vs the same model eager
    keras        lstm_native.keras.LSTM in a Keras model          vs keras.layers.LSTM (KERAS_BACKEND=torch)
Modes: "train" is one optimizer step (Adam, cross-entropy of the head's logits on random labels: zero_grad,
forward, backward, step); "infer" a forward pass under torch.inference_mode() (Keras: predict_on_batch). The
two sides of a row are timed in alternation, repeat by repeat, so that load from elsewhere hits both alike. The
Keras row runs in a subprocess (Keras fixes its backend at its first import).

    python3 bench/torch_module.py                      # peers.py's configs, 2 threads, 7 repeats
    python3 bench/torch_module.py --configs medium --threads 1 --no-keras
    python3 bench/torch_module.py --quick              # a test run (tests/test_bench_smoke.py)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# torch before lstm_native: they share libgomp, which reads OMP_WAIT_POLICY when it loads, and lstm_native's
# default (PASSIVE) made PyTorch's two-thread runs several times slower (bench/peers.py).
import torch  # noqa: E402
from torch import nn  # noqa: E402

from peers import CONFIGS, WARMUP_CALLS, scripted_peephole_lstm  # noqa: E402  (this script's folder is sys.path[0])
from throughput import MIN_REPEAT_S, cpu_model  # noqa: E402

CLASSES = 10
# The targets: ours ÷ peer, per (row, mode); "*" is every config.
TARGETS = {("plain", "train", "medium"): 1.2, ("plain", "train", "*"): 1.0, ("diagonal", "train", "*"): 3.0,
           ("diagonal", "infer", "*"): 3.0, ("compiled", "train", "*"): 1.0, ("compiled", "infer", "*"): 1.0}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, help="default: all (small with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch's and lstm_native's threads (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats of each side (default 7)")
    parser.add_argument("--quick", action="store_true", help="2 repeats of one call each: a test run, not a measure")
    parser.add_argument("--no-keras", action="store_true", help="leave out the Keras row (it imports Keras)")
    parser.add_argument("--keras-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    args.configs = args.configs or (["small"] if args.quick else list(CONFIGS))
    if args.quick:
        args.repeats = 2
    return args


def alternating_seconds(fns, repeats: int, min_repeat_s: float) -> list[list[float]]:
    """Seconds per call of each of fns, repeat by repeat in turn (after WARMUP_CALLS calls each, and a
    calibration call that sets each one's calls per repeat to last at least min_repeat_s)."""
    calls = []
    for fn in fns:
        for _ in range(WARMUP_CALLS):
            fn()
        start = time.perf_counter()
        fn()
        calls.append(max(1, round(min_repeat_s / max(time.perf_counter() - start, 1e-9))))
    seconds = [[] for _ in fns]
    for _ in range(repeats):
        for fn, count, result in zip(fns, calls, seconds):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            result.append((time.perf_counter() - start) / count)
    return seconds


# --------------------------------------------------------------------------------------------- PyTorch


class Classifier(nn.Module):
    """recurrent(x) -> its output at the last step -> Linear: logits (B, CLASSES)."""

    def __init__(self, recurrent: nn.Module, hidden: int):
        super().__init__()
        self.recurrent, self.head = recurrent, nn.Linear(hidden, CLASSES)

    def forward(self, x):
        output = self.recurrent(x)
        return self.head((output[0] if isinstance(output, tuple) else output)[:, -1])


class ScriptedPeephole(nn.Module):
    """The diagonal-peephole LSTM a PyTorch user writes today: parameters in our layout, bench/peers.py's
    torch.jit.script loop. Returns the output sequence (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        bound = hidden_size ** -0.5  # nn.LSTM's initialization
        shapes = dict(W=(input_size, 4 * hidden_size), U=(hidden_size, 4 * hidden_size), b=(4 * hidden_size,),
                      p=(3, hidden_size))
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))
        self.loop = scripted_peephole_lstm()

    def forward(self, x):
        return self.loop(x, self.W, self.U, self.b, self.p)


def step_and_inference(model: nn.Module, x, labels, forward=None):
    """(one Adam training step, one inference) of model, calling forward (default: the model) on x."""
    forward = model if forward is None else forward
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(forward(x), labels).backward()
        optimizer.step()

    def infer():
        with torch.inference_mode():
            return forward(x)

    return {"train": train, "infer": infer}


def torch_rows(config: str, args) -> list[dict]:
    import lstm_native.torch

    B, T, I, H = CONFIGS[config]
    torch.manual_seed(0)
    x, labels = torch.randn(B, T, I), torch.randint(0, CLASSES, (B,))
    ours = Classifier(lstm_native.torch.LSTM(I, H, batch_first=True), H)
    pairs = {  # row: ((name, functions), (peer name, functions))
        "plain": (("lstm_native.torch.LSTM", step_and_inference(ours, x, labels)),
                  ("nn.LSTM", step_and_inference(Classifier(nn.LSTM(I, H, batch_first=True), H), x, labels))),
        "diagonal": (("lstm_native.torch.LSTM diagonal", step_and_inference(
                         Classifier(lstm_native.torch.LSTM(I, H, batch_first=True, peephole="diagonal"), H), x,
                         labels)),
                     ("torch.jit.script peephole cell", step_and_inference(
                         Classifier(ScriptedPeephole(I, H), H), x, labels))),
        "compiled": (("torch.compile(lstm_native)", step_and_inference(
                         ours, x, labels, torch.compile(ours, fullgraph=True))),
                     ("lstm_native eager", step_and_inference(ours, x, labels))),
    }
    rows = []
    for row, ((name, mine), (peer, theirs)) in pairs.items():
        for mode in ("train", "infer"):
            print(f"[torch_module] {config} {row} {mode}", file=sys.stderr, flush=True)
            record = dict(config=config, row=row, mode=mode, ours=name, peer=peer)
            try:
                seconds = alternating_seconds([mine[mode], theirs[mode]], args.repeats,
                                              0.0 if args.quick else MIN_REPEAT_S)
            except Exception as error:  # reported in the table; the run goes on and exits 1
                rows.append(dict(record, failed=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"))
                continue
            rows.append(dict(record, ours_seq_s=B / statistics.median(seconds[0]),
                             peer_seq_s=B / statistics.median(seconds[1])))
    return rows


# ------------------------------------------------------------------------------------------------ Keras


def keras_worker(args) -> None:
    """In a process with KERAS_BACKEND=torch: one JSON line per (config, mode), ours' Keras layer against
    keras.layers.LSTM in the same Keras model."""
    import keras
    import numpy as np

    import lstm_native.keras

    torch.set_num_threads(args.threads)
    lstm_native.set_num_threads(args.threads)
    for config in args.configs:
        B, T, I, H = CONFIGS[config]
        rng = np.random.default_rng(0)
        x, labels = rng.standard_normal((B, T, I), dtype=np.float32), rng.integers(0, CLASSES, B)
        functions = []
        for layer in (lstm_native.keras.LSTM(H), keras.layers.LSTM(H)):
            model = keras.Sequential([keras.Input((T, I)), layer, keras.layers.Dense(CLASSES)])
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            functions.append({"train": lambda model=model: model.train_on_batch(x, labels),
                              "infer": lambda model=model: model.predict_on_batch(x)})
        for mode in ("train", "infer"):
            seconds = alternating_seconds([f[mode] for f in functions], args.repeats,
                                          0.0 if args.quick else MIN_REPEAT_S)
            print(json.dumps(dict(config=config, row="keras", mode=mode, ours="lstm_native.keras.LSTM",
                                  peer="keras.layers.LSTM", ours_seq_s=B / statistics.median(seconds[0]),
                                  peer_seq_s=B / statistics.median(seconds[1]))), flush=True)


def keras_rows(args, environment) -> tuple[list[dict], str]:
    """The Keras rows from a worker subprocess, and a failure note ("" when none)."""
    command = [sys.executable, __file__, "--keras-worker", "--configs", *args.configs, "--threads",
               str(args.threads), "--repeats", str(args.repeats)] + ["--quick"] * args.quick
    run = subprocess.run(command, env=dict(environment, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3"),
                         capture_output=True, text=True)
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    failure = "" if run.returncode == 0 else (run.stderr.strip().splitlines() or ["no message"])[-1]
    return rows, failure


# ----------------------------------------------------------------------------------------------- report


def target_of(row: dict):
    return TARGETS.get((row["row"], row["mode"], row["config"]), TARGETS.get((row["row"], row["mode"], "*")))


def report(args, rows, machine, failure) -> list[str]:
    lines = [f"# lstm_native.torch against PyTorch's modules ({machine['date']})", "",
             f"- machine: {machine['cpu']}, {machine['cores']} cores; load average {machine['load_start']:.2f} at the "
             f"start, {machine['load_end']:.2f} at the end; {args.threads} thread(s); float32; {args.repeats} repeats, "
             f"medians{' (--quick: not a measure)' if args.quick else ''}",
             f"- torch {torch.__version__}; lstm_native {machine['lstm_native']} (isa {machine['isa']})",
             f"- command: {machine['command']}", "",
             "| config (B, T, I, H) | row | mode | ours | seq/s | peer | seq/s | ours ÷ peer | target |",
             "|---|---|---|---|--:|---|--:|--:|---|"]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['config']} {CONFIGS[r['config']]} | {r['row']} | {r['mode']} | {r['ours']} | - "
                         f"| {r['peer']} | - | - | FAILED: {r['failed']} |")
            continue
        ratio, target = r["ours_seq_s"] / r["peer_seq_s"], target_of(r)
        verdict = "-" if target is None else f">= {target}: {'MET' if ratio >= target else 'MISSED'}"
        lines.append(f"| {r['config']} {CONFIGS[r['config']]} | {r['row']} | {r['mode']} | {r['ours']} "
                     f"| {r['ours_seq_s']:.1f} | {r['peer']} | {r['peer_seq_s']:.1f} | {ratio:.2f} | {verdict} |")
    if failure:
        lines += ["", f"- the Keras row failed: {failure}"]
    return lines


def main() -> int:
    args = parse_args()
    if args.keras_worker:
        keras_worker(args)
        return 0
    environment = dict(os.environ)  # before lstm_native sets OMP_WAIT_POLICY for itself
    import datetime

    import lstm_native

    torch.set_num_threads(args.threads)
    lstm_native.set_num_threads(args.threads)
    machine = dict(cpu=cpu_model(), cores=os.cpu_count(), load_start=os.getloadavg()[0], isa=lstm_native.isa,
                   date=datetime.datetime.now().isoformat(timespec="seconds"), lstm_native=lstm_native.__version__,
                   command=" ".join(["python3", *sys.argv]))
    rows = [row for config in args.configs for row in torch_rows(config, args)]
    failure = ""
    if not args.no_keras:
        print("[torch_module] keras", file=sys.stderr, flush=True)
        keras, failure = keras_rows(args, environment)
        rows += keras
    machine["load_end"] = os.getloadavg()[0]
    print("\n".join(report(args, rows, machine, failure)))
    return 1 if failure or any("failed" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
