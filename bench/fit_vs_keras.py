#!/usr/bin/env python3
"""fit() end to end, lstm_native against Keras 3 (TensorFlow backend), and the Python share of a training step.

Part 1, fit: the seed program's model (examples/seed_program.py: LSTM(128, input_shape=(29, 12)) +
Dense(9, softmax), categorical cross-entropy, Adam, accuracy metric, batch 32, verbose=0), built with each
framework's own Sequential/LSTM/Dense and trained with `fit` on JapaneseVowels' training set (aeon's files,
raw features as the seed uses them; a random array of the same shape when aeon is missing or with
--synthetic) repeated to --sequences utterances. Each framework runs in its own subprocess on the same
threads (lstm_native.set_num_threads; TensorFlow's intra- and inter-op pools via tf.config.threading before
first use) with OPENBLAS_NUM_THREADS=1 unless set. One fit call of 1 + --epochs epochs: the first epoch
(Keras traces its train function there) is a warm-up; the others are timed by a callback from
on_epoch_begin to on_epoch_end. Keras keeps its defaults: its LSTM layer, jit_compile="auto". Our LSTM keeps
its default diagonal peepholes, as the seed program does (3H more weights, a few more multiply-adds per
step than Keras' plain LSTM). Reported: sequences/s (median, min-max) and the ratio of the medians.

Part 2, Python share: at B=64, T=100, I=128, H=256, LSTM(256) + Dense(10, softmax) compiled as the seed,
the time of one `train_on_batch(x, y)` against the core's training work alone for that LSTM
(lstm_native.ops.lstm_forward(training=True) then lstm_backward with dh, as the layer calls them, same
weights), timed in alternation. (step - core) / step is the share of Python, the Dense layer, the loss,
the metric and Adam. --profile adds a cProfile of train_on_batch (top functions by cumulative time).

    python3 bench/fit_vs_keras.py                     # ~25-30 s on 2 idle cores
    python3 bench/fit_vs_keras.py --threads 1 --epochs 7 --json fit.jsonl
    python3 bench/fit_vs_keras.py --part share --profile
    python3 bench/fit_vs_keras.py --quick             # a test run, ~10-15 s (tests/test_fit_memory_bench_smoke.py)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from throughput import cpu_model  # bench/throughput.py (this script's folder is sys.path[0])

# numpy's BLAS threads (the Dense layers' products) fight the core's OpenMP threads on a small machine
# (bench/README.md): one thread unless the caller says otherwise. Set before numpy loads, here and in workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

SHARE_SHAPE = (64, 100, 128, 256)  # B, T, I, H
MARK = "RESULT "  # a worker's last stdout line: MARK + JSON


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("fit", "share", "all"), default="all")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both frameworks "
                        "(default: all logical CPUs)")
    parser.add_argument("--epochs", type=int, default=7, help="timed epochs after the warm-up epoch (default 7)")
    parser.add_argument("--sequences", type=int, default=2700, help="training utterances per epoch: the 270 of "
                        "JapaneseVowels repeated (default 2700)")
    parser.add_argument("--synthetic", action="store_true", help="random data of JapaneseVowels' shape, not aeon's")
    parser.add_argument("--repeats", type=int, default=21, help="train_on_batch/core pairs timed in part 2 "
                        "(default 21)")
    parser.add_argument("--profile", action="store_true", help="part 2: cProfile train_on_batch, top functions")
    parser.add_argument("--quick", action="store_true", help="a test run of seconds: 320 sequences, 2 epochs, "
                        "3 repeats; not a measure")
    parser.add_argument("--json", metavar="PATH", help="also write one JSON line per result to PATH")
    parser.add_argument("--worker", choices=("ours", "keras", "share"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.epochs < 1 or args.sequences < 1 or args.repeats < 1:
        parser.error("--threads, --epochs, --sequences and --repeats must be at least 1")
    if args.quick:
        args.sequences, args.epochs, args.repeats = 320, 2, 3
    return args


def summary(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# -- workers (each in its own process) ------------------------------------------------------------------------
def vowel_data(sequences: int, synthetic: bool):
    """x (sequences, 29, 12) float32 and one-hot y (sequences, 9): JapaneseVowels' training set repeated,
    or random data of its shape; and the data's name."""
    import numpy as np

    x_train = labels = None
    if not synthetic:
        try:
            from lstm_native import datasets

            (x_train, labels), _, _, _ = datasets.japanese_vowels()
            name = "JapaneseVowels"
        except ModuleNotFoundError:
            pass
    if x_train is None:
        rng = np.random.default_rng(0)
        x_train = rng.standard_normal((270, 29, 12), dtype=np.float32)
        labels = rng.integers(0, 9, 270)
        name = "synthetic"
    rows = np.arange(sequences) % len(x_train)
    return x_train[rows], np.eye(9, dtype=np.float32)[labels[rows]], f"{name} ({len(x_train)} repeated to {sequences})"


def epoch_timer(base):
    """A callback class on `base` that keeps every epoch's seconds and the last epoch's logs."""

    class EpochTimer(base):
        def __init__(self):
            super().__init__()
            self.seconds, self.logs, self._start = [], {}, 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.logs = {k: float(v) for k, v in (logs or {}).items()}

    return EpochTimer()


def fit_worker(args) -> dict:
    """Builds the seed's model with one framework and times its fit epochs."""
    if args.worker == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)  # before TensorFlow's first op
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        import keras
        from keras.layers import LSTM, Dense
        from keras.models import Sequential

        keras.utils.set_random_seed(0)
        timer = epoch_timer(keras.callbacks.Callback)
        versions = {"keras": keras.__version__, "tensorflow": tf.__version__, "backend": keras.backend.backend()}
    else:
        import lstm_native
        from lstm_native.layers import LSTM, Dense
        from lstm_native.models import Sequential

        lstm_native.set_num_threads(args.threads)
        lstm_native.utils.set_random_seed(0)
        timer = epoch_timer(lstm_native.callbacks.Callback)
        versions = {"lstm_native": lstm_native.__version__, "isa": lstm_native.isa}
    import numpy as np

    x, y, data = vowel_data(args.sequences, args.synthetic)
    timesteps, input_dim = x.shape[1:]
    model = Sequential()
    model.add(LSTM(128, input_shape=(timesteps, input_dim)))
    model.add(Dense(y.shape[1], activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=1 + args.epochs, verbose=0, callbacks=[timer])
    total = time.perf_counter() - start
    if args.worker == "keras":
        versions["jit_compile"] = bool(model.jit_compile)  # "auto" as Keras resolved it
    seq_per_s = [len(x) / s for s in timer.seconds[1:]]
    return {"framework": args.worker, "data": data, "sequences": len(x), "timesteps": int(timesteps),
            "features": int(input_dim), "batch_size": 32, "epochs_timed": args.epochs,
            "warmup_epoch_s": timer.seconds[0], "epoch_s": timer.seconds[1:], "fit_total_s": total,
            "seq_per_s": summary(seq_per_s), "last_epoch_logs": timer.logs, "numpy": np.__version__, **versions}


def share_worker(args) -> dict:
    """train_on_batch of LSTM(H) + Dense(10, softmax) against the core's forward + backward of the LSTM."""
    import numpy as np

    import lstm_native
    from lstm_native import ops
    from lstm_native.layers import LSTM, Dense
    from lstm_native.models import Sequential

    lstm_native.set_num_threads(args.threads)
    lstm_native.utils.set_random_seed(0)
    B, T, I, H = SHARE_SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, B)]
    dh = rng.standard_normal((B, H), dtype=np.float32)
    model = Sequential()
    model.add(LSTM(H, input_shape=(T, I)))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    lstm = model.layers[0]
    model.train_on_batch(x, y)  # builds everything, creates Adam's slots
    weights = [lstm.kernel.value, lstm.recurrent_kernel.value, lstm.bias.value, lstm.peephole_weights.value]

    def step():
        model.train_on_batch(x, y)

    def core():
        out = ops.lstm_forward(x, *weights, peephole=lstm.peephole, training=True)
        ops.lstm_backward(out.context, dh=dh)

    times = {"step": [], "core": []}
    for repeat in range(args.repeats + 2):  # two warm-up rounds
        for name, fn in (("step", step), ("core", core)):
            start = time.perf_counter()
            fn()
            if repeat >= 2:
                times[name].append(time.perf_counter() - start)
    step_s, core_s = statistics.median(times["step"]), statistics.median(times["core"])
    pair_shares = [(s - c) / s for s, c in zip(times["step"], times["core"])]
    result = {"B": B, "T": T, "I": I, "H": H, "peephole": lstm.peephole, "repeats": args.repeats,
              "step_s": times["step"], "core_s": times["core"], "step_median_s": step_s, "core_median_s": core_s,
              "python_share": (step_s - core_s) / step_s, "pair_share": summary(pair_shares)}
    if args.profile:
        result["profile"] = profile_steps(step, max(3, args.repeats // 2))
    return result


def profile_steps(step, calls: int, top: int = 18) -> str:
    """cProfile of `calls` calls of step: the top functions by cumulative time, as pstats prints them."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        step()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative")
    text.write(f"cProfile of {calls} train_on_batch calls (cProfile's own overhead inflates the Python parts)\n")
    stats.print_stats(top)
    return text.getvalue()


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent busy since boot (/proc/stat; None where there is none)."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_worker(args, worker: str) -> dict:
    """Runs this script as `worker` in a fresh interpreter and returns its result, with its wall seconds and
    `other_load`: the CPU time that other processes took meanwhile, as a share of all cores (the machines we
    share are noisy; with OpenMP a busy core can slow a parallel region many times over)."""
    argv = [sys.executable, os.path.abspath(__file__), "--worker", worker, "--threads", str(args.threads),
            "--epochs", str(args.epochs), "--sequences", str(args.sequences), "--repeats", str(args.repeats)]
    argv += ["--synthetic"] * args.synthetic + ["--profile"] * args.profile
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    busy, children, start = busy_cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall, busy_after = time.perf_counter() - start, busy_cpu_seconds()
    lines = run.stdout.splitlines()
    if run.returncode != 0 or not lines or not lines[-1].startswith(MARK):
        sys.exit(f"worker {worker} failed (exit status {run.returncode}):\n{run.stdout}\n{run.stderr}")
    result = json.loads(lines[-1][len(MARK):])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    other = None if busy is None else max(0.0, busy_after - busy - own) / (wall * os.cpu_count())
    return {**result, "process_s": wall, "other_load": other}


def percent(share) -> str:
    return "n/a" if share is None else f"{100 * share:.0f}%"


def main():
    args = parse_args()
    if args.worker:
        result = share_worker(args) if args.worker == "share" else fit_worker(args)
        print(MARK + json.dumps(result), flush=True)
        return
    import numpy as np

    import lstm_native

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
               "lstm_native": lstm_native.__version__, "isa": lstm_native.isa, "numpy": np.__version__,
               "OPENBLAS_NUM_THREADS": os.environ["OPENBLAS_NUM_THREADS"], "load_average": os.getloadavg()[0],
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "quick": args.quick}
    print(f"- machine: {machine['cpu']}, {machine['cores']} logical CPUs; {args.threads} thread(s) for each "
          f"framework; lstm_native {machine['lstm_native']} ({machine['isa']}); numpy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={machine['OPENBLAS_NUM_THREADS']}; load average {machine['load_average']:.2f}"
          f"{'; --quick: a test run, not a measure' if args.quick else ''}", flush=True)
    records = []
    if args.part in ("fit", "all"):
        results = {}
        for worker in ("ours", "keras"):
            results[worker] = run_worker(args, worker)
        ours, keras = results["ours"], results["keras"]
        print(f"\nfit, the seed's model: {ours['data']} x ({ours['timesteps']}, {ours['features']}), batch 32, "
              f"{args.epochs} epochs timed after 1 warm-up epoch; Keras {keras['keras']} on TensorFlow "
              f"{keras['tensorflow']} (jit_compile={keras['jit_compile']})\n")
        print("| framework | seq/s median | seq/s min-max | s/epoch median | warm-up epoch s | last epoch loss, "
              "accuracy | process s | other load |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|")
        for worker, label in (("ours", "lstm_native"), ("keras", "Keras 3 / TensorFlow")):
            r = results[worker]
            seqs, logs = r["seq_per_s"], r["last_epoch_logs"]
            print(f"| {label} | {seqs['median']:.0f} | {seqs['min']:.0f}-{seqs['max']:.0f} "
                  f"| {statistics.median(r['epoch_s']):.3f} | {r['warmup_epoch_s']:.2f} "
                  f"| {logs.get('loss', float('nan')):.3f}, {logs.get('accuracy', float('nan')):.3f} "
                  f"| {r['process_s']:.0f} | {percent(r['other_load'])} |")
        ratio = ours["seq_per_s"]["median"] / keras["seq_per_s"]["median"]
        print(f"\nratio ours/Keras (medians of seq/s): {ratio:.2f}x (issue target: >= 2x). Other load: CPU time of "
              f"other processes during the framework's run, as a share of all {os.cpu_count()} cores", flush=True)
        records += [{"part": "fit", **r, **machine} for r in results.values()]
        records.append({"part": "fit_ratio", "ratio_ours_keras": ratio, **machine})
    if args.part in ("share", "all"):
        r = run_worker(args, "share")
        print(f"\nPython share of a training step: LSTM({r['H']}) + Dense(10, softmax), B={r['B']} T={r['T']} "
              f"I={r['I']}, peephole={r['peephole']}, {r['repeats']} alternating repeats; other load "
              f"{percent(r['other_load'])}\n")
        print(f"- train_on_batch: {1e3 * r['step_median_s']:.1f} ms (median; min-max "
              f"{1e3 * min(r['step_s']):.1f}-{1e3 * max(r['step_s']):.1f})")
        print(f"- core lstm_forward(training=True) + lstm_backward: {1e3 * r['core_median_s']:.1f} ms (median; "
              f"min-max {1e3 * min(r['core_s']):.1f}-{1e3 * max(r['core_s']):.1f})")
        pair = r["pair_share"]
        print(f"- Python + Dense + loss + metric + Adam share, (step - core) / step: {100 * r['python_share']:.1f}% "
              f"(of medians; per pair {100 * pair['min']:.1f}-{100 * pair['max']:.1f}%; issue target: <= 10%)")
        if "profile" in r:
            print("\n" + r["profile"])
        records.append({"part": "share", **r, **machine})
    if args.json:
        with open(args.json, "w") as out_file:
            out_file.writelines(json.dumps(record) + "\n" for record in records)


if __name__ == "__main__":
    main()
