"""The README's pictures: the seed program's model on JapaneseVowels, its training curves and the gates of
one utterance over time (pip install ".[plot]").

    python examples/plots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lstm_native
from lstm_native import datasets, plot
from lstm_native.layers import LSTM, Dense
from lstm_native.models import Sequential


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lstm_native.utils.set_random_seed(0)
    (x_train, labels_train), (x_test, labels_test), _, lengths_test = datasets.japanese_vowels()
    y_train, y_test = np.eye(9, dtype=np.float32)[labels_train], np.eye(9, dtype=np.float32)[labels_test]
    model = Sequential([LSTM(32, input_shape=x_train.shape[1:], name="lstm"), Dense(9, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_data=(x_test, y_test),
                        verbose=0)
    plot.training_curves(history, out / "japanese_vowels_curves.png",
                         title="JapaneseVowels: LSTM(32, diagonal peepholes) + Dense(9)")
    sample = 0  # padded in front: its first 29 - length steps are zeros
    trace = model.trace(x_test[sample : sample + 1], layer="lstm")
    plot.gate_heatmaps(trace, out / "japanese_vowels_gates.png",
                       title=f"test utterance {sample} (speaker {labels_test[sample] + 1}, "
                             f"{lengths_test[sample]} frames after {29 - lengths_test[sample]} padding steps)")
    print(f"wrote {out / 'japanese_vowels_curves.png'} and {out / 'japanese_vowels_gates.png'}")


if __name__ == "__main__":
    main()
