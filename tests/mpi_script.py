"""Run under mpiexec by tests/test_mpi.py: `python mpi_script.py MODE OUT_PREFIX [local] [noshuffle]`
(`local`: plain fit without MPIStrategy; `noshuffle`: shuffle=False).

equivalence: trains a float64 model (no dropout) for a few steps; rank 0 writes the weights and history.
dropout: records the per-batch seeds the LSTM layer draws on each rank (one file per rank); verbose=2.
stop: rank 0's callbacks stop training (at a batch's end, then EarlyStopping); every rank records where.
checks: argument checks (a singleton process is enough).
die: rank 1 exits abruptly (os._exit) in the middle of training; the others must fail within the timeout.
disagree: each rank calls fit differently in one respect, case after case; every rank records the error.
"""

import json
import os
import sys

import numpy as np

from lstm_native import utils
from lstm_native.distributed import MPIStrategy
from lstm_native.layers import LSTM, Dense
from lstm_native.models import Sequential

mode, prefix = sys.argv[1], sys.argv[2]
use_strategy = "local" not in sys.argv[3:]
shuffle = "noshuffle" not in sys.argv[3:]


def model_and_data(dropout=0.0):
    utils.set_random_seed(1234)
    x = np.random.default_rng(0).normal(size=(24, 5, 3))
    y = np.random.default_rng(1).normal(size=(24, 2))
    model = Sequential([LSTM(6, input_shape=(5, 3), dtype="float64", dropout=dropout, recurrent_dropout=dropout),
                        Dense(2, dtype="float64")])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], weighted_metrics=["mae"], loss_weights=0.5)
    return model, x, y


strategy = MPIStrategy(timeout=float(os.environ.get("MPI_TEST_TIMEOUT", "60"))) if use_strategy else None
rank = strategy.rank if strategy else 0

if mode == "equivalence":
    model, x, y = model_and_data()
    weights = np.random.default_rng(2).uniform(0, 2, len(x))
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=shuffle, verbose=0, strategy=strategy,
                        sample_weight=weights, validation_data=(x[:10], y[:10], weights[:10]))
    if rank == 0:
        np.savez(prefix + ".npz", *model.get_weights())
        with open(prefix + ".json", "w") as f:
            json.dump(history.history, f)
elif mode == "dropout":
    model, x, y = model_and_data(dropout=0.3)
    seeds = []
    original = utils.generator

    class Recorder:
        def __init__(self, generator):
            self.generator = generator

        def integers(self, *args, **kwargs):
            value = self.generator.integers(*args, **kwargs)
            seeds.append(int(value))
            return value

    utils.generator = lambda seed=None: Recorder(original(seed))
    model.fit(x, y, batch_size=8, epochs=2, verbose=2, strategy=strategy)
    utils.generator = original
    with open(f"{prefix}.{rank}.json", "w") as f:
        json.dump(seeds, f)
elif mode == "stop":
    from lstm_native.callbacks import Callback, EarlyStopping

    class StopAtBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    records = {}
    for name, callback in (("batch", StopAtBatch()), ("early", EarlyStopping(monitor="loss", min_delta=10))):
        model, x, y = model_and_data()
        history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, strategy=strategy, callbacks=[callback])
        records[name] = {"iterations": model.optimizer.iterations, "epochs": history.epoch,
                         "loss": history.history["loss"], "weights": float(np.sum(model.get_weights()[0]))}
    with open(f"{prefix}.{rank}.json", "w") as f:
        json.dump(records, f)
elif mode == "checks":
    import pytest

    with pytest.raises(ValueError, match="timeout"):
        MPIStrategy(timeout=0)
    assert (strategy.rank, strategy.size) == (0, 1)
    from lstm_native.layers import LSTM as Layer
    model = Sequential([Layer(3, input_shape=(4, 2), stateful=True), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.zeros((4, 4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="stateful"):
        model.fit(x, y, batch_size=2, verbose=0, strategy=strategy)
    print("checks passed")
elif mode == "die":
    model, x, y = model_and_data()

    class DieMidway:
        """Kills rank 1 inside the third step's forward pass (rank 0 then waits in that step's allreduce)."""

        calls = 0

    forward = model._forward

    def dying_forward(x_batch, training):
        DieMidway.calls += 1
        if rank == 1 and DieMidway.calls == 3:
            os._exit(7)
        return forward(x_batch, training)

    model._forward = dying_forward
    print(f"rank {rank} training", flush=True)
    model.fit(x, y, batch_size=8, epochs=5, verbose=0, strategy=strategy)
    print(f"rank {rank} finished (unexpected)", flush=True)
elif mode == "disagree":
    x_all, y_all = model_and_data()[1:]
    cases = {  # each a fit where rank 1 differs from rank 0 in one respect
        "samples": lambda: dict(x=x_all[:24 - 4 * rank], y=y_all[:24 - 4 * rank]),
        "validation": lambda: dict(validation_data=(x_all[:10 - 2 * rank], y_all[:10 - 2 * rank])),
        "batch_size": lambda: dict(batch_size=8 + 4 * rank),
        "epochs": lambda: dict(epochs=3 + rank),
    }
    errors = {}
    for name, case in cases.items():
        model = model_and_data()[0]
        arguments = {**dict(x=x_all, y=y_all, batch_size=8, epochs=3, verbose=0, strategy=strategy), **case()}
        try:
            model.fit(**arguments)
            errors[name] = None
        except ValueError as error:
            errors[name] = str(error)
    model = Sequential([LSTM(6 + rank, input_shape=(5, 3), dtype="float64"), Dense(2, dtype="float64")])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    try:
        model.fit(x_all, y_all, batch_size=8, epochs=3, verbose=0, strategy=strategy)
        errors["model"] = None
    except ValueError as error:
        errors["model"] = str(error)
    with open(f"{prefix}.{rank}.json", "w") as f:
        json.dump(errors, f)
