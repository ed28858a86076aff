#!/usr/bin/env python3
"""What peepholes are for: precise timing (Gers, Schraudolph & Schmidhuber 2002, "Learning precise timing with
LSTM recurrent networks"), on a generated task in the spirit of their "measuring spike delays".

Each sequence of T steps carries two unit spikes on one input line, the second d steps after the first, at a
random start, and noise on a second line; after the second spike the input is silent until the end, where the
model must name d among the possible delays (classification). Counting the silent steps from the second spike
to the end would not help: the start is random, so only the spacing of the spikes tells d. A small LSTM with
`peephole="diagonal"` and one with `peephole=None` get the same budget (units, epochs, optimizer, seeds, data);
the script prints both, whatever the outcome.

    python bench/peephole_timing.py [--seeds 3] [--epochs 40] [--units 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lstm_native
from lstm_native.layers import LSTM, Dense
from lstm_native.models import Sequential

DELAYS = tuple(range(8, 20))  # the classes
T = 40


def spikes(n, rng):
    x = np.zeros((n, T, 2), np.float32)
    x[:, :, 1] = rng.normal(0, 0.1, (n, T))
    labels = rng.integers(0, len(DELAYS), n)
    for k, label in enumerate(labels):
        delay = DELAYS[label]
        start = rng.integers(0, T - delay - 1)
        x[k, start, 0] = x[k, start + delay, 0] = 1.0
    return x, labels


def run(peephole, seed, args):
    lstm_native.utils.set_random_seed(seed)
    data = np.random.default_rng(seed)
    x_train, y_train = spikes(args.train, data)
    x_test, y_test = spikes(1000, data)
    model = Sequential([LSTM(args.units, input_shape=(T, 2), peephole=peephole), Dense(len(DELAYS), activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=lstm_native.optimizers.Adam(0.01),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1], time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--train", type=int, default=2000)
    args = parser.parse_args()
    print(f"spike-delay task: T={T}, delays {DELAYS[0]}..{DELAYS[-1]} ({len(DELAYS)} classes, chance "
          f"{1 / len(DELAYS):.3f}), {args.train} training sequences, LSTM({args.units}) + Dense, Adam(0.01), "
          f"{args.epochs} epochs, seeds 0..{args.seeds - 1}; lstm_native {lstm_native.__version__} ({lstm_native.isa})")
    print("| peephole | test accuracy per seed | mean ± std | seconds per run |")
    print("|---|---|---|---|")
    for peephole in ("diagonal", None):
        results = [run(peephole, seed, args) for seed in range(args.seeds)]
        accuracies = [a for a, _ in results]
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        print(f"| {peephole} | {', '.join(f'{a:.3f}' for a in accuracies)} | {statistics.mean(accuracies):.3f} ± "
              f"{spread:.3f} | {statistics.mean(t for _, t in results):.1f} |")


if __name__ == "__main__":
    main()
