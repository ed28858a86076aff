"""The optimizers and learning rate schedules against Keras 3's, the oracle: same variables, same gradients."""

import re
import warnings

import keras
import numpy as np
import pytest

from lstm_native import optimizers
from lstm_native.optimizers import schedules
from lstm_native.variables import Variable

SHAPES = [(4, 8), (8,), (3, 2, 5)]
NAMES = ["kernel", "bias", "peephole"]
STEPS = 6


def _problem(rng, dtype=np.float32, scale=3.0):
    """Initial values and STEPS rounds of gradients (large enough for every clip option to bite)."""
    init = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [[(scale * rng.standard_normal(shape)).astype(dtype) for shape in SHAPES] for _ in range(STEPS)]
    return init, grads


def _ours(init):
    return [Variable(name, value.copy(), path=f"layer/{name}") for name, value in zip(NAMES, init)]


def _theirs(init):
    return [keras.Variable(value.copy(), name=name, dtype=value.dtype.name) for name, value in zip(NAMES, init)]


def _keras_state(optimizer):
    """Keras' optimizer variables under our names ("iteration" -> "iterations", "kernel_momentum" ->
    "layer/kernel/momentum")."""
    state = {}
    for variable in optimizer.variables:
        if variable.name == "iteration":
            state["iterations"] = variable.numpy()
        elif variable.name == "learning_rate":
            state["learning_rate"] = variable.numpy()
        else:
            var_name, slot = next((n, variable.name[len(n) + 1:]) for n in NAMES if variable.name.startswith(n + "_"))
            state[f"layer/{var_name}/{slot}"] = variable.numpy()
    return state


def _assert_same_run(make, rng, dtype=np.float32, tol=1e-6):
    """Runs ``make(optimizers)`` and ``make(keras.optimizers)`` STEPS times on the same problem and compares the
    variables, the optimizer state and the learning rate after every step."""
    init, grads = _problem(rng, dtype)
    ours, theirs = _ours(init), _theirs(init)
    our_optimizer, keras_optimizer = make(optimizers), make(keras.optimizers)
    for step_grads in grads:
        for variable, grad in zip(ours, step_grads):
            variable.grad = grad
        our_optimizer.apply(ours)
        keras_optimizer.apply_gradients(zip(step_grads, theirs))
        for our, their in zip(ours, theirs):
            assert our.value.dtype == dtype
            np.testing.assert_allclose(our.value, their.numpy(), rtol=0, atol=tol)
        expected_state = _keras_state(keras_optimizer)
        state = our_optimizer.variables()
        assert sorted(state) == sorted(expected_state)
        for key, value in state.items():
            assert value.dtype == expected_state[key].dtype, key
            np.testing.assert_allclose(value, expected_state[key], rtol=0, atol=tol, err_msg=key)
        assert our_optimizer.learning_rate == float(keras_optimizer.learning_rate)


CASES = {
    "sgd": lambda m: m.SGD(),
    "sgd-momentum": lambda m: m.SGD(learning_rate=0.05, momentum=0.9),
    "sgd-nesterov": lambda m: m.SGD(momentum=0.5, nesterov=True),
    "adam": lambda m: m.Adam(),
    "adam-args": lambda m: m.Adam(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-3),
    "adam-amsgrad": lambda m: m.Adam(amsgrad=True),
    "adamw": lambda m: m.AdamW(),
    "adamw-args": lambda m: m.AdamW(learning_rate=0.01, weight_decay=0.1, amsgrad=True),
    "rmsprop": lambda m: m.RMSprop(),
    "rmsprop-momentum": lambda m: m.RMSprop(momentum=0.7),
    "rmsprop-centered": lambda m: m.RMSprop(rho=0.8, centered=True, epsilon=1e-4),
    "rmsprop-centered-momentum": lambda m: m.RMSprop(momentum=0.3, centered=True),
    "adagrad": lambda m: m.Adagrad(),
    "adagrad-args": lambda m: m.Adagrad(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-3),
    "sgd-clipnorm": lambda m: m.SGD(clipnorm=0.5),
    "adam-clipnorm": lambda m: m.Adam(clipnorm=1.0),
    "sgd-clipvalue": lambda m: m.SGD(momentum=0.9, clipvalue=0.25),
    "rmsprop-clipvalue": lambda m: m.RMSprop(clipvalue=1.0),
    "sgd-global-clipnorm": lambda m: m.SGD(global_clipnorm=2.0),
    "adagrad-global-clipnorm": lambda m: m.Adagrad(global_clipnorm=0.7),
    "sgd-weight-decay": lambda m: m.SGD(learning_rate=0.1, weight_decay=0.05),
    "rmsprop-weight-decay": lambda m: m.RMSprop(weight_decay=0.2, momentum=0.5),
    "adam-exponential-decay": lambda m: m.Adam(
        learning_rate=m.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)),
    "sgd-cosine-warmup": lambda m: m.SGD(
        learning_rate=m.schedules.CosineDecay(0.01, decay_steps=3, warmup_target=0.1, warmup_steps=2),
        momentum=0.9, weight_decay=0.01),
    "adamw-piecewise": lambda m: m.AdamW(
        learning_rate=m.schedules.PiecewiseConstantDecay([1, 3], [0.01, 0.005, 0.001])),
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_matches_keras_float32(make, rng):
    _assert_same_run(make, rng)


@pytest.mark.parametrize("name", ["sgd-nesterov", "adamw", "rmsprop-centered-momentum", "adagrad"])
def test_matches_keras_float64(name, rng):
    """Slots are float64 for float64 variables, and Keras' float32 learning rate and hyperparameter casts are
    reproduced."""
    _assert_same_run(CASES[name], rng, dtype=np.float64, tol=1e-12)


def test_exclude_from_weight_decay_matches_keras(rng):
    init, grads = _problem(rng)
    ours, theirs = _ours(init), _theirs(init)
    our_optimizer, keras_optimizer = optimizers.AdamW(weight_decay=0.5), keras.optimizers.AdamW(weight_decay=0.5)
    our_optimizer.exclude_from_weight_decay(var_list=[ours[2]], var_names=["bias"])
    keras_optimizer.exclude_from_weight_decay(var_list=[theirs[2]], var_names=["bias"])
    for step_grads in grads:
        for variable, grad in zip(ours, step_grads):
            variable.grad = grad
        our_optimizer.apply(ours)
        keras_optimizer.apply_gradients(zip(step_grads, theirs))
    for our, their in zip(ours, theirs):
        np.testing.assert_allclose(our.value, their.numpy(), rtol=0, atol=1e-6)
    # Without the exclusions the kernel alone would match.
    plain = _ours(init)
    plain_optimizer = optimizers.AdamW(weight_decay=0.5)
    for step_grads in grads:
        for variable, grad in zip(plain, step_grads):
            variable.grad = grad
        plain_optimizer.apply(plain)
    assert np.array_equal(plain[0].value, ours[0].value)
    assert not np.allclose(plain[1].value, ours[1].value)
    assert not np.allclose(plain[2].value, ours[2].value)


def test_missing_gradients_and_frozen_variables_match_keras(rng):
    """A variable without a gradient (or not trainable) is left alone, its slots untouched, as Keras leaves a
    variable paired with a None gradient."""
    init, grads = _problem(rng)
    ours, theirs = _ours(init), _theirs(init)
    ours[2].trainable = False
    ours[2].grad = grads[0][2]
    our_optimizer, keras_optimizer = optimizers.Adam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    for step, step_grads in enumerate(grads):
        ours[0].grad = step_grads[0]
        ours[1].grad = None if step % 2 else step_grads[1]
        our_optimizer.apply(ours)
        pairs = [(step_grads[0], theirs[0]), (None if step % 2 else step_grads[1], theirs[1]), (None, theirs[2])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Keras warns about the missing gradients
            keras_optimizer.apply_gradients(pairs)
    for our, their in zip(ours, theirs):
        np.testing.assert_allclose(our.value, their.numpy(), rtol=0, atol=1e-6)
    assert np.array_equal(ours[2].value, init[2])
    assert our_optimizer.iterations == STEPS
    assert not any(key.startswith("layer/peephole") for key in our_optimizer.variables())


def test_apply_gradients_pairs(rng):
    init, grads = _problem(rng)
    by_apply, by_pairs = _ours(init), _ours(init)
    first, second = optimizers.RMSprop(momentum=0.5), optimizers.RMSprop(momentum=0.5)
    for step_grads in grads:
        for variable, grad in zip(by_apply, step_grads):
            variable.grad = grad
        first.apply(by_apply)
        assert second.apply_gradients(zip(step_grads, by_pairs)) == second.iterations
    for a, b in zip(by_apply, by_pairs):
        assert np.array_equal(a.value, b.value)
    with pytest.warns(UserWarning, match="layer/bias"):
        second.apply_gradients([(grads[0][0], by_pairs[0]), (None, by_pairs[1])])
    assert second.iterations == STEPS + 1
    with pytest.raises(ValueError, match="No gradients"):
        second.apply_gradients([(None, by_pairs[0])])
    assert second.apply_gradients([]) == STEPS + 1


def test_apply_errors_change_nothing(rng):
    init, grads = _problem(rng)
    variables = _ours(init)
    optimizer = optimizers.Adam()
    optimizer.apply([])  # nothing trainable: a no-op
    assert optimizer.iterations == 0
    with pytest.raises(ValueError, match="No gradients"):
        optimizer.apply(variables)
    variables[0].grad = grads[0][0]
    variables[1].grad = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="gradient shape"):
        optimizer.apply(variables)
    assert optimizer.iterations == 0 and optimizer.variables().keys() == {"iterations", "learning_rate"}
    assert np.array_equal(variables[0].value, init[0])
    impostor = Variable("kernel", init[0].copy(), path="layer/kernel")
    impostor.grad = grads[0][0]
    optimizer.apply(variables[:1])
    with pytest.raises(ValueError, match="paths must be unique"):
        optimizer.apply([impostor])


@pytest.mark.parametrize("name", ["sgd-momentum", "adam-amsgrad", "rmsprop-centered-momentum", "adagrad-args",
                                  "adam-exponential-decay"])
def test_state_round_trip_resumes_exactly(name, rng):
    """Training 3 steps, saving the state, and resuming in a fresh optimizer (on copies of the variables) gives
    bitwise what one optimizer gives over all the steps."""
    init, grads = _problem(rng)
    straight, resumed = _ours(init), None
    optimizer = CASES[name](optimizers)
    for step, step_grads in enumerate(grads):
        if step == 3:
            state = optimizer.variables()
            resumed = [Variable(v.name, v.value.copy(), path=v.path) for v in straight]
            fresh = CASES[name](optimizers)
            fresh.set_state(state)
            assert fresh.iterations == 3
        for variable, grad in zip(straight, step_grads):
            variable.grad = grad
        optimizer.apply(straight)
        if resumed is not None:
            for variable, grad in zip(resumed, step_grads):
                variable.grad = grad
            fresh.apply(resumed)
    for a, b in zip(straight, resumed):
        assert np.array_equal(a.value, b.value)
    final, again = optimizer.variables(), fresh.variables()
    assert final.keys() == again.keys()
    assert all(np.array_equal(final[k], again[k]) for k in final)


def test_state_keeps_the_learning_rate_and_is_a_copy(rng):
    init, grads = _problem(rng)
    variables = _ours(init)
    optimizer = optimizers.SGD(momentum=0.9)
    for variable, grad in zip(variables, grads[0]):
        variable.grad = grad
    optimizer.apply(variables)
    optimizer.learning_rate = 0.5
    state = optimizer.variables()
    state["layer/kernel/momentum"][...] = 7.0
    assert not np.any(optimizer.variables()["layer/kernel/momentum"] == 7.0)
    other = optimizers.SGD(momentum=0.9)
    other.set_state(state)
    assert other.learning_rate == 0.5 and other.iterations == 1
    other.apply(variables)  # binds the restored slots to the variables
    assert np.array_equal(other.variables()["layer/bias/momentum"],
                          0.9 * state["layer/bias/momentum"] - 0.5 * grads[0][1])


@pytest.mark.parametrize("change, match", [
    (lambda s: s.pop("iterations"), "iterations"),
    (lambda s: s.update({"layer/kernel/accumulator": np.zeros((4, 8), np.float32)}), "Unknown optimizer state"),
    (lambda s: s.update({"momentum": np.zeros(3, np.float32)}), "Unknown optimizer state"),
    (lambda s: s.pop("layer/kernel/velocity_hat"), "expected"),
    (lambda s: s.update({"layer/bias/momentum": np.zeros(9, np.float32)}), "shape"),
], ids=["no-iterations", "unknown-slot", "no-path", "missing-slot", "wrong-shape"])
def test_set_state_rejects_bad_states(change, match, rng):
    init, grads = _problem(rng)
    variables = _ours(init)
    optimizer = optimizers.Adam(amsgrad=True)
    for variable, grad in zip(variables, grads[0]):
        variable.grad = grad
    optimizer.apply(variables)
    before = optimizer.variables()
    state = optimizer.variables()
    change(state)
    with pytest.raises(ValueError, match=match):
        optimizer.set_state(state)
    after = optimizer.variables()
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def test_restored_state_must_fit_the_variable(rng):
    init, grads = _problem(rng)
    optimizer = optimizers.SGD(momentum=0.5)
    optimizer.set_state({"iterations": np.array(2), "layer/bias/momentum": np.zeros(5, np.float32)})
    variables = _ours(init)
    variables[1].grad = grads[0][1]
    with pytest.raises(ValueError, match="shape"):
        optimizer.apply(variables)


def test_schedule_state_has_no_learning_rate():
    optimizer = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    assert "learning_rate" not in optimizer.variables()
    with pytest.raises(ValueError, match="schedule"):
        optimizer.set_state({"iterations": np.array(0), "learning_rate": np.array(0.1, np.float32)})


def test_learning_rate_property_and_setter(rng):
    optimizer, reference = optimizers.Adam(learning_rate=0.3), keras.optimizers.Adam(learning_rate=0.3)
    assert optimizer.learning_rate == float(reference.learning_rate) == float(np.float32(0.3))
    optimizer.learning_rate = 0.125
    assert optimizer.learning_rate == 0.125
    schedule = schedules.PiecewiseConstantDecay([0], [1.0, 0.5])
    optimizer.learning_rate = schedule
    assert optimizer.learning_rate == 1.0
    variable = Variable("w", np.ones(2, np.float32))
    variable.grad = np.ones(2, np.float32)
    optimizer.apply([variable])
    assert optimizer.learning_rate == 0.5
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate = 0.1
    for bad in ("0.1", None, True):
        with pytest.raises(ValueError, match="learning_rate"):
            optimizers.SGD(learning_rate=bad)


@pytest.mark.parametrize("clips", [
    {"clipnorm": 1.0, "clipvalue": 1.0},
    {"clipnorm": 1.0, "global_clipnorm": 1.0},
    {"clipvalue": 1.0, "global_clipnorm": 1.0},
])
def test_at_most_one_clip_option(clips):
    with pytest.raises(ValueError, match="Only one of"):
        keras.optimizers.SGD(**clips)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(**clips)


def test_argument_checks_as_keras():
    for bad in (-0.1, 1.5, "0.9"):
        with pytest.raises(ValueError, match="momentum"):
            optimizers.SGD(momentum=bad)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)


@pytest.mark.parametrize("identifier", ["sgd", "Adam", "ADAMW", "rmsprop", "AdaGrad"])
def test_get_by_name_has_keras_defaults(identifier):
    ours, theirs = optimizers.get(identifier), keras.optimizers.get(identifier)
    assert type(ours).__name__ == type(theirs).__name__
    config, expected = ours.get_config(), theirs.get_config()
    assert config.pop("name") == re.sub(r"_\d+$", "", expected["name"])  # Keras makes names unique
    assert config == {key: expected[key] for key in config}


def test_get_other_identifiers():
    optimizer = optimizers.RMSprop(rho=0.5)
    assert optimizers.get(optimizer) is optimizer
    assert optimizers.get(None) is None
    rebuilt = optimizers.get(optimizers.serialize(optimizer))
    assert type(rebuilt) is optimizers.RMSprop and rebuilt.rho == 0.5
    for bad in ("nadam", "", 3, {"class_name": "Lion", "config": {}}):
        with pytest.raises(ValueError, match="Could not interpret"):
            optimizers.get(bad)


@pytest.mark.parametrize("make", [CASES["adamw-args"], CASES["sgd-cosine-warmup"], CASES["rmsprop-clipvalue"]],
                         ids=["adamw", "sgd-schedule", "rmsprop"])
def test_config_round_trip_and_keras_keys(make):
    optimizer = make(optimizers)
    config = optimizer.get_config()
    rebuilt = type(optimizer).from_config(config)
    assert rebuilt.get_config() == config
    keras_config = make(keras.optimizers).get_config()
    assert set(config) <= set(keras_config)
    for key in set(config) - {"name", "learning_rate"}:
        assert config[key] == keras_config[key], key
    if isinstance(config["learning_rate"], dict):
        assert config["learning_rate"]["config"] == keras_config["learning_rate"]["config"]
        assert type(rebuilt._learning_rate) is type(optimizer._learning_rate)
    else:
        assert config["learning_rate"] == keras_config["learning_rate"]


def test_optimizers_build_from_keras_config():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=3, decay_rate=0.7, staircase=True)
    config = keras.optimizers.Adam(learning_rate=schedule).get_config()
    ours = optimizers.Adam.from_config({k: config[k] for k in optimizers.Adam().get_config()})
    assert isinstance(ours._learning_rate, schedules.ExponentialDecay)
    assert ours.learning_rate == float(keras.optimizers.Adam.from_config(config).learning_rate)


# --------------------------------------------------------------------------------------------- schedules

SCHEDULES = {
    "exponential": lambda s: s.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.9),
    "exponential-staircase": lambda s: s.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5, staircase=True),
    "cosine": lambda s: s.CosineDecay(0.1, decay_steps=50),
    "cosine-alpha": lambda s: s.CosineDecay(1.0, decay_steps=33, alpha=0.1),
    "cosine-warmup": lambda s: s.CosineDecay(0.0, decay_steps=40, warmup_target=0.2, warmup_steps=15),
    "cosine-warmup-alpha": lambda s: s.CosineDecay(0.01, 20, 0.05, "c", 0.1, 10),
    "cosine-target-no-warmup": lambda s: s.CosineDecay(0.3, decay_steps=10, warmup_target=0.5),
    "piecewise": lambda s: s.PiecewiseConstantDecay([10, 20, 45], [0.1, 0.05, 0.02, 0.001]),
    "piecewise-one-boundary": lambda s: s.PiecewiseConstantDecay([0], [1.0, 0.5]),
}


@pytest.mark.parametrize("make", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_schedule_matches_keras(make):
    ours, theirs = make(schedules), make(keras.optimizers.schedules)
    steps = list(range(0, 80)) + [150, 1000, 123456]
    got = np.array([ours(step) for step in steps])
    expected = np.array([float(theirs(step)) for step in steps])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    assert ours.get_config() == theirs.get_config()
    rebuilt = schedules.deserialize(schedules.serialize(ours))
    assert type(rebuilt) is type(ours) and rebuilt.get_config() == ours.get_config()
    assert [rebuilt(step) for step in steps] == list(got)


def test_schedule_argument_checks():
    for make in (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), lambda: schedules.CosineDecay(0.1, -1)):
        with pytest.raises(ValueError, match="decay_steps"):
            make()
    with pytest.raises(ValueError, match="length of boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize({"class_name": "PolynomialDecay", "config": {}})


def test_custom_schedule():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.5 ** step

    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)
    with pytest.raises(NotImplementedError):
        Halving().get_config()
    variable = Variable("w", np.zeros(1, np.float32))
    variable.grad = np.ones(1, np.float32)
    optimizer = optimizers.SGD(learning_rate=Halving())
    for _ in range(3):
        optimizer.apply([variable])
    assert variable.value[0] == -(1 + 0.5 + 0.25)
