#!/usr/bin/env python3
"""lstm_native against its peers (float32): one LSTM layer, the same shapes and thread counts, in one run.

Implementations (--impls), each computing either the plain LSTM (peephole None) or the diagonal-peephole cell
of docs/DESIGN.md §1 (Gers: i and f peek at c_{t-1}, o at c_t):
    ours         lstm_native.ops lstm_forward / lstm_backward, peephole None and "diagonal"
    torch        torch.nn.LSTM(batch_first=True) (oneDNN's RNN on CPU)                               plain
    torch-jit    a torch.jit.script loop: x @ W for all steps at once, then h @ U + peepholes per step  diagonal
    keras        keras.layers.LSTM(return_sequences=True), TensorFlow backend, inside tf.function     plain
    blocklstm    tf.raw_ops.BlockLSTM(use_peephole=True), time-major, inside tf.function              diagonal
    onnxruntime  the ONNX LSTM operator without and with P, time-major; inference only             both
Modes: "train" is a forward pass and the gradients w.r.t. the inputs and all weights given dy on the whole
output sequence (B, T, H); "infer" a forward pass returning the whole sequence. FLOPs are those of
bench/throughput.py for every implementation: infer 2*T*B*(I+H)*4H, train 3 times that.
Variable-length batches: "ours lengths" and "torch nn.LSTM packed" (pack_padded_sequence into the same
nn.LSTM) run the same batch with lengths uniform in [T/4, T] (seeded), outputs past a length zero; summary (c)
gives each one's time over its full-length batch's (FLOPs above count the full length).

Every (implementation, thread count) runs in a subprocess of this script of its own (--worker), because torch's and
TF's thread pools are fixed at first use and peers must not share a process; so does the sgemm ceiling (the better
of numpy's and, when installed, PyTorch's) at each thread count. The workers stay alive and the parent times in
rounds, config by config: each round times one repeat of every measurement of every worker, one after the other,
so that the load of a shared machine drifts over all of them alike instead of over whichever ran last. The ratio columns divide ours (peephole None, and diagonal) by the row's
implementation, each at its best thread setting. --check compares every peer's y and dx with ours on the
same weights. See bench/README.md.

    python3 bench/peers.py                                   # all configs and peers, 1 and 2 threads
    python3 bench/peers.py --configs small --impls ours torch --json out.jsonl --markdown out.md
    python3 bench/peers.py --quick --check                   # a test run (tests/test_peers_smoke.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from typing import Callable, Optional

# The environment the workers start from: this one as it was before anything here imported lstm_native,
# which sets OMP_WAIT_POLICY=PASSIVE for its own OpenMP runtime. Inherited, that setting made PyTorch's
# two-thread runs (its OpenMP regions are many and short) several times slower than with its own default.
WORKER_ENVIRON = dict(os.environ)

import numpy as np  # noqa: E402

import throughput  # noqa: E402  bench/throughput.py (this script's folder is sys.path[0]): timing loop, machine helpers
from throughput import MIN_REPEAT_S, SGEMM_N, calls_per_repeat, cpu_model, numpy_blas, summary  # noqa: E402

CONFIGS = {"tiny": (1, 100, 16, 32), **throughput.CONFIGS, "long": (16, 1000, 64, 128)}  # name: (B, T, I, H)
MODES = ("train", "infer")
REQUIRES = {"ours": ["lstm_native"], "torch": ["torch"], "torch-jit": ["torch"], "keras": ["tensorflow", "keras"],
            "blocklstm": ["tensorflow"], "onnxruntime": ["onnxruntime", "onnx"]}
VERSIONS = {"lstm_native": ["lstm_native"], "numpy": ["numpy"], "torch": ["torch"],
            "tensorflow": ["tensorflow", "tensorflow-cpu"], "keras": ["keras"], "onnxruntime": ["onnxruntime"]}
WARMUP_CALLS = 4  # before the calibrating call; the scripted torch cell's training settles only after ~4 calls
TOLERANCE = 1e-4  # --check: max |peer - ours| <= TOLERANCE * max(1, max |ours|), for y and dx
# The targets. (a) ours (peephole None, on the most threads) over the fastest plain peer:
PLAIN_TARGETS = {("train", "small"): 1.5, ("train", "medium"): 1.25, ("train", "large"): 1.25,
                 ("infer", "tiny"): 1.2, ("infer", "small"): 1.2, ("infer", "medium"): 1.0, ("infer", "large"): 1.0,
                 ("infer", "long"): 1.0}
CEILING_GOAL = 0.9  # (d) ours' inference at medium and large over the sgemm ceiling: at least this share
PEEPHOLE_TARGET = 2.0  # (b) ours diagonal over the fastest peephole peer, every config and mode
DIAGONAL_FLOOR = 0.95  # (b) ours diagonal over ours None: at most 5% slower
VARIABLE_LENGTH_TARGET = 0.7  # (c) a variable-length batch's time over the full-length batch's, at most


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, help="default: all (small with --quick)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats after the warm-up (default 7)")
    parser.add_argument("--impls", nargs="+", choices=REQUIRES, default=list(REQUIRES), help="default: all")
    parser.add_argument("--quick", action="store_true", help="2 repeats of one call each: a test run, not a measure")
    parser.add_argument("--check", action="store_true", help="also compare every peer's y and dx with ours")
    parser.add_argument("--json", metavar="PATH", help="also write one JSON line per measurement to PATH")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables and the summary to PATH")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.threads) < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    args.configs = args.configs or (["small"] if args.quick else list(CONFIGS))
    return args


# ------------------------------------------------------------------------------------------- the workers


@dataclasses.dataclass
class Variant:
    """One implementation on one config, ready to time: infer() returns y, train() the gradients, dx first."""

    name: str
    peephole: Optional[str]  # the cell it computes: None or "diagonal"
    infer: Callable
    train: Optional[Callable]  # None: inference only
    time_major: bool = False  # its x, y and dx are (T, B, .)
    lengths: Optional[np.ndarray] = None  # the batch's sequence lengths: a variable-length batch


def make_data(config: str):
    """Inputs, upstream gradient and weights (our layout, gate blocks [i, f, g, o]; p rows [i, f, o])."""
    B, T, I, H = CONFIGS[config]
    rng = np.random.default_rng(0)
    return types.SimpleNamespace(
        B=B, T=T, I=I, H=H,
        x=rng.standard_normal((B, T, I), dtype=np.float32),
        dy=rng.standard_normal((B, T, H), dtype=np.float32),
        W=rng.standard_normal((I, 4 * H), dtype=np.float32) / np.float32(np.sqrt(I)),
        U=rng.standard_normal((H, 4 * H), dtype=np.float32) / np.float32(np.sqrt(H)),
        b=rng.standard_normal(4 * H, dtype=np.float32) / np.float32(10),
        p=rng.standard_normal((3, H), dtype=np.float32) / np.float32(np.sqrt(H)),
        lengths=np.random.default_rng(1).integers(T // 4, T + 1, size=B),
    )


def set_threads(impl: str, threads: int) -> None:
    """Fixes the thread pools once per process, before first use (onnxruntime's are per session)."""
    if impl == "ours":
        import lstm_native

        lstm_native.set_num_threads(threads)
    elif impl in ("torch", "torch-jit"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    elif impl in ("keras", "blocklstm"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def ours_variants(d, threads):
    from lstm_native.ops import lstm_backward, lstm_forward

    def variant(name, peephole, p, lengths=None):
        options = dict(peephole=peephole, lengths=lengths, zero_output_for_mask=lengths is not None)

        def infer():
            return lstm_forward(d.x, d.W, d.U, d.b, p, **options).y

        def train():
            return lstm_backward(lstm_forward(d.x, d.W, d.U, d.b, p, training=True, **options).context, d.dy)

        return Variant(name, peephole, infer, train, lengths=lengths)

    return [variant("ours", None, None), variant("ours diagonal", "diagonal", d.p),
            variant("ours lengths", None, None, d.lengths)]


def torch_variant(name, peephole, forward, weights, d, lengths=None):
    """Training: autograd.grad of forward(x) w.r.t. x and `weights`; inference under torch.inference_mode()."""
    import torch

    x, dy = torch.from_numpy(d.x), torch.from_numpy(d.dy)
    x_grad = x.clone().requires_grad_()

    def infer():
        with torch.inference_mode():
            return forward(x)

    return Variant(name, peephole, infer, lambda: torch.autograd.grad(forward(x_grad), (x_grad, *weights), dy),
                   lengths=lengths)


def torch_variants(d, threads):
    import torch

    from lstm_native import gate_orders

    lstm = torch.nn.LSTM(d.I, d.H, batch_first=True)
    rows = [gate_orders.permute(a, gate_orders.OURS, gate_orders.TORCH, axis=0) for a in (d.W.T, d.U.T, d.b)]
    with torch.no_grad():
        for weight, value in zip((lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0), rows):
            weight.copy_(torch.from_numpy(value))
        lstm.bias_hh_l0.zero_()  # nn.LSTM adds two biases: ours is their sum
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lengths = torch.from_numpy(d.lengths)

    def packed(x):  # padded back to T steps, zeros past each length
        out = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[0]
        return pad_packed_sequence(out, batch_first=True, total_length=d.T)[0]

    return [torch_variant("torch nn.LSTM", None, lambda x: lstm(x)[0], list(lstm.parameters()), d),
            torch_variant("torch nn.LSTM packed", None, packed, list(lstm.parameters()), d, d.lengths)]


def scripted_peephole_lstm():
    """What a PyTorch user writes today for a diagonal-peephole LSTM: a torch.jit.script loop over the steps,
    y = f(x (B, T, I), W (I, 4H), U (H, 4H), b (4H,), p (3, H)) in our layout (also bench/torch_module.py's)."""
    import torch

    @torch.jit.script
    def peephole_lstm(x: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                      p: torch.Tensor) -> torch.Tensor:
        # The input projection of every step at once; unbind, not xw[:, t], whose backward would add a
        # (B, T, 4H) zero-padded gradient per step (as PyTorch's benchmarks/fastrnns custom_lstms do).
        xw = (torch.matmul(x, W) + b).unbind(1)
        h = torch.zeros(x.shape[0], U.shape[0], dtype=x.dtype)
        c = torch.zeros_like(h)
        ys = []
        for xw_t in xw:
            i, f, g, o = (xw_t + torch.matmul(h, U)).chunk(4, 1)
            i = torch.sigmoid(i + p[0] * c)
            f = torch.sigmoid(f + p[1] * c)
            c = f * c + i * torch.tanh(g)
            h = torch.sigmoid(o + p[2] * c) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys, 1)

    return peephole_lstm


def torch_jit_variants(d, threads):
    import torch

    peephole_lstm = scripted_peephole_lstm()
    weights = [torch.from_numpy(a).requires_grad_() for a in (d.W, d.U, d.b, d.p)]  # our layout
    return [torch_variant("torch scripted peephole", "diagonal", lambda x: peephole_lstm(x, *weights), weights, d)]


def tf_variant(name, peephole, forward, weights, x, dy, time_major=False):
    """forward inside tf.function; training: a GradientTape over x and `weights`, also inside tf.function."""
    import tensorflow as tf

    x, dy = tf.constant(x), tf.constant(dy)
    infer = tf.function(forward, jit_compile=False)

    @tf.function(jit_compile=False)
    def train(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
        return tape.gradient(y, [x, *weights], output_gradients=dy)

    return Variant(name, peephole, lambda: infer(x), lambda: train(x, dy), time_major)


def keras_variants(d, threads):
    import keras

    layer = keras.layers.LSTM(d.H, return_sequences=True)
    layer.build((d.B, d.T, d.I))
    layer.set_weights([d.W, d.U, d.b])  # Keras' kernel, recurrent_kernel and bias are in our layout and order
    return [tf_variant("keras LSTM", None, layer, layer.trainable_variables, d.x, d.dy)]


def blocklstm_variants(d, threads):
    import tensorflow as tf

    from lstm_native import gate_orders

    w = tf.Variable(gate_orders.permute(np.concatenate([d.W, d.U]), gate_orders.OURS, gate_orders.TF1))  # [x, h]
    b = tf.Variable(gate_orders.permute(d.b, gate_orders.OURS, gate_orders.TF1))
    wci, wcf, wco = map(tf.Variable, gate_orders.permute(d.p, gate_orders.OUR_PEEPHOLES, gate_orders.TF1_PEEPHOLES,
                                                         axis=0))
    zeros = tf.zeros((d.B, d.H))

    def forward(x):
        return tf.raw_ops.BlockLSTM(seq_len_max=tf.constant(d.T, tf.int64), x=x, cs_prev=zeros, h_prev=zeros, w=w,
                                    wci=wci, wcf=wcf, wco=wco, b=b, forget_bias=0.0, cell_clip=-1.0,  # no clipping
                                    use_peephole=True).h

    return [tf_variant("tf BlockLSTM peephole", "diagonal", forward, [w, wci, wcf, wco, b],
                       d.x.transpose(1, 0, 2), d.dy.transpose(1, 0, 2), time_major=True)]


def onnxruntime_variants(d, threads):
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from lstm_native import gate_orders

    def rows(array, source=gate_orders.OURS, target=gate_orders.ONNX):
        return gate_orders.permute(array, source, target, axis=0)[None]

    weights = {"W": rows(d.W.T), "R": rows(d.U.T),
               "B": np.concatenate([rows(d.b), np.zeros((1, 4 * d.H), np.float32)], 1),  # Wb, then Rb
               "P": rows(d.p.reshape(-1), gate_orders.OUR_PEEPHOLES, gate_orders.ONNX_PEEPHOLES)}
    x = np.ascontiguousarray(d.x.transpose(1, 0, 2))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1

    def variant(name, peephole, inputs):  # inputs after X; "" skips an optional one
        graph = helper.make_graph(
            [helper.make_node("LSTM", ["X", *inputs], ["Y"], hidden_size=d.H)], "lstm",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, (d.T, 1, d.B, d.H))],
            initializer=[numpy_helper.from_array(weights[k], k) for k in inputs if k])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return Variant(name, peephole, lambda: session.run(None, {"X": x})[0][:, 0], None, time_major=True)

    return [variant("onnxruntime LSTM", None, ["W", "R", "B"]),
            variant("onnxruntime LSTM P", "diagonal", ["W", "R", "B", "", "", "", "P"])]


BUILDERS = {"ours": ours_variants, "torch": torch_variants, "torch-jit": torch_jit_variants,
            "keras": keras_variants, "blocklstm": blocklstm_variants, "onnxruntime": onnxruntime_variants}


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def check(variant: Variant, d) -> dict:
    """Max |variant - ours| of y and dx, relative to max(1, max |ours|)."""
    from lstm_native.ops import lstm_backward, lstm_forward

    p = None if variant.peephole is None else d.p
    ours = lstm_forward(d.x, d.W, d.U, d.b, p, peephole=variant.peephole, training=True, lengths=variant.lengths,
                        zero_output_for_mask=variant.lengths is not None)
    pairs = {"y": (ours.y, variant.infer())}
    if variant.train:
        pairs["dx"] = (lstm_backward(ours.context, d.dy).dx, variant.train()[0])
    errors = {}
    for name, (want, have) in pairs.items():
        have = to_numpy(have).transpose(1, 0, 2) if variant.time_major else to_numpy(have)
        errors[name] = float(np.abs(have - want).max() / max(1.0, np.abs(want).max()))
    return {"errors": errors, "ok": max(errors.values()) <= TOLERANCE}


def timed_calls(args, d) -> dict:
    """(config, name, mode) -> (fn, FLOPs of a call, the record's fields) of every measurement of this worker."""
    impl, threads = args.worker[0], int(args.worker[1])
    if impl == "sgemm":  # the machine's ceiling: numpy's BLAS, and PyTorch's when installed
        a, b = (np.random.default_rng(0).standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32) for _ in range(2))
        products = {f"numpy ({numpy_blas(np)})": (np.matmul, a, b, np.empty_like(a))}
        if importlib.util.find_spec("torch") is not None:
            import torch

            set_threads("torch", threads)
            products[f"torch {torch.__version__}"] = (torch.matmul, *map(torch.from_numpy, (a, b, np.empty_like(a))))
        return {("sgemm", library, "sgemm"): ((lambda m=matmul, a=a, b=b, out=out: m(a, b, out=out)), 2 * SGEMM_N**3,
                                              {"kind": "sgemm", "threads": threads, "library": library})
                for library, (matmul, a, b, out) in products.items()}
    set_threads(impl, threads)
    calls = {}
    for config, data in d.items():
        flops = 2 * data.T * data.B * (data.I + data.H) * 4 * data.H
        for variant in BUILDERS[impl](data, threads):
            base = {"kind": "timing", "impl": impl, "name": variant.name, "peephole": variant.peephole,
                    "threads": threads, "config": config, "B": data.B, "T": data.T, "I": data.I, "H": data.H,
                    "variable_length": variant.lengths is not None, "dtype": "float32"}
            for mode, fn, mode_flops in (("train", variant.train, 3 * flops), ("infer", variant.infer, flops)):
                if fn is not None:
                    calls[(config, variant.name, mode)] = (fn, mode_flops, {**base, "mode": mode})
            if args.check and impl != "ours":
                print(json.dumps({**base, "kind": "check", **check(variant, data)}), flush=True)
    return calls


def worker(args) -> None:
    """One implementation at one thread count, kept alive by the parent: warms every measurement up and says
    which it has ("ready"), then times one repeat of the measurement each line of stdin names (a JSON
    [config, name, mode]), printing its seconds per call, until stdin closes."""
    d = {} if args.worker[0] == "sgemm" else {config: make_data(config) for config in args.configs}
    calls = timed_calls(args, d)
    repeat_calls = {}
    for key, (fn, _, _) in calls.items():
        for _ in range(WARMUP_CALLS):
            fn()
        repeat_calls[key] = calls_per_repeat(fn, 0.0 if args.quick else MIN_REPEAT_S)
    print(json.dumps({"kind": "ready", "measurements": [[*key, flops, record]
                                                        for key, (_, flops, record) in calls.items()]}), flush=True)
    for line in sys.stdin:
        key = tuple(json.loads(line))
        fn, repeat = calls[key][0], repeat_calls[key]
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        print(json.dumps({"seconds": (time.perf_counter() - start) / repeat}), flush=True)


# --------------------------------------------------------------------------------------------- the parent


class Worker:
    """A worker subprocess (see worker()); `measurements` maps (config, name, mode) to (FLOPs, record)."""

    def __init__(self, args, impl: str, threads: int):
        env = dict(WORKER_ENVIRON, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, __file__, "--worker", impl, str(threads), "--configs", *args.configs] \
            + ["--quick"] * args.quick + ["--check"] * args.check
        self.impl, self.threads, self.checks, self.measurements, self.failure = impl, threads, [], {}, None
        self.seconds = {}  # (config, name, mode) -> seconds per call of each repeat timed
        self.stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty worker never blocks on it
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, bufsize=1)
        while True:  # the checks, then "ready"
            record = self.read()
            if record is None or record["kind"] == "ready":
                break
            self.checks.append(record)
        if record is not None:
            self.measurements = {tuple(m[:3]): (m[3], m[4]) for m in record["measurements"]}

    def read(self) -> Optional[dict]:
        """The worker's next JSON line; None (and self.failure set) when it has exited."""
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        self.process.wait()
        self.stderr.seek(0)
        reason = (self.stderr.read().strip().splitlines() or ["no message"])[-1]
        self.failure = {"kind": "failed", "impl": self.impl, "threads": self.threads,
                        "reason": f"exit {self.process.returncode}: {reason}"}
        return None

    def time(self, key) -> None:
        """Times one repeat of the measurement `key` into self.seconds."""
        self.process.stdin.write(json.dumps(key) + "\n")
        self.process.stdin.flush()
        record = self.read()
        if record is not None:
            self.seconds.setdefault(key, []).append(record["seconds"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()
        self.stderr.close()


def measure(args, workers: list[Worker]) -> list[dict]:
    """Records of every measurement: config by config, `repeats` rounds, each round timing every measurement of
    every worker once, one after the other, so that the machine's load drifts over all of them alike."""
    repeats = 2 if args.quick else args.repeats
    for config in ["sgemm", *args.configs]:
        for _ in range(repeats):
            for w in workers:
                for key in (k for k in w.measurements if k[0] == config and w.failure is None):
                    time.sleep(0.02)  # let the previous worker's spinning threads go to sleep
                    w.time(key)
    records = []
    for w in workers:
        records += w.checks
        for key, (flops, record) in w.measurements.items():
            values = w.seconds.get(key, [])
            if len(values) == repeats:
                records.append({**record, "repeats": repeats, "seconds": values,
                                "gflops": summary([flops / s / 1e9 for s in values]),
                                **({} if key[0] == "sgemm" else {"seq_per_s": summary([record["B"] / s for s in values])})})
        if w.failure:
            records.append(w.failure)
    return records


def installed_version(dists: list[str]) -> str:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return "not installed"


def ratio_text(numerator, denominator) -> str:
    return f"{numerator / denominator:.2f}" if numerator and denominator else "-"


def verdict(value, target) -> str:
    return "MET" if value >= target else "MISSED"


def report(args, records, machine) -> list[str]:
    """The markdown: header, one table per config and mode, the agreement check, the targets."""
    timings = [r for r in records if r["kind"] == "timing"]
    best = {}  # (config, mode, name) -> the record of the name's best thread setting
    for r in timings:
        key = (r["config"], r["mode"], r["name"])
        if key not in best or r["seq_per_s"]["median"] > best[key]["seq_per_s"]["median"]:
            best[key] = r

    def speed(config, mode, name):
        return best[(config, mode, name)]["seq_per_s"]["median"] if (config, mode, name) in best else None

    lines = [f"# lstm_native against its peers ({machine['date']})", "",
             f"- machine: {machine['cpu']}, {machine['cores']} cores; load average {machine['load_average_start']:.2f} "
             f"at the start, {machine['load_average_end']:.2f} at the end; float32; "
             f"{2 if args.quick else args.repeats} repeats{' (--quick: not a measure)' if args.quick else ''}",
             "- versions: " + ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
             + f"; lstm_native.isa {machine['isa']}",
             f"- sgemm ceiling, the best float32 {SGEMM_N}x{SGEMM_N} matmul (OPENBLAS_CORETYPE="
             f"{machine['OPENBLAS_CORETYPE']}): "
             + "; ".join(f"{r['library']} on {r['threads']} thread(s) {r['gflops']['median']:.1f} GFLOP/s"
                         for r in records if r["kind"] == "sgemm")]
    lines += [f"- {r['impl']} on {r['threads']} thread(s): {r['reason']}" for r in records if r["kind"] == "failed"]
    lines += [f"- {impl}: not installed ({', '.join(missing)}), skipped"
              for impl, missing in machine["skipped"].items()]
    for config in args.configs:
        B, T, I, H = CONFIGS[config]
        for mode in MODES:
            lines += ["", f"### {config} (B={B}, T={T}, I={I}, H={H}), {mode}", "",
                      "| implementation | threads | seq/s median | seq/s min-max | GFLOP/s median | % of sgemm "
                      "| ours ÷ this | ours diagonal ÷ this |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
            for r in (r for r in timings if r["config"] == config and r["mode"] == mode):
                seqs, gflops, this = r["seq_per_s"], r["gflops"]["median"], speed(config, mode, r["name"])
                lines.append(f"| {r['name']} | {r['threads']} | {seqs['median']:.1f} "
                             f"| {seqs['min']:.1f}-{seqs['max']:.1f} "
                             f"| {gflops:.2f} | {100 * gflops / machine['sgemm_gflops'][r['threads']]:.0f}% "
                             f"| {ratio_text(speed(config, mode, 'ours'), this)} "
                             f"| {ratio_text(speed(config, mode, 'ours diagonal'), this)} |")

    checks = [r for r in records if r["kind"] == "check"]
    if checks:
        lines += ["", f"## Agreement with ours (--check: max |peer - ours| / max(1, max |ours|) <= {TOLERANCE:g})", ""]
        for name in dict.fromkeys(r["name"] for r in checks):
            mine = [r for r in checks if r["name"] == name]
            worst = {k: max(r["errors"][k] for r in mine) for k in mine[0]["errors"]}
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
                         + f" over {len(mine)} config/thread runs: {'OK' if all(r['ok'] for r in mine) else 'FAILED'}")

    plain_peers = {r["name"] for r in timings
                   if r["impl"] != "ours" and r["peephole"] is None and not r["variable_length"]}
    peephole_peers = {r["name"] for r in timings if r["impl"] != "ours" and r["peephole"] == "diagonal"}

    def fastest(config, mode, names):
        speeds = [(speed(config, mode, n), n) for n in names if speed(config, mode, n)]
        return max(speeds) if speeds else (None, None)

    def versus(config, mode, ours, peers, target) -> str:
        peer_speed, peer = fastest(config, mode, peers)
        if not ours or not peer_speed:
            return f"- {config} {mode}: not measured"
        threads = best[(config, mode, peer)]["threads"]
        return (f"- {config} {mode}: {ours:.1f} ÷ {peer_speed:.1f} seq/s of {peer} ({threads} thread(s)) = "
                f"{ours / peer_speed:.2f}x, target >= {target}x: {verdict(ours / peer_speed, target)}")

    most = max(args.threads)
    lines += ["", "## Targets", "", f"(a) ours (peephole None, {most} thread(s)) over the fastest plain peer at its "
              f"best thread setting ({', '.join(sorted(plain_peers)) or 'none measured'}):"]
    for (mode, config), target in PLAIN_TARGETS.items():
        if config in args.configs:
            ours = next((r["seq_per_s"]["median"] for r in timings if r["name"] == "ours" and r["threads"] == most
                         and r["config"] == config and r["mode"] == mode), None)
            lines.append(versus(config, mode, ours, plain_peers, target))
    lines += ["", f"(b) ours diagonal (best thread setting) over the fastest peephole peer "
              f"({', '.join(sorted(peephole_peers)) or 'none measured'}), and over ours None (at most 5% slower):"]
    for config in args.configs:
        for mode in MODES:
            diagonal, plain = speed(config, mode, "ours diagonal"), speed(config, mode, "ours")
            lines.append(versus(config, mode, diagonal, peephole_peers, PEEPHOLE_TARGET))
            if diagonal and plain:
                lines.append(f"- {config} {mode}: ours diagonal ÷ ours = {diagonal / plain:.3f}, target >= "
                             f"{DIAGONAL_FLOOR}: {verdict(diagonal / plain, DIAGONAL_FLOOR)}")
    lines += ["", f"(c) a variable-length batch (lengths uniform in [T/4, T]): its time over the full-length "
              f"batch's, each at its best thread setting (ours: target <= {VARIABLE_LENGTH_TARGET}):"]
    for config in args.configs:
        for mode in MODES:
            for full, variable in (("ours", "ours lengths"), ("torch nn.LSTM", "torch nn.LSTM packed")):
                full_speed, variable_speed = speed(config, mode, full), speed(config, mode, variable)
                if not (full_speed and variable_speed):
                    continue
                ratio = full_speed / variable_speed
                target = f": {'MET' if ratio <= VARIABLE_LENGTH_TARGET else 'MISSED'}" if full == "ours" else ""
                lines.append(f"- {config} {mode}: {variable} ÷ {full} = {ratio:.2f}x the time{target}")
    lines += ["", f"(d) ours' inference (peephole None, {most} thread(s)) over the sgemm ceiling on as many threads "
              f"(goal >= {CEILING_GOAL:.0%}):"]
    for config in ("medium", "large"):
        ours = next((r for r in timings if r["name"] == "ours" and r["threads"] == most and r["config"] == config
                     and r["mode"] == "infer"), None)
        if ours and most in machine["sgemm_gflops"]:
            share = ours["gflops"]["median"] / machine["sgemm_gflops"][most]
            lines.append(f"- {config} infer: {share:.0%} of {machine['sgemm_gflops'][most]:.1f} GFLOP/s: "
                         f"{verdict(share, CEILING_GOAL)}")
    return lines


def main() -> int:
    args = parse_args()
    if args.worker:
        worker(args)
        return 0
    import lstm_native

    start = time.perf_counter()
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_start": os.getloadavg()[0],
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "isa": lstm_native.isa,
               "versions": {name: installed_version(dists) for name, dists in VERSIONS.items()},
               "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), "skipped": {}}
    workers = []
    for impl in ["sgemm", *args.impls]:
        missing = [module for module in REQUIRES.get(impl, [])
                   if importlib.util.find_spec(module) is None]
        if missing:
            machine["skipped"][impl] = missing
            continue
        for threads in args.threads:
            print(f"[peers] {impl} on {threads} thread(s): starting, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
            workers.append(Worker(args, impl, threads))
    print(f"[peers] measuring in rounds, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    try:
        records = measure(args, workers)
    finally:
        for w in workers:
            w.close()
    machine["sgemm_gflops"] = {}
    for r in (r for r in records if r["kind"] == "sgemm"):
        machine["sgemm_gflops"][r["threads"]] = max(r["gflops"]["median"], machine["sgemm_gflops"].get(r["threads"], 0))
    machine["load_average_end"] = os.getloadavg()[0]
    lines = report(args, records, machine)
    lines += ["", f"Run time: {time.perf_counter() - start:.0f} s."]
    print("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as out_file:
            out_file.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as out_file:
            out_file.writelines(json.dumps({**record, "machine": machine}) + "\n" for record in records)
    failed = any(r["kind"] == "failed" or (r["kind"] == "check" and not r["ok"]) for r in records)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
