"""lstm_native.keras.LSTM, Keras 3's LSTM on lstm_native's PyTorch operator: the same outputs and gradients as
keras.layers.LSTM (torch backend) on copied weights for every variant of its call, the float64 reference's
peephole cells, a Keras model that fits (also jit-compiled), saves and loads, stateful calls, seeded masks,
bad arguments, the model-files guide's block, and the clear error on another backend.

Keras fixes its backend at its first import, and this process may already run Keras on TensorFlow: the checks
run in one subprocess with KERAS_BACKEND=torch (tests/keras3_script.py), which prints its measurements."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import REPO

pytest.importorskip("torch")
pytest.importorskip("keras")

SCRIPT = REPO / "tests" / "keras3_script.py"
FLOAT32 = 1e-5


def _run(backend: str, *command):
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300, env=environment,
                          cwd=REPO / "tests")


@pytest.fixture(scope="module")
def measured():
    run = _run("torch", str(SCRIPT))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_outputs_and_gradients_equal_keras_lstm_on_copied_weights(measured):
    parity = measured["parity"]
    assert len(parity) == 11
    for name, errors in parity.items():
        outputs, peer_outputs, gradients, peer_gradients = errors["count"]
        assert outputs == peer_outputs and gradients == peer_gradients, (name, errors)
        assert errors["outputs"] <= FLOAT32 and errors["gradients"] <= FLOAT32, (name, errors)


def test_peephole_and_projection_cells_equal_the_float64_reference(measured):
    assert len(measured["reference"]) == 4
    for name, error in measured["reference"].items():
        assert error <= 1e-12, (name, error)


def test_a_keras_model_with_the_layer_fits_eagerly_and_jit_compiled(measured):
    fit = measured["fit"]
    eager = fit["eager_loss"]
    assert eager[-1] < 0.7 * eager[0], eager
    assert "jit_error" not in fit, fit.get("jit_error")
    assert fit["jit_compile"] and fit["jit_loss"][-1] < 0.7 * fit["jit_loss"][0], fit


def test_a_model_saved_as_keras_file_loads_with_the_layer(measured):
    fit = measured["fit"]
    assert fit["loaded_class"] == "lstm_native.keras.LSTM"
    assert fit["loaded_config_equal"]
    assert fit["loaded_prediction_error"] <= 1e-6


def test_stateful_calls_continue_and_masks_follow_the_seed(measured):
    state = measured["state"]
    assert state["stateful_error"] <= FLOAT32 and state["reset_error"] <= FLOAT32, state
    assert state["same_seed_difference"] == 0.0 and state["inference_difference"] == 0.0, state
    assert state["other_seed_difference"] > 1e-3 and state["next_call_difference"] > 1e-3, state


def test_configs_round_trip_and_regularizers_and_constraints_act(measured):
    configs = measured["configs"]
    assert configs["round_trip"] and configs["keras_arguments_kept"], configs
    assert configs["bias"] == [1.0] * 4 * 6  # bias_initializer="ones", unit_forget_bias=False: from Keras' config
    assert configs["losses"] == 2 and configs["penalty_error"] <= 1e-5, configs  # kernel l2, activity l1
    assert configs["constrained_minimum"] >= 0.0, configs


def test_bad_arguments_raise_value_errors_naming_the_argument(measured):
    messages = measured["bad_arguments"]
    for arguments, message in messages.items():
        assert message is not None, f"{arguments} was accepted"
        names = [name for name in ("activation", "recurrent_activation", "unroll", "peephole", "dropout", "use_cudnn",
                                   "zoneout_h") if f"'{name}'" in arguments]
        assert message.startswith(names[0]), (arguments, message)


def test_another_backend_raises_a_clear_error_at_construction():
    script = ("import lstm_native.keras\n"
              "try:\n    lstm_native.keras.LSTM(4)\n"
              "except RuntimeError as error:\n    print('ERROR', error)\n")
    run = _run("tensorflow", "-c", script)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ERROR lstm_native.keras.LSTM runs on Keras' torch backend only" in run.stdout
    assert "KERAS_BACKEND=torch" in run.stdout


def test_the_readme_keras_3_block_trains_and_saves(measured):
    assert measured["readme"] == {"epochs": 3, "loaded_class": "LSTM", "peephole": "diagonal"}
