"""The plots render to real, non-blank PNG images of the expected size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lstm_native import layers, plot
from lstm_native.models import Sequential


def assert_real_image(path, size):
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert image.shape == (size[1], size[0])
    assert image.std() > 10  # not blank: curves, text and colour maps vary the pixels


def test_training_curves(tmp_path):
    history = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.1, 0.8, 0.7],
               "val_accuracy": [0.4, 0.6, 0.7]}
    plot.training_curves(history, tmp_path / "curves.png", title="toy")
    assert_real_image(tmp_path / "curves.png", (900, 360))


def test_gate_heatmaps_from_a_model_trace(tmp_path):
    model = Sequential([layers.Input(shape=(12, 3)), layers.LSTM(6, name="lstm"), layers.Dense(2)])
    trace = model.trace(np.random.default_rng(0).standard_normal((2, 12, 3)), layer="lstm")
    plot.gate_heatmaps(trace, tmp_path / "gates.png", sample=1)
    assert_real_image(tmp_path / "gates.png", (800, 960))


def test_plot_input_errors(tmp_path):
    with pytest.raises(ValueError, match="history"):
        plot.training_curves({"val_loss": [1.0]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="trace"):
        plot.gate_heatmaps({"z": np.zeros((1, 2, 2))}, tmp_path / "x.png")
