#!/usr/bin/env python3
"""The projected LSTM (LSTMP, proj_size) against the unprojected one on JapaneseVowels: parameters, training
throughput and test accuracy.

The seed's model, LSTM(units, proj_size=P) + Dense(9, softmax), categorical cross-entropy, Adam, batch 32,
trained on all 270 training utterances for a fixed number of epochs with the data of bench/generalization.py
(standardized features); the test accuracy on the 370 test utterances, mean ± std over seeds; parameters
of the LSTM layer and of the model; training throughput as training sequences per second of fit (median
over the seeds' runs, each run's whole fit timed, evaluation excluded).

    python3 bench/projection.py [--seeds 5] [--quick] [--markdown PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as bench/generalization.py: numpy's BLAS threads fight ours

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalization import VOWEL_EPOCHS, machine, markdown_row, standardized_vowels, table  # noqa: E402

import lstm_native  # noqa: E402
from lstm_native import utils  # noqa: E402
from lstm_native.layers import LSTM, Dense, InputLayer  # noqa: E402
from lstm_native.models import Sequential  # noqa: E402

CONFIGS = {  # name: (units, proj_size)
    "LSTM(128)": (128, 0),
    "LSTM(128, proj_size=64)": (128, 64),
    "LSTM(128, proj_size=32)": (128, 32),
    "LSTM(256, proj_size=32)": (256, 32),
}
HEADER = ("config", "LSTM params", "model params", "train seq/s (median)", "test accuracy (mean ± std, ddof=0)",
          "per seed")


def model_for(units: int, proj_size: int, input_shape) -> Sequential:
    model = Sequential([InputLayer(input_shape=input_shape), LSTM(units, proj_size=proj_size),
                        Dense(9, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def run(seeds: int, epochs: int):
    (x_train, y_train), (x_test, y_test) = standardized_vowels()
    rows = []
    for name, (units, proj_size) in CONFIGS.items():
        accuracies, throughputs = [], []
        for seed in range(seeds):
            utils.set_random_seed(seed)
            model = model_for(units, proj_size, x_train.shape[1:])
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
            throughputs.append(len(x_train) * epochs / (time.perf_counter() - start))
            accuracies.append(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
        rows.append((name, f"{model.layers[0].count_params():,}", f"{model.count_params():,}",
                     f"{statistics.median(throughputs):,.0f}", f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}",
                     " ".join(f"{a:.3f}" for a in accuracies)))
        print(markdown_row(rows[-1]), flush=True)
    return HEADER, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per config (default 5)")
    parser.add_argument("--quick", action="store_true", help="one seed, two epochs: a test run")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    lstm_native.set_num_threads(2)
    seeds, epochs = (1, 2) if args.quick else (args.seeds, VOWEL_EPOCHS)
    print(f"Machine: {machine()}", flush=True)
    start = time.perf_counter()
    report = table(*run(seeds, epochs))
    report = (f"Machine: {machine()}\n\nJapaneseVowels, {seeds} seed(s), {epochs} epochs, "
              f"{time.perf_counter() - start:.0f} s in all:\n\n{report}\n")
    print("\n" + report)
    if args.markdown:
        args.markdown.write_text(report)


if __name__ == "__main__":
    main()
