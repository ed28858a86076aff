"""Real sequence data sets that load offline from packages that ship them.

JapaneseVowels (UCI; 9 speakers, 12 LPC cepstrum coefficients per frame, 7 to 29 frames; 270 training and
370 test utterances) ships as `.ts` files inside the aeon package: ``pip install --no-deps aeon==1.6.0``.
aeon's own loader imports numba and pins numpy, so the files are parsed here; the format is plain text:
`@` header lines, then one series a line, its dimensions separated by ':' and the class label last.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import List, Tuple

import numpy as np


def load_ts(path) -> Tuple[List[np.ndarray], np.ndarray]:
    """A `.ts` file -> (list of (length, dimensions) float32 arrays, labels as strings)."""
    series, labels, in_data = [], [], False
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *dimensions, label = line.split(":")
        try:
            values = [np.array(d.split(","), dtype=np.float32) for d in dimensions]
        except ValueError as error:
            raise ValueError(f"{path}:{number}: not a series of numbers ({error})") from None
        if len({len(v) for v in values}) != 1:
            raise ValueError(f"{path}:{number}: the dimensions of a series differ in length")
        series.append(np.stack(values, axis=1))
        labels.append(label)
    if not series:
        raise ValueError(f"{path}: no @data section with series")
    return series, np.array(labels)


def pad_sequences(series: List[np.ndarray], maxlen: int, padding: str = "pre") -> np.ndarray:
    """(N, maxlen, dimensions) with zeros before ("pre", Keras' default) or after ("post") each series."""
    if padding not in ("pre", "post"):
        raise ValueError(f"padding: expected 'pre' or 'post', got {padding!r}")
    out = np.zeros((len(series), maxlen, series[0].shape[1]), dtype=np.float32)
    for k, s in enumerate(series):
        s = s[-maxlen:]
        if padding == "pre":
            out[k, maxlen - len(s):] = s
        else:
            out[k, : len(s)] = s
    return out


def _aeon_data_dir(name: str) -> Path:
    spec = importlib.util.find_spec("aeon")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{name} ships with aeon: pip install --no-deps aeon==1.6.0")
    return Path(spec.origin).parent / "datasets" / "data" / name


def japanese_vowels(padding: str = "pre"):
    """((x_train, y_train), (x_test, y_test), lengths_train, lengths_test): x (N, 29, 12) float32 padded with
    zeros, y integer classes 0..8, and each utterance's true length."""
    folder = _aeon_data_dir("JapaneseVowels")
    splits = [load_ts(folder / f"JapaneseVowels_{part}.ts") for part in ("TRAIN", "TEST")]
    maxlen = max(len(s) for series, _ in splits for s in series)
    classes = np.unique(np.concatenate([labels for _, labels in splits]))
    (x_train, y_train), (x_test, y_test) = [
        (pad_sequences(series, maxlen, padding), np.searchsorted(classes, labels)) for series, labels in splits]
    lengths = [np.array([len(s) for s in series]) for series, _ in splits]
    return (x_train, y_train), (x_test, y_test), lengths[0], lengths[1]
