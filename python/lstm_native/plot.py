"""Plots people look at instead of reading numbers (matplotlib, an optional extra: pip install ".[plot]").

    plot.training_curves(history, "curves.png")        # loss and metrics, training against validation
    plot.gate_heatmaps(model.trace(x, layer="lstm"), "gates.png", sample=0)
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files, no screen
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError('lstm_native.plot needs matplotlib: pip install "lstm_native[plot]"') from error
    return plt


def training_curves(history, path, title=None):
    """One panel per metric of a History (or its .history dict), training and validation curves together."""
    logs = getattr(history, "history", history)
    names = [k for k in logs if not k.startswith("val_")]
    if not names:
        raise ValueError("history: no metrics to plot")
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names):
        epochs = np.arange(1, len(logs[name]) + 1)
        axis.plot(epochs, logs[name], marker="o", markersize=3, label="training")
        if f"val_{name}" in logs:
            axis.plot(epochs, logs[f"val_{name}"], marker="o", markersize=3, label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def gate_heatmaps(trace, path, sample=0, title=None):
    """Heatmaps of one sequence's gates i, f, g, o and states c, h over time (units × steps), from a trace
    ({"i", "f", "g", "o", "c", "h"} of (batch, timesteps, units) arrays: LSTM.trace or Sequential.trace)."""
    names = [k for k in ("i", "f", "g", "o", "c", "h") if k in trace]
    if not names:
        raise ValueError("trace: expected the keys i, f, g, o, c, h")
    plt = _pyplot()
    figure, axes = plt.subplots(len(names), 1, figsize=(8, 1.6 * len(names)), sharex=True)
    labels = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o",
              "c": "cell state c", "h": "hidden state h"}
    for axis, name in zip(np.atleast_1d(axes), names):
        values = np.asarray(trace[name])[sample].T  # units × steps
        limits = (0, 1) if name in "ifo" else (-np.abs(values).max() or 1, np.abs(values).max() or 1)
        image = axis.imshow(values, aspect="auto", cmap="viridis" if name in "ifo" else "coolwarm",
                            vmin=limits[0], vmax=limits[1], interpolation="nearest")
        axis.set_ylabel(labels[name], rotation=0, ha="right", va="center")
        axis.set_yticks([])
        figure.colorbar(image, ax=axis, pad=0.01)
    np.atleast_1d(axes)[-1].set_xlabel("time step")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
