"""The README's Python examples run as written (the Keras block on small data it assumes to exist)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_keras_block_trains():
    block = next(b for b in python_blocks() if "Sequential" in b)
    rng = np.random.default_rng(0)
    data = dict(timesteps=5, input_dim=3, output_dim=4)
    data.update({name: rng.standard_normal((n, 5, 3)).astype(np.float32)
                 for name, n in (("X_train", 40), ("X_val", 8))})
    data.update({name: np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)] for name, n in (("y_train", 40), ("y_val", 8))})
    namespace = dict(data)
    exec(compile(block, str(README), "exec"), namespace)
    history = namespace["model"].history.history
    assert len(history["loss"]) == 10 and "val_accuracy" in history


def test_readme_functional_block_runs():
    block = next(b for b in python_blocks() if "lstm_backward" in b)
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)
    grads = namespace["grads"]
    assert grads.dW.shape == namespace["W"].shape and grads.dp.shape == namespace["p"].shape


def test_readme_training_strategies_block_builds_the_layer():
    block = next(b for b in python_blocks() if "zoneout_h" in b)
    namespace = {}
    exec(compile("from lstm_native.layers import LSTM\nlayer = " + block, str(README), "exec"), namespace)
    layer = namespace["layer"]
    assert layer.rates == dict(dropout=0.2, recurrent_dropout=0.2, zoneout_h=0.1, zoneout_c=0.1, weight_drop=0.3)
    assert layer.activation_regularization == layer.temporal_activation_regularization == 1e-3
