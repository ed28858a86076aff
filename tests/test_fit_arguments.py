"""fit, evaluate and predict: every argument checked before the first step (a bad one raises naming it and
trains nothing), batches from generators, datasets and sequences, the declared input shape, and the
progress bar's samples/s."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lstm_native import callbacks, layers, utils
from lstm_native.models import Sequential

T, F, N = 5, 3, 24


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, F)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    return x, y


def model(seed=0):
    utils.set_random_seed(seed)
    m = Sequential([layers.LSTM(4, input_shape=(T, F)), layers.Dense(2, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return m


def weights(m):
    return [w.copy() for w in m.get_weights()]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


BAD_FIT_ARGUMENTS = [
    ("batch_size", -5), ("batch_size", 0), ("batch_size", True), ("batch_size", 2.5), ("batch_size", "32"),
    ("epochs", -1), ("epochs", 1.5), ("epochs", True), ("epochs", "3"),
    ("initial_epoch", -1), ("initial_epoch", 0.5),
    ("validation_split", -0.1), ("validation_split", 1.0), ("validation_split", 1.5), ("validation_split", True),
    ("validation_split", math.nan),
    ("validation_freq", 0), ("validation_freq", -1), ("validation_freq", 1.5), ("validation_freq", True),
    ("validation_batch_size", 0), ("validation_batch_size", -1), ("validation_batch_size", True),
    ("verbose", 3), ("verbose", -1), ("verbose", True), ("verbose", "yes"),
    ("shuffle", "batch"), ("shuffle", 1),
    ("steps_per_epoch", 3), ("validation_steps", 2),
    ("class_weight", {0: -1.0}), ("class_weight", {0: math.nan}), ("class_weight", {"a": 1.0}),
    ("class_weight", [1.0, 2.0]), ("class_weight", {True: 1.0}),
    ("sample_weight", np.full(N, np.nan)), ("sample_weight", -np.ones(N)),
]


@pytest.mark.parametrize("name, value", BAD_FIT_ARGUMENTS, ids=[f"{n}={v!r}" for n, v in BAD_FIT_ARGUMENTS])
def test_fit_refuses_a_bad_argument_before_any_step(name, value):
    x, y = data()
    m = model()
    before = weights(m)
    arguments = dict(epochs=2, verbose=0, validation_data=data(8, seed=1))
    arguments[name] = value
    with pytest.raises((ValueError, TypeError), match=name):
        m.fit(x, y, **arguments)
    assert_same_weights(before, weights(m))
    assert m.optimizer.iterations == 0


@pytest.mark.parametrize("validation_data, message", [
    (lambda x, y: (x[:0], y[:0]), "validation_data holds no samples"),
    (lambda x, y: (x[:4], y[:3]), "y: expected 4 samples"),
    (lambda x, y: (x[:4],), "validation_data: expected"),
    (lambda x, y: (x[:4], y[:4], np.ones(4), np.ones(4)), "validation_data: expected"),
    (lambda x, y: (x[:4, :, :2], y[:4]), "expected features 3 (the model's inputs have shape (None, 5, 3)), got 2"),
    (lambda x, y: (x[:4], y[:4], np.full(4, np.inf)), "sample_weight"),
    (lambda x, y: (x[:4], None), "y: validation_data needs targets"),
])
def test_bad_validation_data_is_refused_before_the_first_epoch(validation_data, message):
    """Issue 23 item 4: the empty validation set used to be found only after the first epoch had trained."""
    x, y = data()
    m = model()
    before = weights(m)
    with pytest.raises(ValueError, match=re.escape(message)):
        m.fit(x, y, epochs=2, verbose=0, validation_data=validation_data(x, y))
    assert_same_weights(before, weights(m))


def test_validation_split_that_leaves_no_validation_sample_is_refused():
    x, y = data(3)
    with pytest.raises(ValueError, match="leaves no validation sample"):
        model().fit(x, y, validation_split=1e-20, verbose=0)


def test_fit_without_targets_is_refused():
    with pytest.raises(ValueError, match="y: x needs targets"):
        model().fit(data()[0], verbose=0)


@pytest.mark.parametrize("value", [-1, 0, True, 1.5])
def test_evaluate_and_predict_refuse_a_bad_batch_size(value):
    x, y = data()
    m = model()
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        m.evaluate(x, y, batch_size=value, verbose=0)
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        m.predict(x, batch_size=value)


def test_evaluate_and_predict_refuse_steps_with_arrays_and_a_bad_verbose():
    x, y = data()
    m = model()
    with pytest.raises(ValueError, match="steps"):
        m.evaluate(x, y, steps=2)
    with pytest.raises(ValueError, match="steps"):
        m.predict(x, steps=2)
    with pytest.raises(ValueError, match="verbose"):
        m.predict(x, verbose=5)


class Recorder(callbacks.Callback):
    """Records the evaluate and predict hooks called, each as (hook, its arguments: [batch,] logs)."""

    def __init__(self):
        super().__init__()
        self.calls = []


for _hook in ("begin", "batch_begin", "batch_end", "end"):
    for _stage in ("test", "predict"):
        setattr(Recorder, f"on_{_stage}_{_hook}",
                lambda self, *args, _name=f"on_{_stage}_{_hook}": self.calls.append((_name, args)))


def test_predict_calls_the_predict_hooks_of_its_callbacks():
    x, _ = data()
    m, recorder = model(), Recorder()
    y = m.predict(x, batch_size=10, verbose=0, callbacks=[recorder])
    assert recorder.model is m and recorder.params == {"verbose": 0, "epochs": 1, "steps": 3}
    names = [name for name, _ in recorder.calls]
    assert names == ["on_predict_begin"] + ["on_predict_batch_begin", "on_predict_batch_end"] * 3 + ["on_predict_end"]
    ends = [args for name, args in recorder.calls if name == "on_predict_batch_end"]
    assert [batch for batch, _ in ends] == [0, 1, 2]
    np.testing.assert_array_equal(np.concatenate([logs["outputs"] for _, logs in ends]), y)


def test_evaluate_calls_the_test_hooks_of_its_callbacks():
    x, y = data()
    m, recorder = model(), Recorder()
    logs = m.evaluate(x, y, batch_size=10, verbose=0, callbacks=[recorder], return_dict=True)
    names = [name for name, _ in recorder.calls]
    assert names == ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 3 + ["on_test_end"]
    assert [args[0] for name, args in recorder.calls if name == "on_test_batch_end"] == [0, 1, 2]
    assert recorder.calls[-1][1] == (logs,) and recorder.calls[-2][1] == (2, logs)  # the last batch's: the result
    assert set(recorder.calls[2][1][1]) == {"loss", "accuracy"}


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_evaluate_and_predict_show_a_progress_bar_as_keras(method, capsys):
    x, y = data()
    m = model()
    run = (lambda **kw: m.predict(x, batch_size=8, **kw)) if method == "predict" else (
        lambda **kw: m.evaluate(x, y, batch_size=8, **kw))
    for verbose in ("auto", 1):
        run(verbose=verbose)
        assert re.fullmatch(r"3/3 ━{20} \d+s \d+[mu]?s/step.*\n", capsys.readouterr().out)
    result = run(verbose=2)
    out = capsys.readouterr().out
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step.*\n", out)
    if method == "evaluate":
        assert f"accuracy: {result[1]:.4f} - loss: {result[0]:.4f}" in out
    run(verbose=0)
    assert capsys.readouterr().out == ""


def test_compile_refuses_run_eagerly_and_jit_compile_other_than_keras_defaults():
    m = model()
    for arguments in ({"run_eagerly": True}, {"jit_compile": True}, {"jit_compile": "xla"}, {"run_eagerly": "yes"}):
        with pytest.raises(ValueError, match=f"{next(iter(arguments))}=.* is not supported"):
            m.compile(loss="mse", **arguments)
    m.compile(loss="mse", run_eagerly=False, jit_compile=False)
    m.compile(loss="mse", run_eagerly=np.False_, jit_compile="auto")


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("value, message", [(5, "a list of callbacks, got int"),
                                            (callbacks.History(), "a list of callbacks, got History"),
                                            ([object()], "instances of lstm_native.callbacks.Callback, got object")])
def test_callbacks_that_are_not_a_list_of_callbacks_are_refused(method, value, message):
    x, y = data()
    m = model()
    before = weights(m)
    arguments = (x,) if method == "predict" else (x, y)
    with pytest.raises(TypeError, match=f"callbacks: expected {re.escape(message)}"):
        getattr(m, method)(*arguments, callbacks=value, verbose=0)
    assert_same_weights(weights(m), before)


# ---------------------------------------------------------------------------------------------- batches

class Batches:
    """A Keras-style sequence (keras.utils.PyDataset's protocol): len() batches, fetched by index."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, k):
        rows = slice(k * self.batch_size, (k + 1) * self.batch_size)
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.epochs_ended += 1


def endless(x, y, batch_size):
    while True:
        for first in range(0, len(x), batch_size):
            yield x[first:first + batch_size], y[first:first + batch_size]


def fit_on_arrays(x, y, **kwargs):
    m = model()
    history = m.fit(x, y, batch_size=6, shuffle=False, verbose=0, **kwargs)
    return m, history.history


def test_a_sequence_trains_exactly_as_the_arrays_in_the_same_order():
    x, y = data()
    reference, expected = fit_on_arrays(x, y, epochs=3, validation_data=data(8, seed=1))
    m = model()
    sequence = Batches(x, y, 6)
    history = m.fit(sequence, epochs=3, verbose=0, validation_data=Batches(*data(8, seed=1), 6)).history
    assert history == expected
    assert_same_weights(weights(reference), weights(m))
    assert sequence.epochs_ended == 3
    np.testing.assert_array_equal(m.predict(Batches(x, y, 5)), reference.predict(x))
    assert m.evaluate(Batches(x, y, 6), return_dict=True, verbose=0) == reference.evaluate(
        x, y, batch_size=6, return_dict=True, verbose=0)


def test_a_generator_with_steps_per_epoch_reads_on_across_epochs():
    x, y = data()
    reference, expected = fit_on_arrays(x, y, epochs=3)
    m = model()
    history = m.fit(endless(x, y, 6), steps_per_epoch=4, epochs=3, verbose=0).history
    assert history == expected
    assert_same_weights(weights(reference), weights(m))


def test_a_finite_generator_without_steps_stops_with_keras_warning_when_it_runs_out():
    x, y = data()
    reference, expected = fit_on_arrays(x, y, epochs=1)
    m = model()
    finite = (batch for batch, _ in zip(endless(x, y, 6), range(4)))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = m.fit(finite, epochs=3, verbose=0).history
    assert history == expected  # one epoch, then nothing left
    assert_same_weights(weights(reference), weights(m))


def test_a_tf_dataset_is_iterated_afresh_each_epoch():
    tf = pytest.importorskip("tensorflow")
    x, y = data()
    reference, expected = fit_on_arrays(x, y, epochs=2)
    m = model()
    history = m.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(6), epochs=2, verbose=0).history
    assert history == expected
    assert_same_weights(weights(reference), weights(m))


def test_batches_with_sample_weights_and_class_weight():
    x, y = data()
    w = np.linspace(0.5, 2.0, N).astype(np.float32)
    reference, expected = fit_on_arrays(x, y, epochs=2, sample_weight=w, class_weight={0: 2.0})
    m = model()
    batches = [(x[k:k + 6], y[k:k + 6], w[k:k + 6]) for k in range(0, N, 6)]
    history = m.fit(iter(batches * 2), steps_per_epoch=4, epochs=2, class_weight={0: 2.0}, verbose=0).history
    assert history == expected
    assert_same_weights(weights(reference), weights(m))


@pytest.mark.parametrize("arguments, message", [
    (dict(batch_size=6), "batch_size: not used when x yields batches"),
    (dict(y=np.zeros((N, 2))), "y: not used when x yields batches"),
    (dict(validation_split=0.2), "validation_split: not available when x yields batches"),
    (dict(steps_per_epoch=10), "10 steps asked, but the sequence holds 4 batches"),
])
def test_batches_refuse_arguments_that_belong_to_arrays(arguments, message):
    x, y = data()
    with pytest.raises(ValueError, match=re.escape(message)):
        model().fit(Batches(x, y, 6), verbose=0, **arguments)


@pytest.mark.parametrize("batch, message", [
    (lambda x, y: x, "batch 0 has no targets"),
    (lambda x, y: (x, y, None, None), "a batch must be x, (x,), (x, y) or (x, y, sample_weight)"),
    (lambda x, y: (None, y), "a batch's x is None"),
    (lambda x, y: (x, y, -np.ones(len(x))), "sample_weight: expected finite, non-negative weights"),
])
def test_malformed_batches_raise_clear_errors(batch, message):
    x, y = data()
    with pytest.raises(ValueError, match=re.escape(message)):
        model().fit(iter([batch(x[:6], y[:6])]), verbose=0)


def test_unsupported_inputs_name_what_is_supported():
    with pytest.raises(TypeError, match="a dict of inputs is not supported"):
        model().fit({"input": data()[0]}, verbose=0)
    with pytest.raises(ValueError, match=r"got shape \(\) \(a int\)"):
        model().predict(5)


# ------------------------------------------------------------------------------------- declared shapes

def test_inputs_with_other_timesteps_than_declared_warn_and_other_features_raise():
    x, y = data()
    m = model()
    with pytest.warns(UserWarning, match=r"built for inputs of shape \(None, 5, 3\), but is called on inputs "
                                         r"of shape \(None, 7, 3\)"):
        m.predict(np.zeros((2, 7, F), np.float32))
    with pytest.raises(ValueError, match="expected features 3"):
        m.predict(np.zeros((2, T, 4), np.float32))
    with pytest.raises(ValueError, match="expects inputs of shape"):
        m.predict(np.zeros((2, T), np.float32))


def test_a_model_without_declared_timesteps_does_not_warn():
    m = Sequential([layers.Input(shape=(None, F)), layers.LSTM(4), layers.Dense(2)])
    m.predict(np.zeros((2, 7, F), np.float32))  # filterwarnings=error: a warning would fail this test


# ------------------------------------------------------------------------------------------ progress bar

@pytest.mark.parametrize("verbose", [1, 2])
def test_the_progress_bar_reports_samples_per_second(verbose, capsys):
    x, y = data()
    model().fit(x, y, batch_size=6, epochs=2, verbose=verbose)
    lines = [line for line in capsys.readouterr().out.splitlines() if "step" in line]
    assert len(lines) == 2, lines
    for line in lines:
        rate = re.search(r"/step - ([\d,]+) samples/s", line)
        assert rate, line
        assert int(rate.group(1).replace(",", "")) > 0


def test_fit_validation_calls_the_test_hooks_as_keras_does():
    """Keras' fit validates through evaluate with fit's callbacks: on_test_begin, a begin and an end per
    validation batch, on_test_end with the validation logs, once per validated epoch."""
    x, y = data()
    calls = []

    class Recorder(callbacks.Callback):
        def on_test_begin(self, logs=None):
            calls.append(("begin",))

        def on_test_batch_end(self, batch, logs=None):
            calls.append(("batch", batch, sorted(logs)))

        def on_test_end(self, logs=None):
            calls.append(("end", sorted(logs)))

    history = model().fit(x, y, batch_size=6, epochs=2, verbose=0, validation_data=data(8, seed=1),
                          validation_batch_size=5, callbacks=[Recorder()]).history
    per_epoch = [("begin",), ("batch", 0, ["accuracy", "loss"]), ("batch", 1, ["accuracy", "loss"]),
                 ("end", ["accuracy", "loss"])]
    assert calls == per_epoch * 2
    assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
