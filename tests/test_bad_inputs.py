"""Bad inputs to lstm_native.ops (lstm_forward, lstm_backward, lstm_step) and to lstm_native._core directly.

Every bad input must raise ValueError (a bad shape or value) or TypeError (a bad dtype or type) whose message
names the offending argument; pybind11's generic "incompatible function arguments" message, which lists
every argument, does not count as naming one. Inputs that are odd but valid (read-only, non-contiguous
through ops, NaN) must work. The whole battery runs once more in a subprocess so that a hard crash
(a segfault) shows up as a failing test instead of killing pytest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_native import _core
from lstm_native.ops import ForwardContext, lstm_backward, lstm_forward, lstm_step

B, T, I, H = 2, 3, 7, 5  # all different, so that a swapped or mismatched size cannot go unnoticed
SUBPROCESS_ENV = "LSTM_NATIVE_BAD_INPUTS_SUBPROCESS"


def test_battery_survives_in_a_subprocess():
    """Runs every other test of this file in a fresh interpreter: a segfault is a failure here, not a crash."""
    if os.environ.get(SUBPROCESS_ENV):
        pytest.skip("already inside the subprocess")
    code = (
        "import sys, pytest; "
        f"sys.exit(pytest.main([{str(Path(__file__))!r}, '-q', '-p', 'no:cacheprovider', "
        "'-k', 'not test_battery_survives_in_a_subprocess']))"
    )
    env = dict(os.environ, **{SUBPROCESS_ENV: "1"})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, (
        f"the bad-input battery exited with {result.returncode} (negative: killed by signal {-result.returncode})"
        f"\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


# ----------------------------------------------------------------------------------------------- helpers


def raises_naming(exception, name):
    """pytest.raises(exception) whose message names `name` (a regex of argument names) as a whole word."""
    return pytest.raises(exception, match=rf"(?<![\w.])({name})(?![\w])")


def check_not_generic(info):
    message = str(info.value)
    assert "incompatible function arguments" not in message, f"generic pybind11 message: {message[:300]}"


def make_problem(rng, dtype=np.float64, peephole="diagonal"):
    """A valid problem: ops-style (peephole None | "diagonal" | "full", mask bool or None)."""
    def normal(*shape):
        return (0.5 * rng.standard_normal(shape)).astype(dtype)

    p_shape = {"diagonal": (3, H), "full": (3, H, H), None: None}[peephole]
    return dict(
        x=normal(B, T, I), W=normal(I, 4 * H), U=normal(H, 4 * H), b=normal(4 * H),
        p=None if p_shape is None else normal(*p_shape), h0=normal(B, H), c0=normal(B, H),
        mask=np.array([[True, True, False], [True, False, True]]), peephole=peephole,
        output_peephole_source="current",
    )


def ops_forward(problem, **extra):
    P = dict(problem, **extra)
    return lstm_forward(P["x"], P["W"], P["U"], P["b"], P["p"], peephole=P["peephole"],
                        output_peephole_source=P["output_peephole_source"], h0=P["h0"], c0=P["c0"],
                        mask=P["mask"], lengths=P.get("lengths"), zero_output_for_mask=P.get("zero", False),
                        training=P.get("training", False))


def core_name(peephole):
    return "none" if peephole is None else peephole


def core_mask(mask):
    """ops hands the core a uint8 mask; anything that is not a bool array is passed on as it is."""
    if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
        return np.ascontiguousarray(mask, dtype=np.uint8)
    return mask


def core_forward(problem, **extra):
    P = dict(problem, **extra)
    return _core.forward(x=P["x"], W=P["W"], U=P["U"], b=P["b"], p=P["p"], h0=P["h0"], c0=P["c0"],
                         mask=core_mask(P["mask"]), peephole=core_name(P["peephole"]),
                         output_peephole_source=P["output_peephole_source"],
                         zero_output_for_mask=P.get("zero", False), training=P.get("training", False))


FORWARDS = {"ops": ops_forward, "core": core_forward}


def change(**edits):
    """A modifier of a problem: each edit is a value or a function of the problem giving the new value."""
    def modify(problem):
        for key, edit in edits.items():
            problem[key] = edit(problem) if callable(edit) else edit
    return modify


def as_dtype(dtype, *keys):
    return change(**{key: (lambda P, key=key: P[key].astype(dtype)) for key in keys})


def as_other_float(key):
    """`key` in the other float dtype than the rest of the problem (float32 <-> float64)."""
    return change(**{key: lambda P: P[key].astype(np.float32 if P[key].dtype == np.float64 else np.float64)})


ALL_FLOATS = ("x", "W", "U", "b", "p", "h0", "c0")


def strided(array):
    """The same values as `array`, in a view that is not C-contiguous (every other element of a larger one)."""
    big = np.empty(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
    big[..., ::2] = array
    view = big[..., ::2]
    assert not view.flags.c_contiguous
    return view


def fortran(array):
    view = np.asfortranarray(array)
    assert not view.flags.c_contiguous
    return view


def broadcast_rows(array):
    """A (rows, cols) array whose rows are all array[0], with stride 0: read-only and not contiguous."""
    return np.broadcast_to(array[0], array.shape)


def unaligned(array):
    """The same values, C-contiguous but at a misaligned address."""
    raw = np.empty(array.nbytes + 1, np.uint8)
    view = np.frombuffer(raw.data, dtype=array.dtype, count=array.size, offset=1).reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned
    return view


def read_only(array):
    if array is None:
        return None
    array = array.copy()
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------------------------- forward

# (id, modifier, exception, argument-name regex, APIs). Sizes: B=2, T=3, I=7, H=5, peephole="diagonal".
BOTH = ("ops", "core")
FORWARD_CASES = [
    # wrong rank
    ("x_rank2", change(x=lambda P: np.ascontiguousarray(P["x"][:, 0])), ValueError, "x", BOTH),
    ("x_rank4", change(x=lambda P: P["x"][..., None]), ValueError, "x", BOTH),
    ("x_rank0", change(x=lambda P: np.array(P["x"][0, 0, 0])), ValueError, "x", BOTH),
    ("W_rank1", change(W=lambda P: P["W"].ravel()), ValueError, "W", BOTH),
    ("W_rank3", change(W=lambda P: P["W"][None]), ValueError, "W", BOTH),
    ("U_rank1", change(U=lambda P: P["U"].ravel()), ValueError, "U", BOTH),
    ("b_rank2", change(b=lambda P: P["b"][None]), ValueError, "b", BOTH),
    ("p_rank1", change(p=lambda P: P["p"].ravel()), ValueError, "p", BOTH),
    ("h0_rank1", change(h0=lambda P: P["h0"][0]), ValueError, "h0", BOTH),
    ("h0_rank3_torch_style", change(h0=lambda P: P["h0"][None]), ValueError, "h0", BOTH),
    ("c0_rank3_torch_style", change(c0=lambda P: P["c0"][None]), ValueError, "c0", BOTH),
    ("mask_rank1", change(mask=lambda P: P["mask"][0]), ValueError, "mask", BOTH),
    ("mask_rank3", change(mask=lambda P: P["mask"][..., None]), ValueError, "mask", BOTH),
    # wrong shape, mismatched sizes
    ("x_input_size", change(x=lambda P: np.zeros((B, T, I + 1), P["W"].dtype)), ValueError, "x|W", BOTH),
    ("W_input_size", change(W=lambda P: np.zeros((I + 1, 4 * H), P["W"].dtype)), ValueError, "x|W", BOTH),
    ("W_cols_not_4H", change(W=lambda P: np.ascontiguousarray(P["W"][:, :-1])), ValueError, "W|U", BOTH),
    ("W_cols_4H_plus_4", change(W=lambda P: np.zeros((I, 4 * H + 4), P["W"].dtype)), ValueError, "W|U", BOTH),
    ("W_transposed", change(W=lambda P: np.ascontiguousarray(P["W"].T)), ValueError, "x|W", BOTH),
    ("U_rows", change(U=lambda P: np.zeros((H + 1, 4 * H), P["W"].dtype)), ValueError, "U", BOTH),
    ("U_cols", change(U=lambda P: np.zeros((H, 4 * H + 4), P["W"].dtype)), ValueError, "W|U", BOTH),
    ("U_square", change(U=lambda P: np.zeros((H, H), P["W"].dtype)), ValueError, "U", BOTH),
    ("b_length", change(b=lambda P: np.zeros(4 * H + 1, P["W"].dtype)), ValueError, "b", BOTH),
    ("b_torch_pair", change(b=lambda P: np.zeros(8 * H, P["W"].dtype)), ValueError, "b", BOTH),
    ("b_H", change(b=lambda P: np.zeros(H, P["W"].dtype)), ValueError, "b", BOTH),
    ("p_two_gates", change(p=lambda P: P["p"][:2]), ValueError, "p", BOTH),
    ("p_four_gates", change(p=lambda P: np.zeros((4, H), P["W"].dtype)), ValueError, "p", BOTH),
    ("p_hidden_size", change(p=lambda P: np.zeros((3, H + 1), P["W"].dtype)), ValueError, "p", BOTH),
    ("p_transposed", change(p=lambda P: np.ascontiguousarray(P["p"].T)), ValueError, "p", BOTH),
    ("p_full_shape_for_diagonal", change(p=lambda P: np.zeros((3, H, H), P["W"].dtype)), ValueError, "p", BOTH),
    ("p_diagonal_shape_for_full", change(peephole="full"), ValueError, "p", BOTH),
    ("p_full_not_square", change(peephole="full", p=lambda P: np.zeros((3, H, H + 1), P["W"].dtype)),
     ValueError, "p", BOTH),
    ("h0_batch", change(h0=lambda P: np.zeros((B + 1, H), P["W"].dtype)), ValueError, "h0", BOTH),
    ("h0_hidden", change(h0=lambda P: np.zeros((B, H + 1), P["W"].dtype)), ValueError, "h0", BOTH),
    ("h0_transposed", change(h0=lambda P: np.ascontiguousarray(P["h0"].T)), ValueError, "h0", BOTH),
    ("c0_batch", change(c0=lambda P: np.zeros((B + 1, H), P["W"].dtype)), ValueError, "c0", BOTH),
    ("c0_hidden", change(c0=lambda P: np.zeros((B, H - 1), P["W"].dtype)), ValueError, "c0", BOTH),
    ("mask_time", change(mask=lambda P: np.ones((B, T + 1), bool)), ValueError, "mask", BOTH),
    ("mask_batch", change(mask=lambda P: np.ones((B + 1, T), bool)), ValueError, "mask", BOTH),
    ("mask_transposed", change(mask=lambda P: np.ascontiguousarray(P["mask"].T)), ValueError, "mask", BOTH),
    # empty sizes
    ("B_zero", change(x=lambda P: P["x"][:0], h0=None, c0=None, mask=None), ValueError, "x", BOTH),
    ("T_zero", change(x=lambda P: P["x"][:, :0], mask=None), ValueError, "x", BOTH),
    ("I_zero", change(x=lambda P: P["x"][:, :, :0], W=lambda P: P["W"][:0]), ValueError, "x|W", BOTH),
    ("H_zero", change(W=lambda P: P["W"][:, :0], U=lambda P: P["U"][:0, :0], b=lambda P: P["b"][:0],
                      p=lambda P: P["p"][:, :0], h0=lambda P: P["h0"][:, :0], c0=lambda P: P["c0"][:, :0]),
     ValueError, "W|U", BOTH),
    # wrong dtype
    ("x_int64", as_dtype(np.int64, "x"), TypeError, "x", BOTH),
    ("W_int32", as_dtype(np.int32, "W"), TypeError, "W", BOTH),
    ("U_int64", as_dtype(np.int64, "U"), TypeError, "U", BOTH),
    ("x_float16", as_dtype(np.float16, "x"), TypeError, "x", BOTH),
    ("W_float16", as_dtype(np.float16, "W"), TypeError, "W", BOTH),
    ("all_float16", as_dtype(np.float16, *ALL_FLOATS), TypeError, "x|W", BOTH),
    ("all_complex128", as_dtype(np.complex128, *ALL_FLOATS), TypeError, "x|W", BOTH),
    ("all_longdouble", as_dtype(np.longdouble, *ALL_FLOATS), TypeError, "x|W", BOTH),
    *[(f"{key}_other_float", as_other_float(key), TypeError, key, BOTH) for key in ALL_FLOATS if key != "W"],
    # W sets the dtype in ops, so there U (the first other array checked) is the one out of line
    ("W_other_float", as_other_float("W"), TypeError, "W|x|U|b|p|h0|c0", BOTH),
    ("x_bool", as_dtype(np.bool_, "x"), TypeError, "x", BOTH),
    ("x_object", change(x=lambda P: P["x"].astype(object)), TypeError, "x", BOTH),
    ("x_none", change(x=None), TypeError, "x", BOTH),
    ("x_string", change(x="x"), TypeError, "x", BOTH),
    ("U_none", change(U=None), TypeError, "U", BOTH),
    # the native module never copies: arrays that are not C-contiguous are an error there
    ("x_strided", change(x=lambda P: strided(P["x"])), (ValueError, TypeError), "x", ("core",)),
    ("W_fortran", change(W=lambda P: fortran(P["W"])), (ValueError, TypeError), "W", ("core",)),
    ("U_fortran", change(U=lambda P: fortran(P["U"])), (ValueError, TypeError), "U", ("core",)),
    ("b_strided", change(b=lambda P: strided(P["b"])), (ValueError, TypeError), "b", ("core",)),
    ("p_strided", change(p=lambda P: strided(P["p"])), (ValueError, TypeError), "p", ("core",)),
    ("h0_broadcast", change(h0=lambda P: broadcast_rows(P["h0"])), (ValueError, TypeError), "h0", ("core",)),
    ("c0_fortran", change(c0=lambda P: fortran(P["c0"])), (ValueError, TypeError), "c0", ("core",)),
    ("mask_strided", change(mask=lambda P: strided(core_mask(P["mask"]))), (ValueError, TypeError), "mask",
     ("core",)),
    ("x_list", change(x=lambda P: P["x"].tolist()), (ValueError, TypeError), "x", ("core",)),
    # mask values and types
    ("mask_value_2", change(mask=lambda P: P["mask"].astype(np.int64) * 2), ValueError, "mask", ("ops",)),
    ("mask_value_half", change(mask=lambda P: P["mask"] * 0.5), ValueError, "mask", ("ops",)),
    ("mask_negative", change(mask=lambda P: -P["mask"].astype(np.int8)), ValueError, "mask", ("ops",)),
    ("mask_nan", change(mask=lambda P: np.where(P["mask"], 1.0, np.nan)), ValueError, "mask", ("ops",)),
    ("mask_strings", change(mask=lambda P: P["mask"].astype(str)), ValueError, "mask", ("ops",)),
    ("mask_float64_core", change(mask=lambda P: P["mask"].astype(np.float64)), TypeError, "mask", ("core",)),
    ("mask_int32_core", change(mask=lambda P: P["mask"].astype(np.int32)), TypeError, "mask", ("core",)),
    # lengths (ops only); the mask must be absent for these
    ("lengths_above_T", change(mask=None, lengths=np.array([T, T + 1])), ValueError, "lengths", ("ops",)),
    ("lengths_negative", change(mask=None, lengths=np.array([-1, 2])), ValueError, "lengths", ("ops",)),
    ("lengths_too_many", change(mask=None, lengths=np.array([1, 2, 3])), ValueError, "lengths", ("ops",)),
    ("lengths_too_few", change(mask=None, lengths=np.array([1])), ValueError, "lengths", ("ops",)),
    ("lengths_rank2", change(mask=None, lengths=np.array([[1, 2]])), ValueError, "lengths", ("ops",)),
    ("lengths_scalar", change(mask=None, lengths=np.array(2)), ValueError, "lengths", ("ops",)),
    ("lengths_float", change(mask=None, lengths=np.array([1.0, 2.0])), TypeError, "lengths", ("ops",)),
    ("mask_and_lengths", change(lengths=np.array([1, 2])), ValueError, "mask", ("ops",)),
    # variant names, and p present or missing
    ("peephole_unknown", change(peephole="diagnoal"), ValueError, "peephole", BOTH),
    ("peephole_capitalized", change(peephole="Diagonal"), ValueError, "peephole", BOTH),
    ("peephole_not_a_string", change(peephole=3), (ValueError, TypeError), "peephole", ("ops",)),
    ("output_peephole_source_unknown", change(output_peephole_source="next"), ValueError,
     "output_peephole_source", BOTH),
    ("output_peephole_source_empty", change(output_peephole_source=""), ValueError, "output_peephole_source", BOTH),
    ("p_given_for_none", change(peephole=None), ValueError, "p", BOTH),
    ("p_missing_for_diagonal", change(p=None), ValueError, "p", BOTH),
    ("p_missing_for_full", change(peephole="full", p=None), ValueError, "p", BOTH),
]


def forward_cases(api):
    return [pytest.param(modify, exc, name, id=case_id)
            for case_id, modify, exc, name, apis in FORWARD_CASES if api in apis]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("modify, exception, name", forward_cases("ops"))
def test_ops_forward_rejects(rng, dtype, modify, exception, name):
    problem = make_problem(rng, dtype)
    modify(problem)
    with raises_naming(exception, name) as info:
        ops_forward(problem)
    check_not_generic(info)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("modify, exception, name", forward_cases("core"))
def test_core_forward_rejects(rng, dtype, modify, exception, name):
    problem = make_problem(rng, dtype)
    modify(problem)
    with raises_naming(exception, name) as info:
        core_forward(problem)
    check_not_generic(info)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("api", ["ops", "core"])
def test_valid_problem_runs(rng, api, training):
    """The base problem of the battery is valid, so each rejection above is due to its one change."""
    problem = make_problem(rng)
    y, h, c = FORWARDS[api](problem, training=training)[:3]
    assert y.shape == (B, T, H) and h.shape == c.shape == (B, H)
    assert np.isfinite(y).all() and np.isfinite(h).all() and np.isfinite(c).all()


# ------------------------------------------------------------------------------ odd inputs that are valid


def results_equal(a, b):
    for name, x, y in zip(("y", "h", "c"), a[:3], b[:3]):
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("api", ["ops", "core"])
def test_read_only_inputs_are_accepted(rng, api):
    """Inputs are only read: read-only arrays work and give the same result."""
    problem = make_problem(rng)
    expected = FORWARDS[api](problem)
    frozen = {key: read_only(value) if isinstance(value, np.ndarray) else value for key, value in problem.items()}
    results_equal(FORWARDS[api](frozen), expected)


NON_CONTIGUOUS = {
    "x_strided": change(x=lambda P: strided(P["x"])),
    "W_fortran": change(W=lambda P: fortran(P["W"])),
    "U_fortran": change(U=lambda P: fortran(P["U"])),
    "b_strided": change(b=lambda P: strided(P["b"])),
    "p_strided": change(p=lambda P: strided(P["p"])),
    "h0_broadcast": change(h0=lambda P: broadcast_rows(P["h0"])),
    "c0_fortran": change(c0=lambda P: fortran(P["c0"])),
    "mask_strided": change(mask=lambda P: strided(P["mask"])),
    # not views, but also arrays the core refuses and ops copies
    "x_big_endian": change(x=lambda P: P["x"].astype(P["x"].dtype.newbyteorder(">"))),
    "W_unaligned": change(W=lambda P: unaligned(P["W"])),
}


@pytest.mark.parametrize("modify", NON_CONTIGUOUS.values(), ids=NON_CONTIGUOUS.keys())
def test_ops_copies_non_contiguous_inputs(rng, modify):
    """ops copies views to contiguous arrays (and unaligned or byte-swapped arrays to aligned ones in the
    machine's byte order): the same values in any layout give the same result."""
    problem = make_problem(rng)
    problem["h0"] = broadcast_rows(problem["h0"]).copy()  # so that the broadcast view holds the same values
    expected = ops_forward(problem)
    modify(problem)
    results_equal(ops_forward(problem), expected)


@pytest.mark.parametrize("make_odd", [unaligned, lambda a: a.astype(a.dtype.newbyteorder(">"))],
                         ids=["unaligned", "big_endian"])
def test_core_odd_memory_raises_or_reads_correctly(rng, make_odd):
    """A misaligned or byte-swapped x must be rejected by name, or read correctly: never misread."""
    problem = make_problem(rng)
    expected = core_forward(problem)
    problem["x"] = make_odd(problem["x"])
    try:
        result = core_forward(problem)
    except (ValueError, TypeError) as error:
        assert re.search(r"(?<![\w.])x(?!\w)", str(error)), str(error)
        assert "incompatible function arguments" not in str(error), str(error)
    else:
        results_equal(result, expected)


@pytest.mark.parametrize("mask_kind", ["float_zeros_ones", "int_zeros_ones"])
def test_ops_accepts_numeric_mask_of_zeros_and_ones(rng, mask_kind):
    problem = make_problem(rng)
    expected = ops_forward(problem)
    problem["mask"] = problem["mask"].astype(np.float64 if mask_kind.startswith("float") else np.int64)
    results_equal(ops_forward(problem), expected)


# -------------------------------------------------------------------------------------------- backward


def train(problem):
    """(problem, its training ForwardContext) through ops, with a float64 diagonal problem."""
    return ops_forward(problem, training=True).context


BACKWARD_CASES = [
    ("dy_shape", dict(dy=np.zeros((B, T, H + 1))), ValueError, "dy"),
    ("dy_time", dict(dy=np.zeros((B, T + 1, H))), ValueError, "dy"),
    ("dy_rank2", dict(dy=np.zeros((B, H))), ValueError, "dy"),
    ("dy_batch_major_swap", dict(dy=np.zeros((T, B, H))), ValueError, "dy"),
    ("dh_shape", dict(dh=np.zeros((B, H + 1))), ValueError, "dh|dh_n"),
    ("dh_rank3", dict(dh=np.zeros((1, B, H))), ValueError, "dh|dh_n"),
    ("dc_shape", dict(dc=np.zeros((B + 1, H))), ValueError, "dc|dc_n"),
    ("dy_float32", dict(dy=np.zeros((B, T, H), np.float32)), TypeError, "dy"),
    ("dy_int", dict(dy=np.zeros((B, T, H), np.int64)), TypeError, "dy"),
    ("dh_float16", dict(dh=np.zeros((B, H), np.float16)), TypeError, "dh|dh_n"),
    ("dc_object", dict(dc=np.zeros((B, H), object)), TypeError, "dc|dc_n"),
]


@pytest.mark.parametrize("grads, exception, name",
                         [pytest.param(g, e, n, id=i) for i, g, e, n in BACKWARD_CASES])
def test_ops_backward_rejects(rng, grads, exception, name):
    context = train(make_problem(rng))
    with raises_naming(exception, name) as info:
        lstm_backward(context, **grads)
    check_not_generic(info)


def test_ops_backward_rejected_call_keeps_the_context(rng):
    """A rejected call has no side effect: the context still serves one valid backward afterwards."""
    problem = make_problem(rng)
    context = train(problem)
    with raises_naming(ValueError, "dy"):
        lstm_backward(context, dy=np.zeros((B, T, H + 1)))
    assert not context.consumed, "a rejected lstm_backward call consumed the context"
    result = lstm_backward(context, dy=np.ones((B, T, H)))
    expected = lstm_backward(train(problem), dy=np.ones((B, T, H)))
    np.testing.assert_array_equal(result.dW, expected.dW)


@pytest.mark.parametrize("context_kind", ["none", "inference_output", "dict", "forward_result"])
def test_ops_backward_rejects_what_is_not_a_context(rng, context_kind):
    problem = make_problem(rng)
    out = ops_forward(problem, training=True)
    context = {"none": None, "inference_output": ops_forward(problem).context, "dict": {},
               "forward_result": out}[context_kind]
    with raises_naming(TypeError, "context"):
        lstm_backward(context, dy=np.ones((B, T, H)))
    assert isinstance(out.context, ForwardContext) and not out.context.consumed


def test_ops_backward_rejects_a_consumed_context(rng):
    context = train(make_problem(rng))
    lstm_backward(context, dy=np.ones((B, T, H)))
    with raises_naming(ValueError, "context"):
        lstm_backward(context, dy=np.ones((B, T, H)))


def core_backward_kwargs(problem, workspace, **extra):
    kwargs = dict(dy=np.ones((B, T, H), problem["W"].dtype), dh_n=None, dc_n=None, workspace=workspace,
                  batch=B, time=T, W=problem["W"], U=problem["U"], b=problem["b"], p=problem["p"],
                  peephole=core_name(problem["peephole"]), output_peephole_source=problem["output_peephole_source"],
                  zero_output_for_mask=False, mask=core_mask(problem["mask"]))
    kwargs.update(extra)
    return kwargs


CORE_BACKWARD_CASES = [
    ("workspace_short", dict(workspace=lambda ws: ws[:-1]), ValueError, "workspace"),
    ("workspace_empty", dict(workspace=lambda ws: ws[:0]), ValueError, "workspace"),
    ("workspace_none", dict(workspace=None), (ValueError, TypeError), "workspace"),
    ("workspace_float32", dict(workspace=lambda ws: ws.astype(np.float32)), TypeError, "workspace"),
    ("workspace_strided", dict(workspace=lambda ws: strided(ws)), (ValueError, TypeError), "workspace"),
    ("workspace_read_only", dict(workspace=lambda ws: read_only(ws)), (ValueError, TypeError), "workspace"),
    ("batch_larger", dict(batch=B + 1), ValueError, "batch|workspace|dy|mask"),
    ("batch_zero", dict(batch=0), ValueError, "batch"),
    ("batch_negative", dict(batch=-1), (ValueError, TypeError), "batch"),
    ("time_larger", dict(time=T + 1), ValueError, "time|workspace|dy|mask"),
    ("time_negative", dict(time=-3), (ValueError, TypeError), "time"),
    ("dy_shape", dict(dy=np.ones((B, T, H + 1))), ValueError, "dy"),
    ("dh_n_shape", dict(dh_n=np.ones((B, H + 1))), ValueError, "dh_n"),
    ("dc_n_shape", dict(dc_n=np.ones((H, B))), ValueError, "dc_n"),
    ("dy_float32", dict(dy=np.ones((B, T, H), np.float32)), TypeError, "dy"),
    ("dy_strided", dict(dy=lambda ws: strided(np.ones((B, T, H)))), (ValueError, TypeError), "dy"),
    ("W_shape", dict(W=np.ones((I + 1, 4 * H))), ValueError, "W|workspace"),
    ("U_float32", dict(U=np.ones((H, 4 * H), np.float32)), TypeError, "U"),
    ("p_missing", dict(p=None), ValueError, "p"),
    ("mask_shape", dict(mask=np.ones((B, T + 1), np.uint8)), ValueError, "mask"),
    ("peephole_unknown", dict(peephole="diag"), ValueError, "peephole"),
]


@pytest.mark.parametrize("edits, exception, name",
                         [pytest.param(g, e, n, id=i) for i, g, e, n in CORE_BACKWARD_CASES])
def test_core_backward_rejects(rng, edits, exception, name):
    problem = make_problem(rng)
    workspace = core_forward(problem, training=True)[3]
    assert isinstance(workspace, np.ndarray) and workspace.dtype == np.float64
    kwargs = core_backward_kwargs(problem, workspace)
    for key, edit in edits.items():
        kwargs[key] = edit(workspace) if callable(edit) else edit
    with raises_naming(exception, name) as info:
        _core.backward(**kwargs)
    check_not_generic(info)


def test_core_backward_valid_call_runs(rng):
    """The base call of the core backward battery is valid."""
    problem = make_problem(rng)
    workspace = core_forward(problem, training=True)[3]
    grads = _core.backward(**core_backward_kwargs(problem, workspace))
    assert len(grads) == 8
    dx, dh0, dc0, dW, dU, db, dp, dW_hr = grads
    assert dx.shape == (B, T, I) and dW.shape == (I, 4 * H) and dp.shape == (3, H)
    assert dW_hr is None  # no projection
    assert all(np.isfinite(g).all() for g in grads[:7])


# ------------------------------------------------------------------------------------------------ step


def step_problem(rng, dtype=np.float64):
    problem = make_problem(rng, dtype)
    problem["x"] = problem["x"][:, 0].copy()
    return problem


def ops_step(P):
    return lstm_step(P["x"], P["h0"], P["c0"], P["W"], P["U"], P["b"], P["p"], peephole=P["peephole"],
                     output_peephole_source=P["output_peephole_source"])


def core_step(P):
    return _core.step(x=P["x"], h=P["h0"], c=P["c0"], W=P["W"], U=P["U"], b=P["b"], p=P["p"],
                      peephole=core_name(P["peephole"]), output_peephole_source=P["output_peephole_source"])


STEPS = {"ops": ops_step, "core": core_step}

# In the step the state arguments are called h and c (held under the keys h0 and c0 here).
STEP_CASES = [
    ("x_rank3", change(x=lambda P: P["x"][:, None]), ValueError, "x"),
    ("x_rank1", change(x=lambda P: P["x"][0]), ValueError, "x"),
    ("x_input_size", change(x=lambda P: np.zeros((B, I + 1), P["W"].dtype)), ValueError, "x|W"),
    ("h_batch", change(h0=lambda P: np.zeros((B + 1, H), P["W"].dtype)), ValueError, "h|h_prev"),
    ("h_rank1", change(h0=lambda P: P["h0"][0]), ValueError, "h|h_prev"),
    ("c_hidden", change(c0=lambda P: np.zeros((B, H + 1), P["W"].dtype)), ValueError, "c|c_prev"),
    ("c_rank3", change(c0=lambda P: P["c0"][None]), ValueError, "c|c_prev"),
    ("h_missing", change(h0=None), (ValueError, TypeError), "h|h_prev"),
    ("c_missing", change(c0=None), (ValueError, TypeError), "c|c_prev"),
    ("B_zero", change(x=lambda P: P["x"][:0], h0=lambda P: P["h0"][:0], c0=lambda P: P["c0"][:0]),
     ValueError, "x|h|c|h_prev|c_prev"),
    ("W_cols", change(W=lambda P: np.ascontiguousarray(P["W"][:, :-4])), ValueError, "W|U"),
    ("p_shape", change(p=lambda P: np.ascontiguousarray(P["p"][:, :-1])), ValueError, "p"),
    ("p_given_for_none", change(peephole=None), ValueError, "p"),
    ("p_missing_for_diagonal", change(p=None), ValueError, "p"),
    ("peephole_unknown", change(peephole="peep"), ValueError, "peephole"),
    ("output_peephole_source_unknown", change(output_peephole_source="past"), ValueError, "output_peephole_source"),
    ("x_float32", as_dtype(np.float32, "x"), TypeError, "x"),
    ("h_float32", as_dtype(np.float32, "h0"), TypeError, "h|h_prev"),
    ("c_int", as_dtype(np.int64, "c0"), TypeError, "c|c_prev"),
    ("W_int", as_dtype(np.int64, "W"), TypeError, "W"),
]


@pytest.mark.parametrize("api", ["ops", "core"])
@pytest.mark.parametrize("modify, exception, name",
                         [pytest.param(m, e, n, id=i) for i, m, e, n in STEP_CASES])
def test_step_rejects(rng, api, modify, exception, name):
    problem = step_problem(rng)
    modify(problem)
    with raises_naming(exception, name) as info:
        STEPS[api](problem)
    check_not_generic(info)


@pytest.mark.parametrize("modify, name", [
    pytest.param(change(x=lambda P: strided(P["x"])), "x", id="x_strided"),
    pytest.param(change(h0=lambda P: fortran(P["h0"])), "h|h_prev", id="h_fortran"),
    pytest.param(change(c0=lambda P: broadcast_rows(P["c0"])), "c|c_prev", id="c_broadcast"),
    pytest.param(change(W=lambda P: fortran(P["W"])), "W", id="W_fortran"),
])
def test_core_step_rejects_non_contiguous(rng, modify, name):
    problem = step_problem(rng)
    modify(problem)
    with raises_naming((ValueError, TypeError), name) as info:
        core_step(problem)
    check_not_generic(info)


@pytest.mark.parametrize("api", ["ops", "core"])
def test_valid_step_runs(rng, api):
    h, c = STEPS[api](step_problem(rng))
    assert h.shape == c.shape == (B, H) and np.isfinite(h).all() and np.isfinite(c).all()


# ------------------------------------------------------------------- the cell's arguments, in every function


def core_cell_functions(problem):
    """Each native function of the cell (forward, backward, step, trace) as a call with `problem`'s valid
    arguments, to which a test adds or overrides cell arguments."""
    P = problem
    cell = dict(W=P["W"], U=P["U"], b=P["b"], p=P["p"], peephole=core_name(P["peephole"]),
                output_peephole_source=P["output_peephole_source"])
    sequence = dict(x=P["x"], h0=P["h0"], c0=P["c0"], mask=core_mask(P["mask"]))
    workspace = _core.forward(**sequence, **cell, training=True)[3]
    return {
        "forward": lambda **kw: _core.forward(**sequence, **{**cell, **kw}),
        "backward": lambda **kw: _core.backward(mask=sequence["mask"], workspace=workspace, batch=B, time=T,
                                                **{**cell, **kw}),
        "step": lambda **kw: _core.step(x=P["x"][:, 0].copy(), h=P["h0"], c=P["c0"], **{**cell, **kw}),
        "trace": lambda **kw: _core.trace(**sequence, **{**cell, **kw}),
    }


CELL_ARGUMENT_CASES = [
    ("peephole_unknown", dict(peephole="diag"), ValueError, "peephole"),
    ("output_peephole_source_unknown", dict(output_peephole_source="past"), ValueError, "output_peephole_source"),
    ("dropout_one", dict(dropout=1.0), ValueError, "dropout"),
    ("recurrent_dropout_negative", dict(recurrent_dropout=-0.1), ValueError, "recurrent_dropout"),
    ("zoneout_h_nan", dict(zoneout_h=float("nan")), ValueError, "zoneout_h"),
    ("weight_drop_large", dict(weight_drop=2.0), ValueError, "weight_drop"),
    ("U_shape", dict(U=np.ones((H, 4 * H + 1))), ValueError, "U"),
    ("W_not_an_array", dict(W=[[1.0]]), TypeError, "W"),
    ("W_hr_0d", dict(W_hr=np.array(1.0)), ValueError, "W_hr"),
]


@pytest.mark.parametrize("edit, exception, name",
                         [pytest.param(e, x, n, id=i) for i, e, x, n in CELL_ARGUMENT_CASES])
def test_core_cell_arguments_are_refused_alike_by_every_function(rng, edit, exception, name):
    """The cell's keyword arguments are declared and parsed once for every native function: the same bad
    argument gives the same error, with the same message, from each."""
    messages = {}
    for function, call in core_cell_functions(make_problem(rng)).items():
        with raises_naming(exception, name) as info:
            call(**edit)
        check_not_generic(info)
        messages[function] = str(info.value)
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("name, value", [("dropout", 0.2), ("recurrent_dropout", 0.2), ("zoneout_h", 0.1),
                                         ("zoneout_c", 0.1), ("weight_drop", 0.3), ("seed", 7),
                                         ("zero_output_for_mask", True)])
def test_core_trace_refuses_what_it_cannot_honour(rng, name, value):
    """trace reads a forward pass without regularization and returns the states, not the outputs: an argument
    that asks for anything else is refused, naming it, rather than ignored."""
    with raises_naming(ValueError, name) as info:
        core_cell_functions(make_problem(rng))["trace"](**{name: value})
    check_not_generic(info)
    assert "trace" in str(info.value)


def test_core_step_is_one_step_of_inference_forward(rng):
    """step takes every cell argument with forward(training=False)'s meaning over one step: zoneout acts as its
    expectation; the dropouts, the seed and zero_output_for_mask (no mask) change nothing."""
    problem = make_problem(rng)
    step = core_cell_functions(problem)["step"]
    rates = dict(dropout=0.3, recurrent_dropout=0.2, zoneout_h=0.1, zoneout_c=0.2, weight_drop=0.4, seed=11,
                 zero_output_for_mask=True)
    h, c = step(**rates)
    _, h_want, c_want, _ = _core.forward(x=problem["x"][:, :1].copy(), h0=problem["h0"], c0=problem["c0"],
                                         W=problem["W"], U=problem["U"], b=problem["b"], p=problem["p"],
                                         peephole=core_name(problem["peephole"]), **rates)
    np.testing.assert_allclose(h, h_want, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c, c_want, rtol=0, atol=1e-14)
    zoneout_only = step(zoneout_h=0.1, zoneout_c=0.2)
    assert all(np.array_equal(a, b) for a, b in zip((h, c), zoneout_only))
    assert not np.allclose(h, step()[0])  # zoneout acted


# ------------------------------------------------------------------------------------------------- NaN


@pytest.mark.parametrize("peephole", ["diagonal", "full", None], ids=["diagonal", "full", "none"])
@pytest.mark.parametrize("api", ["ops", "core"])
def test_nan_input_gives_nan_output_in_its_row_only(rng, api, peephole):
    """NaN in x of batch row 0 at step 1: row 0 is NaN from step 1 on, row 1 stays finite (rows are independent)."""
    problem = make_problem(rng, peephole=peephole)
    problem["mask"] = None
    problem["x"][0, 1, 2] = np.nan
    y, h, c = FORWARDS[api](problem)[:3]
    assert np.isfinite(y[0, 0]).all()
    assert np.isnan(y[0, 1:]).all() and np.isnan(h[0]).all() and np.isnan(c[0]).all()
    assert np.isfinite(y[1]).all() and np.isfinite(h[1]).all() and np.isfinite(c[1]).all()


@pytest.mark.parametrize("key", ["W", "U", "b", "p"])
def test_nan_weight_gives_nan_everywhere(rng, key):
    problem = make_problem(rng)
    problem["mask"] = None
    problem[key].reshape(-1)[0] = np.nan  # weight of gate i, unit 0 (p: input peephole of unit 0)
    y, h, c, _ = ops_forward(problem)
    # unit 0's input gate is NaN, so c, then h of unit 0, are NaN in every row; through U it reaches all units
    assert np.isnan(c[:, 0]).all() and np.isnan(y[:, :, 0]).all()
    assert np.isnan(y[:, -1]).all() and np.isnan(h).all()


def test_nan_in_masked_steps_does_not_leak(rng):
    """Padding is never read: NaN at masked steps of x gives the result of zeros there (forward)."""
    problem = make_problem(rng)
    problem["x"][~problem["mask"]] = 0.0
    expected = ops_forward(problem)
    problem["x"][~problem["mask"]] = np.nan
    results_equal(ops_forward(problem), expected)


def test_nan_upstream_gradient_gives_nan_gradients_without_crash(rng):
    problem = make_problem(rng)
    problem["mask"] = None
    context = train(problem)
    dy = np.ones((B, T, H))
    dy[0, -1, 0] = np.nan
    grads = lstm_backward(context, dy=dy)
    assert np.isnan(grads.dx[0]).any() and np.isfinite(grads.dx[1]).all()
    assert np.isnan(grads.dW).any() and np.isnan(grads.dh0[0]).any() and np.isfinite(grads.dh0[1]).all()


def test_nan_in_h0_stays_in_its_row(rng):
    problem = make_problem(rng)
    problem["h0"][1, 3] = np.nan
    y, h, c, _ = ops_forward(problem)
    assert np.isnan(y[1]).all() and np.isnan(h[1]).all()
    assert np.isfinite(y[0]).all() and np.isfinite(h[0]).all()
