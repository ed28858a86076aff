"""fit's one loop (lstm_native.training) and the protocol a distribution strategy plugs into
(lstm_native.strategy.Strategy): the hooks run in the documented order, a strategy that only passes through
trains exactly as fit without one, a refusal in check_fit trains nothing, and a process that is not the chief
runs no callback. (The MPI strategy itself: tests/test_mpi.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from lstm_native import callbacks, layers, utils
from lstm_native.models import Sequential
from lstm_native.strategy import Strategy

T, F, N = 5, 3, 20


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, N)]
    return x, y


def model():
    utils.set_random_seed(3)
    m = Sequential([layers.LSTM(4, input_shape=(T, F), dropout=0.2), layers.Dense(2, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"], weighted_metrics=["accuracy"])
    return m


HOOKS = ("check_fit", "begin_fit", "train_batches", "evaluation_batches", "step_scope", "stop_requested",
         "reduce_step", "reduce_results", "stop_after_batch", "stop_after_epoch")


class Recording(Strategy):
    """Passes every hook through to the single process, recording the calls (a run of one hook once) and the
    arguments of each hook's last call."""

    def __init__(self):
        self.calls, self.arguments = [], {}


def _recorded(name):
    def hook(self, *args):
        if not self.calls or self.calls[-1] != name:
            self.calls.append(name)
        self.arguments[name] = args
        return getattr(super(Recording, self), name)(*args)

    return hook


for _name in HOOKS:
    setattr(Recording, _name, _recorded(_name))


def fit(strategy=None, **kwargs):
    x, y = data()
    m = model()
    history = m.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2, class_weight={0: 1.0, 1: 2.0},
                    strategy=strategy, **kwargs)
    return m, history


def test_the_loop_runs_through_the_strategy_hooks_in_order_and_a_pass_through_strategy_changes_nothing():
    reference, reference_history = fit()
    strategy = Recording()
    m, history = fit(strategy)
    step = ["stop_requested", "step_scope", "reduce_step", "stop_after_batch"]
    epoch = ["train_batches"] + step * 2 + ["evaluation_batches", "reduce_results", "stop_after_epoch"]
    assert strategy.calls == ["check_fit", "begin_fit"] + epoch * 2
    (plan,) = strategy.arguments["check_fit"]
    assert plan.arguments["batch_size"] == 8 and plan.arguments["class_weight"] == {0: 1.0, 1: 2.0}
    assert plan.metrics == ("accuracy", "accuracy") and plan.validation is not None
    assert history.history == reference_history.history
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), reference.get_weights()))


def test_a_refusal_in_check_fit_trains_nothing_and_runs_no_callback():
    class Refusing(Strategy):
        def check_fit(self, plan):
            raise ValueError("strategy: refused")

    x, y = data()
    m = model()
    before = m.get_weights()
    seen = []
    with pytest.raises(ValueError, match="strategy: refused"):
        m.fit(x, y, batch_size=8, verbose=0, strategy=Refusing(),
              callbacks=[callbacks.LambdaCallback(on_train_begin=lambda logs: seen.append("train_begin"))])
    assert seen == [] and m.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), before))


def test_a_process_that_is_not_the_chief_runs_no_callback_but_keeps_the_history():
    class NotChief(Strategy):
        is_chief = False

    seen = []
    m, history = fit(NotChief(), callbacks=[callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])
    assert seen == [] and history.epoch == [0, 1] and m.optimizer.iterations == 4


@pytest.mark.parametrize("strategy", ["mpi", object(), Strategy])
def test_a_strategy_that_is_not_one_is_refused_before_anything_runs(strategy):
    x, y = data()
    m = model()
    with pytest.raises(TypeError, match="strategy: expected a lstm_native.strategy.Strategy"):
        m.fit(x, y, batch_size=8, verbose=0, strategy=strategy)
    assert m.optimizer.iterations == 0
