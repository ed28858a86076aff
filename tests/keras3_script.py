"""Run by tests/test_keras3_layer.py with KERAS_BACKEND=torch (Keras fixes its backend at its first import, and
the test process has Keras on TensorFlow): measures lstm_native.keras.LSTM against keras.layers.LSTM and the
float64 reference, in a Keras model fitted, jit-compiled and saved, and prints the results as one JSON object
(the tests assert on them)."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import traceback

import numpy as np

assert os.environ.get("KERAS_BACKEND") == "torch", "run with KERAS_BACKEND=torch"

import keras  # noqa: E402
import torch  # noqa: E402

from reference import random_mask, random_params, reference_forward  # noqa: E402  (tests/ is sys.path[0])

import lstm_native.keras  # noqa: E402

B, T, I, H = 5, 7, 4, 6
RNG = np.random.default_rng(20240518)
X = RNG.standard_normal((B, T, I)).astype(np.float32)
RIGHT_PADDED = np.arange(T)[None, :] < np.array([7, 3, 1, 5, 6])[:, None]
ANY_MASK = random_mask(RNG, B, T)  # holes, a fully masked row, a row masked at t=0
H0, C0 = (RNG.standard_normal((B, H)).astype(np.float32) for _ in range(2))

# name: (layer arguments, call arguments)
PARITY = {
    "last": ({}, {}),
    "sequences": ({"return_sequences": True}, {}),
    "state": ({"return_state": True, "return_sequences": True}, {}),
    "backwards": ({"go_backwards": True, "return_sequences": True}, {}),
    "no_bias": ({"use_bias": False, "return_sequences": True}, {}),
    "initial_state": ({"return_state": True}, {"initial_state": [H0, C0]}),
    "right_padded": ({"return_sequences": True, "return_state": True}, {"mask": RIGHT_PADDED}),
    "any_mask": ({"return_sequences": True, "return_state": True}, {"mask": ANY_MASK}),
    "any_mask_backwards": ({"return_sequences": True, "go_backwards": True}, {"mask": ANY_MASK}),
    "any_mask_zero_output": ({"return_sequences": True, "zero_output_for_mask": True}, {"mask": ANY_MASK}),
    "any_mask_initial_state": ({"return_sequences": True}, {"mask": ANY_MASK, "initial_state": [H0, C0]}),
}


def as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def outputs_and_gradients(layer, call):
    """The layer's outputs on X and the gradients of a fixed random projection of them w.r.t. X and every
    trainable weight (in the order of layer.trainable_weights)."""
    x = torch.tensor(X, requires_grad=True)
    call = {k: (v if k == "mask" else [torch.tensor(s) for s in v])  # a numpy mask, as users pass it
            for k, v in call.items()}
    outputs = as_list(layer(x, **call))
    rng = np.random.default_rng(1)
    loss = sum((o * torch.tensor(rng.standard_normal(tuple(o.shape)).astype(np.float32))).sum() for o in outputs)
    gradients = torch.autograd.grad(loss, [x] + [w.value for w in layer.trainable_weights])
    return [o.detach().numpy() for o in outputs], [g.numpy() for g in gradients]


def parity():
    errors = {}
    for name, (arguments, call) in PARITY.items():
        peer = keras.layers.LSTM(H, **arguments)
        ours = lstm_native.keras.LSTM(H, **arguments)
        peer.build((B, T, I))
        ours.build((B, T, I))
        weights = [w + RNG.uniform(-0.3, 0.3, w.shape).astype(np.float32) for w in peer.get_weights()]
        peer.set_weights(weights)
        ours.set_weights(weights)  # Keras' weights, unchanged
        (peer_out, peer_grad), (our_out, our_grad) = (outputs_and_gradients(layer, call) for layer in (peer, ours))
        errors[name] = {"outputs": max(float(np.abs(a - b).max()) for a, b in zip(our_out, peer_out)),
                        "gradients": max(float(np.abs(a - b).max()) for a, b in zip(our_grad, peer_grad)),
                        "count": [len(our_out), len(peer_out), len(our_grad), len(peer_grad)]}
    return errors


def reference_errors():
    """Our layer in float64 with peepholes (and a projection) against tests/reference.py's cell."""
    errors = {}
    x = X.astype(np.float64)
    for peephole, source, mask, P in (("diagonal", "current", None, None), ("full", "previous", None, None),
                                      ("diagonal", "current", ANY_MASK, None), ("diagonal", "current", None, 3)):
        params = random_params(np.random.default_rng(3), I, H, peephole, P=P)
        layer = lstm_native.keras.LSTM(H, peephole=peephole, output_peephole_source=source, proj_size=P or 0,
                                       return_sequences=True, return_state=True, dtype="float64")
        layer.build((B, T, I))
        layer.set_weights([params[k] for k in ("W", "U", "b", "p", "W_hr") if k in params])
        ours = [o.detach().numpy() for o in layer(torch.tensor(x), mask=None if mask is None else torch.tensor(mask))]
        want = reference_forward(x, params["W"], params["U"], params["b"], params["p"], peephole, source, mask=mask,
                                 W_hr=params.get("W_hr"))
        errors[f"{peephole}-{source}-{'mask' if mask is not None else 'nomask'}-P{P}"] = max(
            float(np.abs(a - b).max()) for a, b in zip(ours, want))
    return errors


def model(layer, classes=3):
    network = keras.Sequential([keras.Input((T, I)), keras.layers.Masking(), layer, keras.layers.Dense(classes)])
    network.compile(optimizer=keras.optimizers.Adam(0.02),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return network


def fit_and_save():
    """Fit (eager, then jit_compile=True), save to .keras and load back."""
    keras.utils.set_random_seed(0)
    x = RNG.standard_normal((64, T, I)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64) + (x[:, -1, 1] > 1).astype(np.int64)
    result = {}
    network = model(lstm_native.keras.LSTM(8, peephole="diagonal", dropout=0.1, recurrent_dropout=0.1,
                                           zoneout_c=0.05, seed=4))
    result["eager_loss"] = network.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]
    try:
        compiled = model(lstm_native.keras.LSTM(8, peephole="diagonal"))
        compiled.compile(optimizer=keras.optimizers.Adam(0.02), jit_compile=True,
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        result["jit_loss"] = compiled.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]
        result["jit_compile"] = bool(compiled.jit_compile)
    except Exception:  # reported, and the test says what failed
        result["jit_error"] = traceback.format_exc()[-2000:]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        network.save(path)
        loaded = keras.saving.load_model(path)
    result["loaded_class"] = type(loaded.layers[1]).__module__ + "." + type(loaded.layers[1]).__name__
    result["loaded_config_equal"] = loaded.layers[1].get_config() == network.layers[1].get_config()
    result["loaded_prediction_error"] = float(np.abs(loaded.predict(x, verbose=0) - network.predict(x, verbose=0)).max())
    return result


def stateful_and_regularization():
    """Stateful halves equal one whole call; training masks depend on the seed, inference has none."""
    result = {}
    whole = lstm_native.keras.LSTM(H, return_sequences=True)
    halves = lstm_native.keras.LSTM(H, return_sequences=True, stateful=True)
    whole.build((B, T, I))
    halves.build((B, T, I))
    halves.set_weights(whole.get_weights())
    x = torch.tensor(X)
    with torch.no_grad():
        split = [halves(x[:, :3]), halves(x[:, 3:])]
        result["stateful_error"] = float((torch.cat(split, 1) - whole(x)).abs().max())
        halves.reset_state()
        result["reset_error"] = float((halves(x[:, :3]) - whole(x)[:, :3]).abs().max())

    def regularized(seed):
        layer = lstm_native.keras.LSTM(H, return_sequences=True, dropout=0.3, recurrent_dropout=0.3,
                                       weight_drop=0.3, zoneout_h=0.2, seed=seed)
        layer.build((B, T, I))
        layer.set_weights(whole.get_weights())
        return layer

    # a seed's second call must not draw the masks of the next seed's first call: both are second calls here
    first, again, other = regularized(7), regularized(7), regularized(8)
    with torch.no_grad():
        result["same_seed_difference"] = float((first(x, training=True) - again(x, training=True)).abs().max())
        result["other_seed_difference"] = float((first(x, training=True) - other(x, training=True)).abs().max())
        result["next_call_difference"] = float((first(x, training=True) - first(x, training=True)).abs().max())
        result["inference_difference"] = float((first(x) - first(x)).abs().max())
    return result


def configs_and_penalties():
    """A Keras LSTM's config builds our layer; ours round-trips; regularizers add penalties, constraints apply."""
    arguments = dict(return_sequences=True, go_backwards=True, dropout=0.1, seed=3, unit_forget_bias=False,
                     kernel_regularizer="l2", activity_regularizer="l1", recurrent_constraint="non_neg",
                     bias_initializer="ones")
    keras_config = keras.layers.LSTM(H, **arguments).get_config()
    ours = lstm_native.keras.LSTM.from_config(keras_config)
    config = ours.get_config()
    again = lstm_native.keras.LSTM.from_config(config).get_config()
    ours.build((B, T, I))
    with torch.no_grad():
        output = ours(torch.tensor(X))
        # Keras' "l2" is 0.01 * the sum of squares, its activity "l1" 0.01 * the sum of |output| over the batch size
        penalties = sorted([0.01 * float((ours.kernel.value ** 2).sum()), 0.01 * float(output.abs().sum()) / B])
        losses = sorted(float(loss) for loss in ours.losses)
    network = model(lstm_native.keras.LSTM(H, recurrent_constraint="non_neg"))
    network.fit(X, np.zeros(B, np.int64), epochs=1, verbose=0)
    return {"round_trip": again == config, "keras_arguments_kept": all(config[k] == keras_config[k] for k in arguments),
            "bias": ours.get_weights()[2].tolist(), "losses": len(losses),
            "penalty_error": max(abs(a - b) / b for a, b in zip(losses, penalties)),
            "constrained_minimum": float(network.layers[1].recurrent_kernel.value.detach().min())}


def bad_arguments():
    messages = {}
    for arguments in ({"activation": "relu"}, {"recurrent_activation": "hard_sigmoid"}, {"unroll": True},
                      {"peephole": "diag"}, {"dropout": 1.0}, {"use_cudnn": True}, {"proj_size": 2, "zoneout_h": 0.1}):
        try:
            lstm_native.keras.LSTM(4, **arguments)
            messages[str(arguments)] = None
        except ValueError as error:
            messages[str(arguments)] = str(error)
    return messages


def readme_block():
    """The model-files guide's "From Keras 3" block, run as written in a temporary folder (it saves a file)."""
    readme = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "guides",
                               "model-files.md")).read()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from lstm_native.keras import" in b)
    namespace = {}
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            exec(compile(block, "docs/guides/model-files.md", "exec"), namespace)
            loaded = keras.saving.load_model("model.keras")
        finally:
            os.chdir(here)
    return {"epochs": len(namespace["model"].history.history["loss"]),
            "loaded_class": type(loaded.layers[1]).__name__, "peephole": loaded.layers[1].peephole}


def main():
    result = {}
    for name, measure in (("parity", parity), ("reference", reference_errors), ("fit", fit_and_save),
                          ("state", stateful_and_regularization), ("configs", configs_and_penalties), ("bad_arguments", bad_arguments),
                          ("readme", readme_block)):
        start = time.perf_counter()
        result[name] = measure()
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
