"""lstm_native.ops keeps spent training workspaces for the next training call: reuse changes no result, the
pool stays bounded, and the native module checks a workspace it is handed."""

import numpy as np
import pytest

from lstm_native import _backend, ops
from reference import random_inputs, random_params

B, T, I, H = 4, 6, 3, 5


def step(params, x, dy, **rates):
    out = ops.lstm_forward(x, **params, training=True, seed=3, **rates)
    return (out.y, *ops.lstm_backward(out.context, dy))


@pytest.mark.parametrize("rates", [{}, dict(zoneout_h=0.2, recurrent_dropout=0.3)], ids=["plain", "regularized"])
def test_a_reused_workspace_gives_the_results_of_a_fresh_one(rng, rates):
    x, _, _ = random_inputs(rng, B, T, I, H)
    params = random_params(rng, I, H, "diagonal")
    dy = rng.standard_normal((B, T, H))
    ops.release_workspaces()
    fresh = step(params, x, dy, **rates)
    assert len(ops._SPARE_WORKSPACES) == 1
    spare = ops._SPARE_WORKSPACES[0]
    spare[:] = np.nan  # whatever a spent workspace holds must not leak into the next call
    reused = step(params, x, dy, **rates)
    assert ops._SPARE_WORKSPACES[0] is spare
    for a, b in zip(fresh, reused):
        np.testing.assert_array_equal(a, b)


def test_the_pool_is_bounded_and_can_be_emptied(rng):
    ops.release_workspaces()
    contexts = []
    for time in range(1, 8):  # seven forward passes in flight, then their backwards
        x, _, _ = random_inputs(rng, B, time, I, H)
        contexts.append(ops.lstm_forward(x, **random_params(rng, I, H, None), peephole=None, training=True).context)
    for context in contexts:
        ops.lstm_backward(context)
    assert len(ops._SPARE_WORKSPACES) == ops._MAX_SPARE_WORKSPACES
    ops.release_workspaces()
    assert ops._SPARE_WORKSPACES == []


def test_the_core_checks_a_given_workspace(rng):
    x, _, _ = random_inputs(rng, B, T, I, H)
    params = random_params(rng, I, H, None)
    need = _backend.core.training_workspace_size(B, T, I, H)
    call = dict(x=x, W=params["W"], U=params["U"], peephole="none", training=True)
    with pytest.raises(ValueError, match=f"workspace: expected a writable 1-d array of at least {need}"):
        _backend.core.forward(**call, workspace=np.empty(need - 1))
    read_only = np.empty(need)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="workspace"):
        _backend.core.forward(**call, workspace=read_only)
    with pytest.raises(TypeError, match="workspace: expected dtype float64"):
        _backend.core.forward(**call, workspace=np.empty(need, np.float32))
    given = np.empty(need + 10)
    assert _backend.core.forward(**call, workspace=given)[3] is given
