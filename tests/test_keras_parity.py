"""The same model in lstm_native and in Keras 3 (TensorFlow backend), with identical weights, peephole=None.

Both libraries use one weight layout: an LSTM holds [kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]
with the gate blocks [i, f, g, o], Bidirectional the forward layer's weights then the backward layer's, so
``ours.set_weights(theirs.get_weights())`` copies a whole model. Keras draws the initial weights (after
keras.utils.set_random_seed); everything runs in float32.

Checked: predictions (masked and unmasked, stacked, bidirectional, reversed), the loss of evaluate for four
losses (and for a per-step loss under an Embedding mask, which Keras leaves the padded steps out of), the
weights and History after fit with several optimizers and models (shuffle=False, three batches, two epochs),
the seed program's model on a slice of JapaneseVowels for one epoch, and the weighting of metrics (metrics
unweighted, weighted_metrics by sample_weight and class_weight, both under an output mask, Keras' log
names) and loss_weights in fit (validation included), evaluate and train_on_batch.

Masking: at a masked step our LSTM outputs the carried state h, Keras' LSTM its previous output. Both
start from a zero state (h0 = 0, and Keras' previous output starts at 0), and the carried h is the previous
step's output, so the two agree at every step, padding first, last or in the middle.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import functools
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from lstm_native import datasets
from lstm_native import layers as our_layers
from lstm_native import optimizers as our_optimizers
from lstm_native.models import Sequential

assert keras.backend.backend() == "tensorflow", f"Keras runs on {keras.backend.backend()}, expected tensorflow"

B, T, I, H, C = 12, 6, 5, 8, 4  # samples, timesteps, features, units, classes
VOCAB = 10
BATCH = 4  # 3 batches of B samples

PREDICTION_TOL = 1e-5  # max abs difference of predictions
LOSS_RTOL = 1e-5  # relative difference of evaluate's loss
TRAIN_TOL = 1e-4  # max abs difference of the weights and of the History values after fit

_LAYER_NAMES = ("Input", "LSTM", "Dense", "Dropout", "Embedding", "Masking", "Bidirectional")
KERAS = SimpleNamespace(**{n: getattr(keras.layers, n) for n in _LAYER_NAMES}, Sequential=keras.Sequential,
                        optimizers=keras.optimizers)
OURS = SimpleNamespace(**{n: getattr(our_layers, n) for n in _LAYER_NAMES}, Sequential=Sequential,
                       optimizers=our_optimizers)
OURS.LSTM = functools.partial(our_layers.LSTM, peephole=None)  # Keras' cell: no peepholes


def max_diff(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"shape {ours.shape}, Keras {theirs.shape}"
    return float(np.max(np.abs(ours - theirs), initial=0.0))


def report(case: str, what: str, diff: float) -> None:
    print(f"[keras parity] {case:46s} {what:26s} {diff:.3e}")


def build_pair(spec, seed=0):
    """The Keras model of spec(KERAS) with its seeded initial weights, and ours of spec(OURS) with a copy."""
    keras.utils.set_random_seed(seed)
    theirs = keras.Sequential(spec(KERAS))
    ours = Sequential(spec(OURS))
    weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    ours.set_weights(weights)
    # Keras' initializers leave biases at zero (but the forget gate's); make every weight count.
    rng = np.random.default_rng(seed + 1)
    weights = [w + (0.1 * rng.standard_normal(w.shape)).astype(np.float32) for w in weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs


def weight_problems(case, ours, theirs, tol) -> dict:
    """{weight path: difference} for every weight further than tol from Keras' (and prints the largest)."""
    ours_w, theirs_w = ours.get_weights(), theirs.get_weights()
    assert len(ours_w) == len(theirs_w)
    diffs = [max_diff(a, b) for a, b in zip(ours_w, theirs_w)]
    report(case, "weights", max(diffs))
    return {v.path: f"{d:.3e}" for v, d in zip(theirs.weights, diffs) if not d <= tol}


# ------------------------------------------------------------------------------------------------- data

def float_sequences(rng):
    return rng.standard_normal((B, T, I)).astype(np.float32)


def zero_padded_sequences(rng):
    """Sequences with all-zero steps: padding in front, behind, in the middle, none, and all but one step."""
    x = float_sequences(rng)
    x[0, :2] = 0
    x[1, -3:] = 0
    x[2, 2:4] = 0
    x[3, :-1] = 0
    x[4, [0, 2, 5]] = 0
    return x


def padded_ids(rng):
    """Integer ids in [1, VOCAB) with 0 as padding, placed as in zero_padded_sequences."""
    ids = rng.integers(1, VOCAB, size=(B, T)).astype(np.int32)
    ids[0, :2] = 0
    ids[1, -3:] = 0
    ids[2, 2:4] = 0
    ids[3, :-1] = 0
    ids[4, [0, 2, 5]] = 0
    return ids


def one_hot_labels(rng):
    return np.eye(C, dtype=np.float32)[rng.integers(0, C, size=B)]


# ------------------------------------------------------------------------------------------------- models

def lstm_softmax(L):
    return [L.Input(shape=(T, I)), L.LSTM(H), L.Dense(C, activation="softmax")]


def stacked(L):
    return [L.Input(shape=(T, I)), L.LSTM(H, return_sequences=True), L.Dropout(0.5), L.LSTM(H - 2), L.Dense(C)]


def bidirectional(merge_mode, return_sequences=False):
    def spec(L):
        return [L.Input(shape=(T, I)), L.Bidirectional(L.LSTM(H, return_sequences=return_sequences),
                                                       merge_mode=merge_mode), L.Dense(C)]
    return spec


def embedding_lstm(input_dtype=None):
    """Embedding(mask_zero=True) -> LSTM -> Dense. Both libraries take integer ids through a float32 Input
    (Keras' default dtype); input_dtype="int32" is Keras' usual declaration of id inputs."""
    def spec(L):
        return [L.Input(shape=(T,), dtype=input_dtype), L.Embedding(VOCAB, I, mask_zero=True), L.LSTM(H),
                L.Dense(C, activation="softmax")]
    return spec


def embedding_bidirectional_stacked(L):
    return [L.Input(shape=(T,)), L.Embedding(VOCAB, I, mask_zero=True),
            L.Bidirectional(L.LSTM(H, return_sequences=True)), L.LSTM(H), L.Dense(C, activation="softmax")]


def masking_lstm(return_sequences=False, go_backwards=False):
    # At a masked step our LSTM outputs its carried h, Keras' LSTM its previous output: the same values,
    # since both start from zero (h0 = 0 and a zero "previous output") and the carried h is the last output.
    def spec(L):
        return [L.Input(shape=(T, I)), L.Masking(mask_value=0.0),
                L.LSTM(H, return_sequences=return_sequences, go_backwards=go_backwards)]
    return spec


def backwards(return_sequences):
    def spec(L):
        return [L.Input(shape=(T, I)), L.LSTM(H, go_backwards=True, return_sequences=return_sequences),
                L.Dense(C)]
    return spec


PREDICTION_CASES = {
    "lstm-dense-softmax": (lstm_softmax, float_sequences),
    "lstm-seq-dropout-lstm-dense": (stacked, float_sequences),
    "bidirectional-concat": (bidirectional("concat"), float_sequences),
    "bidirectional-sum": (bidirectional("sum"), float_sequences),
    "bidirectional-concat-seq": (bidirectional("concat", return_sequences=True), float_sequences),
    "embedding-mask-lstm-dense": (embedding_lstm(), padded_ids),
    "embedding-mask-lstm-dense-int32-input": (embedding_lstm("int32"), padded_ids),
    "embedding-mask-bidirectional-seq-lstm": (embedding_bidirectional_stacked, padded_ids),
    "masking-lstm": (masking_lstm(), zero_padded_sequences),
    "masking-lstm-seq": (masking_lstm(return_sequences=True), zero_padded_sequences),
    "masking-lstm-go-backwards-seq": (masking_lstm(return_sequences=True, go_backwards=True),
                                      zero_padded_sequences),
    "go-backwards": (backwards(False), float_sequences),
    "go-backwards-seq": (backwards(True), float_sequences),
}


@pytest.mark.parametrize("case", list(PREDICTION_CASES))
def test_predictions_equal(case):
    spec, data = PREDICTION_CASES[case]
    ours, theirs = build_pair(spec)
    x = data(np.random.default_rng(1))
    expected = theirs.predict(x, batch_size=BATCH, verbose=0)
    got = ours.predict(x, batch_size=BATCH)
    diff = max_diff(got, expected)
    report(case, "predict", diff)
    assert diff <= PREDICTION_TOL, f"{case}: predictions differ from Keras' by {diff:.3e}"


# ------------------------------------------------------------------------------------------------- losses

def dense_head(units, activation):
    def spec(L):
        return [L.Input(shape=(T, I)), L.LSTM(H), L.Dense(units, activation=activation)]
    return spec


def embedding_lstm_sequence_softmax(L):
    """A tagger: one softmax per step. Keras carries the Embedding's mask to the output and leaves the
    padded steps out of the loss and the metrics."""
    return [L.Input(shape=(T,)), L.Embedding(VOCAB, I, mask_zero=True), L.LSTM(H, return_sequences=True),
            L.Dense(C, activation="softmax")]


def scaled_sequences(rng):
    return 2 * float_sequences(rng)  # confident, partly saturated predictions


def class_labels(rng):
    return rng.integers(0, C, size=B)


def binary_targets(rng):
    return rng.integers(0, 2, size=(B, C)).astype(np.float32)


def real_targets(rng):
    return rng.standard_normal((B, C)).astype(np.float32)


def step_labels(rng):
    return rng.integers(0, C, size=(B, T))


# name -> (loss, model, inputs, targets)
LOSS_CASES = {
    "categorical_crossentropy": ("categorical_crossentropy", dense_head(C, "softmax"), scaled_sequences,
                                 one_hot_labels),
    "sparse_categorical_crossentropy": ("sparse_categorical_crossentropy", dense_head(C, "softmax"),
                                        scaled_sequences, class_labels),
    "binary_crossentropy": ("binary_crossentropy", dense_head(C, "sigmoid"), scaled_sequences, binary_targets),
    "mse": ("mse", dense_head(C, None), scaled_sequences, real_targets),
    "sparse_categorical_crossentropy-masked-steps": ("sparse_categorical_crossentropy",
                                                     embedding_lstm_sequence_softmax, padded_ids, step_labels),
}


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_evaluate_loss_equal(case):
    loss, spec, inputs, targets = LOSS_CASES[case]
    ours, theirs = build_pair(spec)
    rng = np.random.default_rng(2)
    x, y = inputs(rng), targets(rng)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss=loss)
    batch_size = 5  # batches of 5, 5 and 2: evaluate's average weighs them by size
    expected = theirs.evaluate(x, y, batch_size=batch_size, verbose=0)
    got = ours.evaluate(x, y, batch_size=batch_size, verbose=0)
    relative = abs(got - expected) / abs(expected)
    report(case, "evaluate loss (relative)", relative)
    assert relative <= LOSS_RTOL, f"{case}: evaluate gives {got!r}, Keras {expected!r}"


# ------------------------------------------------------------------------------------------------- training

OPTIMIZERS = {
    "sgd": lambda O: O.SGD(learning_rate=0.1),
    "sgd-momentum": lambda O: O.SGD(learning_rate=0.05, momentum=0.9),
    "sgd-nesterov": lambda O: O.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "adam": lambda O: O.Adam(learning_rate=0.01),
    "rmsprop": lambda O: O.RMSprop(learning_rate=0.01),
    "rmsprop-momentum-centered": lambda O: O.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "adamw": lambda O: O.AdamW(learning_rate=0.01, weight_decay=0.05),
}


def masking_stacked_regression(L):
    return masking_lstm(return_sequences=True)(L) + [L.LSTM(H), L.Dense(C)]


def backwards_then_bidirectional(L):
    return [L.Input(shape=(T, I)), L.LSTM(H, return_sequences=True, go_backwards=True),
            L.Bidirectional(L.LSTM(H), merge_mode="sum"), L.Dense(C, activation="softmax")]


# name -> (loss, model, inputs, targets, optimizers).
# The Embedding models train with SGD only: under the TensorFlow backend Keras' Embedding gradient is an
# IndexedSlices with one slice per looked-up id, and Adam and RMSprop square the slices before summing the
# repeated ids (their second moment gets sum(g_k**2) instead of (sum g_k)**2), which no dense-gradient
# optimizer reproduces. SGD (with momentum) is linear in the gradient, so there the two agree.
TRAINING_MODELS = {
    "lstm-dense-softmax": ("categorical_crossentropy", lstm_softmax, float_sequences, one_hot_labels,
                           list(OPTIMIZERS)),
    "embedding-mask-bidirectional-seq-lstm": ("categorical_crossentropy", embedding_bidirectional_stacked,
                                              padded_ids, one_hot_labels, ["sgd-nesterov"]),
    "embedding-mask-lstm-seq-softmax": ("sparse_categorical_crossentropy", embedding_lstm_sequence_softmax,
                                        padded_ids, step_labels, ["sgd-momentum"]),
    "masking-lstm-seq-lstm": ("mse", masking_stacked_regression, zero_padded_sequences, real_targets, ["adam"]),
    "go-backwards-bidirectional-sum": ("categorical_crossentropy", backwards_then_bidirectional, float_sequences,
                                       one_hot_labels, ["adam"]),
}

TRAINING_CASES = [(model, optimizer) for model, case in TRAINING_MODELS.items() for optimizer in case[-1]]


def fit_both(ours, theirs, x, y, optimizer, loss, batch_size, epochs):
    """Compiles both models alike, fits them without shuffling and returns (our History, Keras')."""
    ours.compile(optimizer=optimizer(OURS.optimizers), loss=loss, metrics=["accuracy"])
    theirs.compile(optimizer=optimizer(KERAS.optimizers), loss=loss, metrics=["accuracy"])
    kwargs = dict(batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return ours.fit(x, y, **kwargs).history, theirs.fit(x, y, **kwargs).history


def history_problems(case, ours, theirs, tol) -> dict:
    """{History key: (ours, Keras')} for every key whose values lie further than tol apart."""
    assert sorted(ours) == sorted(theirs), f"{case}: History keys {sorted(ours)}, Keras {sorted(theirs)}"
    problems = {}
    for key in theirs:
        diff = max_diff(ours[key], theirs[key])
        report(case, f"history {key}", diff)
        if not diff <= tol:
            problems[f"history {key}"] = (ours[key], theirs[key])
    return problems


def assert_training_equal(case, ours, theirs, history_ours, history_theirs):
    problems = {**weight_problems(case, ours, theirs, TRAIN_TOL),
                **history_problems(case, history_ours, history_theirs, TRAIN_TOL)}
    assert not problems, f"{case}: after fit, further than {TRAIN_TOL} from Keras: {problems}"


@pytest.mark.parametrize("model,optimizer", TRAINING_CASES)
def test_fit_equal(model, optimizer):
    loss, spec, inputs, targets, _ = TRAINING_MODELS[model]
    case = f"{model}/{optimizer}"
    ours, theirs = build_pair(spec)
    rng = np.random.default_rng(3)
    x, y = inputs(rng), targets(rng)
    history_ours, history_theirs = fit_both(ours, theirs, x, y, OPTIMIZERS[optimizer], loss, BATCH, epochs=2)
    assert_training_equal(case, ours, theirs, history_ours, history_theirs)


# ------------------------------------------------------------------------------------------------- seed program

@pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`")  # Keras 3 prefers Input; the seed does not
def test_seed_program_on_japanese_vowels():
    """examples/seed_program.py's model (LSTM(128) + Dense softmax, categorical_crossentropy, adam) for one
    epoch on every third training utterance of JapaneseVowels (90 of 270, all 9 speakers; batches 32, 32, 26)."""
    (x_train, labels_train), _, _, _ = datasets.japanese_vowels()
    x, labels = x_train[::3], labels_train[::3]
    classes = int(labels_train.max()) + 1
    y = np.eye(classes, dtype=np.float32)[labels]
    timesteps, input_dim = x.shape[1:]

    def spec(L):
        return [L.LSTM(128, input_shape=(timesteps, input_dim)), L.Dense(classes, activation="softmax")]

    ours, theirs = build_pair(spec)
    history_ours, history_theirs = fit_both(ours, theirs, x, y, lambda O: O.Adam(), "categorical_crossentropy",
                                            batch_size=32, epochs=1)
    assert_training_equal("seed-program", ours, theirs, history_ours, history_theirs)


# ------------------------------------------------------------------------------------------------- weighting

def lstm_softmax_named(L):
    return [L.Input(shape=(T, I)), L.LSTM(H), L.Dense(C, activation="softmax", name="out")]


def first_only(rng):
    return np.eye(B, dtype=np.float32)[0]  # sample_weight [1, 0, 0, ...]: one sample counts


def soft_targets(rng):
    return rng.uniform(0.0, 1.0, (B, 1)).astype(np.float32)


def zeros(rng):
    return np.zeros(B, np.float32)


def uniform(rng):
    return rng.uniform(0.0, 2.0, B).astype(np.float32)


BOTH_LISTS = dict(metrics=["accuracy", "acc"], weighted_metrics=["accuracy", "acc", "accuracy"])  # Keras renames

# name -> (model, inputs, targets, loss, compile arguments, sample weights or None, class_weight or None)
WEIGHTING_CASES = {
    "sample-weight-first-only": (lstm_softmax, float_sequences, class_labels, "sparse_categorical_crossentropy",
                                 BOTH_LISTS, first_only, None),
    "sample-weight-zeros": (lstm_softmax, float_sequences, class_labels, "sparse_categorical_crossentropy",
                            BOTH_LISTS, zeros, None),
    "class-weight": (lstm_softmax, float_sequences, class_labels, "sparse_categorical_crossentropy",
                     BOTH_LISTS, None, {0: 2.0}),
    "class-weight-one-hot": (lstm_softmax, float_sequences, one_hot_labels, "categorical_crossentropy",
                             dict(metrics=["accuracy"], weighted_metrics=["acc", "accuracy"]), None,
                             {1: 3.0, 2: 0.5}),
    "class-weight-soft-binary": (dense_head(1, "sigmoid"), float_sequences, soft_targets, "binary_crossentropy",
                                 dict(weighted_metrics=["mse"]), None, {0: 0.5, 1: 3.0}),  # Keras rounds y
    "loss-weights-scalar": (lstm_softmax, float_sequences, class_labels, "sparse_categorical_crossentropy",
                            dict(loss_weights=2.5, metrics=["accuracy"]), uniform, None),
    "loss-weights-list": (lstm_softmax, float_sequences, class_labels, "sparse_categorical_crossentropy",
                          dict(loss_weights=[0.5], weighted_metrics=["accuracy"]), None, {3: 2.0}),
    "loss-weights-dict": (lstm_softmax_named, float_sequences, class_labels, "sparse_categorical_crossentropy",
                          dict(loss_weights={"out": 3.0}), None, None),
    # Keras 3 rejects (B,) sample weights for (B, T) losses: the output mask alone weighs these
    "masked-steps": (embedding_lstm_sequence_softmax, padded_ids, step_labels, "sparse_categorical_crossentropy",
                     dict(BOTH_LISTS, loss_weights=1.5), None, None),
}


@pytest.mark.parametrize("case", list(WEIGHTING_CASES))
def test_metric_weighting_and_loss_weights_as_keras(case):
    """metrics unweighted, weighted_metrics by sample_weight and class_weight, both under the output mask,
    loss_weights scaling the loss: fit's History (validation included), evaluate and train_on_batch."""
    spec, inputs, targets, loss, compile_arguments, weights, class_weight = WEIGHTING_CASES[case]
    ours, theirs = build_pair(spec)
    rng = np.random.default_rng(4)
    x, y = inputs(rng), targets(rng)
    sample_weight = None if weights is None else weights(rng)
    validation = (x[::-1], y[::-1]) + (() if sample_weight is None else (sample_weight[::-1],))
    histories = []
    for model, library in ((ours, OURS), (theirs, KERAS)):
        model.compile(optimizer=library.optimizers.SGD(learning_rate=0.1), loss=loss, **compile_arguments)
        histories.append(model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                                   sample_weight=sample_weight, class_weight=class_weight,
                                   validation_data=validation).history)
    assert_training_equal(case, ours, theirs, *histories)
    assert any(key.startswith("val_") for key in histories[0])
    evaluated = [model.evaluate(x, y, sample_weight=sample_weight, batch_size=5, verbose=0, return_dict=True)
                 for model in (ours, theirs)]
    on_batch = [model.train_on_batch(x, y, sample_weight=sample_weight, class_weight=class_weight,
                                     return_dict=True) for model in (ours, theirs)]
    for what, (got, expected) in {"evaluate": evaluated, "train_on_batch": on_batch}.items():
        problems = history_problems(f"{case} {what}", {k: [v] for k, v in got.items()},
                                    {k: [float(v)] for k, v in expected.items()}, TRAIN_TOL)
        assert not problems, f"{case}: {what} differs from Keras: {problems}"
