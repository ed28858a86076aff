"""Property-based fuzzing (hypothesis) of lstm_native.ops (lstm_forward, lstm_backward, lstm_step) and of the
native module lstm_native._core called directly.

Every generated case must end either in a correct result (the documented shapes and dtype, finite values
where every input is finite) or in a Python exception (ValueError, TypeError or MemoryError) with a message.
Cases are built from a valid problem that the strategy then damages or not; a case left valid must succeed
and a damaged one must raise. Absurd sizes (batch or hidden sizes whose outputs need terabytes, broadcast
views of 2**40 elements) must give MemoryError or ValueError, never an abort.

The fuzzing runs in a subprocess (this file run as a script) under an address-space limit, so that a crash
(segfault, abort, out-of-memory kill) is a failing test rather than a dead pytest. Hypothesis runs
derandomized with bounded max_examples, so the run is reproducible and takes well under a minute.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = int(os.environ.get("LSTM_NATIVE_FUZZ_EXAMPLES", "1500"))  # per property (about 20 s in all)
ADDRESS_SPACE_LIMIT = 16 << 30  # bytes: a runaway allocation fails cleanly instead of swapping


def test_fuzz_api_in_a_subprocess():
    pytest.importorskip("hypothesis")
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"the fuzzing subprocess exited with {done.returncode} (negative: killed by signal {-done.returncode})"
        f"\n--- stdout\n{done.stdout[-8000:]}\n--- stderr\n{done.stderr[-8000:]}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"fuzz cases tried: {counts}")
    assert counts["total"] >= 4 * EXAMPLES // 2, counts


# --------------------------------------------------------------------------------------- the fuzzing itself
# Defined only when run as a script (the subprocess); pytest collects nothing below.

def _fuzz_main() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > ADDRESS_SPACE_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, hard))

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lstm_native import _core, ops

    counts = {"forward_backward": 0, "step": 0, "absurd_sizes": 0, "core_direct": 0}
    outcomes = {"ok": 0, "ValueError": 0, "TypeError": 0, "MemoryError": 0}
    fuzz_settings = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck), print_blob=True)
    ALLOWED = (ValueError, TypeError, MemoryError)

    def outcome(call, expect_error: bool | None):
        """Runs call(); an exception must be an allowed one with a message; returns the result or None."""
        try:
            result = call()
        except ALLOWED as error:
            assert str(error).strip(), f"{type(error).__name__} without a message"
            assert "incompatible function arguments" not in str(error), str(error)[:300]
            if expect_error is False:
                raise AssertionError(f"a valid case raised {type(error).__name__}: {error}") from error
            outcomes[type(error).__name__ if type(error).__name__ in outcomes else "ValueError"] += 1
            return None
        if expect_error:
            raise AssertionError("an invalid case did not raise")
        outcomes["ok"] += 1
        return result

    def check_array(a, shape, dtype, finite):
        assert isinstance(a, np.ndarray), type(a)
        assert a.shape == tuple(shape), (a.shape, shape)
        assert a.dtype == dtype, (a.dtype, dtype)
        if finite:
            assert np.isfinite(a).all(), "non-finite output from finite inputs"

    # -- a problem: sizes, variant, dtype, optional parts, layout and special values --------------------
    sizes = st.integers(1, 5)
    rates = st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.9, 0.999])
    bad_rates = st.sampled_from([-0.1, 1.0, 1.5, math.nan, math.inf, -math.inf])

    @st.composite
    def problems(draw):
        B, T, I, H = draw(sizes), draw(sizes), draw(sizes), draw(sizes)
        peephole = draw(st.sampled_from(["diagonal", "full", None]))
        source = draw(st.sampled_from(["current", "previous"]))
        dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        scale = draw(st.sampled_from([0.1, 1.0, 10.0, 1e4]))

        def normal(*shape):
            return (scale * rng.standard_normal(shape)).astype(dtype)

        arrays = dict(x=normal(B, T, I), W=normal(I, 4 * H) / scale, U=normal(H, 4 * H) / scale)
        arrays["b"] = normal(4 * H) / scale if draw(st.booleans()) else None
        arrays["p"] = None if peephole is None else (normal(3, H) if peephole == "diagonal" else normal(3, H, H)) / scale
        arrays["h0"] = normal(B, H) if draw(st.booleans()) else None
        arrays["c0"] = normal(B, H) if draw(st.booleans()) else None
        mask_kind = draw(st.sampled_from(["none", "bool", "int", "lengths"]))
        lengths = rng.integers(0, T + 1, B)
        mask = np.arange(T)[None, :] < lengths[:, None]
        kwargs = dict(peephole=peephole, output_peephole_source=source,
                      zero_output_for_mask=draw(st.booleans()))
        if mask_kind == "bool":
            kwargs["mask"] = mask
        elif mask_kind == "int":
            kwargs["mask"] = mask.astype(draw(st.sampled_from(["int8", "int64", "float32"])))
        elif mask_kind == "lengths":
            kwargs["lengths"] = lengths
        training = draw(st.booleans())
        kwargs["training"] = training
        if training:
            for name in ("dropout", "recurrent_dropout", "zoneout_h", "zoneout_c", "weight_drop"):
                kwargs[name] = draw(rates)
            kwargs["seed"] = draw(st.sampled_from([0, 1, 2**32, 2**64 - 1]))
        else:
            kwargs["zoneout_h"], kwargs["zoneout_c"] = draw(rates), draw(rates)
        finite = True
        # layout: non-contiguous or read-only copies are valid and must give the same results
        for name in [k for k, v in arrays.items() if v is not None]:
            layout = draw(st.sampled_from(["c", "c", "strided", "fortran", "readonly"]))
            a = arrays[name]
            if layout == "strided":
                wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype)
                wide[..., ::2] = a
                a = wide[..., ::2]
            elif layout == "fortran":
                a = np.asfortranarray(a)
            elif layout == "readonly":
                a = a.copy()
                a.flags.writeable = False
            arrays[name] = a
        special = draw(st.sampled_from([None, None, None, "nan", "inf", "-inf"]))
        if special is not None:
            name = draw(st.sampled_from([k for k, v in arrays.items() if v is not None]))
            a = np.array(arrays[name])
            a.flat[draw(st.integers(0, a.size - 1))] = float(special)
            arrays[name] = a
            finite = False
        # damage: one invalid change, or none
        damage = draw(st.sampled_from([None] * 6 + ["shape", "dtype", "rate", "seed", "mask", "variant",
                                                    "missing", "type", "mask_and_lengths", "ndim"]))
        if damage == "shape":
            name = draw(st.sampled_from([k for k, v in arrays.items() if v is not None]))
            a = arrays[name]
            axis = draw(st.integers(0, a.ndim - 1))
            grown = list(a.shape)
            grown[axis] += draw(st.sampled_from([1, 2, -grown[axis]]))  # larger, or zero-size
            arrays[name] = np.zeros(grown, a.dtype)
        elif damage == "dtype":
            name = draw(st.sampled_from([k for k, v in arrays.items() if v is not None]))
            other = draw(st.sampled_from(["float16", "int32", "complex64", "object"] +
                                         (["float64"] if dtype == np.float32 else ["float32"])))
            arrays[name] = arrays[name].astype(other)
        elif damage == "rate":
            if training:
                kwargs[draw(st.sampled_from(["dropout", "recurrent_dropout", "zoneout_h", "zoneout_c",
                                             "weight_drop"]))] = draw(bad_rates)
            else:
                kwargs[draw(st.sampled_from(["zoneout_h", "zoneout_c"]))] = draw(bad_rates)
        elif damage == "seed":
            kwargs["seed"] = draw(st.sampled_from([-1, 2**64, 1.5, "0", None, True]))
        elif damage == "mask":
            choice = draw(st.sampled_from(["values", "shape"]))
            kwargs.pop("lengths", None)
            if choice == "values":
                m = mask.astype(np.int32)
                m.flat[0] = 2
            else:
                m = np.ones((B, T + 1), bool)
            kwargs["mask"] = m
        elif damage == "variant":
            if draw(st.booleans()):
                kwargs["peephole"] = draw(st.sampled_from(["Diagonal", "none", "", 1]))
            else:
                kwargs["output_peephole_source"] = draw(st.sampled_from(["past", None, ""]))
        elif damage == "missing":
            # a peephole variant without its p, or p without a variant
            if peephole is None:
                arrays["p"] = np.zeros((3, H), dtype)
            else:
                arrays["p"] = None
        elif damage == "type":
            name = draw(st.sampled_from(["x", "W", "U"]))
            arrays[name] = draw(st.sampled_from(["a string", {"a": 1}, object()]))
        elif damage == "mask_and_lengths":
            kwargs["mask"], kwargs["lengths"] = mask, lengths
        elif damage == "ndim":
            name = draw(st.sampled_from([k for k, v in arrays.items() if v is not None]))
            arrays[name] = np.asarray(arrays[name])[..., None]
        return dict(B=B, T=T, I=I, H=H, dtype=dtype, arrays=arrays, kwargs=kwargs, finite=finite,
                    damage=damage, rng=rng)

    @fuzz_settings
    @given(problems())
    def fuzz_forward_backward(case):
        counts["forward_backward"] += 1
        B, T, I, H, dtype = case["B"], case["T"], case["I"], case["H"], case["dtype"]
        a, kw = case["arrays"], case["kwargs"]
        result = outcome(lambda: ops.lstm_forward(a["x"], a["W"], a["U"], a["b"], a["p"], h0=a["h0"], c0=a["c0"],
                                                  **kw),
                         expect_error=case["damage"] is not None)
        if result is None:
            return
        check_array(result.y, (B, T, H), dtype, case["finite"])
        check_array(result.h, (B, H), dtype, case["finite"])
        check_array(result.c, (B, H), dtype, case["finite"])
        if not kw["training"]:
            assert result.context is None
            return
        rng = case["rng"]
        dy = rng.standard_normal((B, T, H)).astype(dtype) if rng.random() < 0.7 else None
        dh = rng.standard_normal((B, H)).astype(dtype) if rng.random() < 0.5 else None
        bad = rng.random() < 0.2
        if bad:  # a gradient of the wrong shape or dtype
            dy = np.zeros((B, T + 1, H), dtype) if rng.random() < 0.5 else np.zeros((B, T, H), np.float16)
        grads = outcome(lambda: ops.lstm_backward(result.context, dy=dy, dh=dh), expect_error=bad)
        if grads is None:
            return
        check_array(grads.dx, (B, T, I), dtype, case["finite"])
        check_array(grads.dh0, (B, H), dtype, case["finite"])
        check_array(grads.dc0, (B, H), dtype, case["finite"])
        check_array(grads.dW, (I, 4 * H), dtype, case["finite"])
        check_array(grads.dU, (H, 4 * H), dtype, case["finite"])
        assert (grads.db is None) == (a["b"] is None)
        assert (grads.dp is None) == (a["p"] is None)
        if grads.dp is not None:
            check_array(grads.dp, np.shape(a["p"]), dtype, case["finite"])
        outcome(lambda: ops.lstm_backward(result.context, dy=dy), expect_error=True)  # consumed

    @fuzz_settings
    @given(problems())
    def fuzz_step(case):
        counts["step"] += 1
        B, H, dtype = case["B"], case["H"], case["dtype"]
        a, kw = case["arrays"], case["kwargs"]
        x = None if isinstance(a["x"], (str, dict)) or not hasattr(a["x"], "ndim") else a["x"]
        if x is not None and x.ndim == 3:  # the first step; a sequence damaged to 0 steps gives (B, 0) features
            x = np.asarray(x)[:, 0] if x.shape[1] else np.empty((x.shape[0], 0), x.dtype)
        elif x is None:
            x = a["x"]
        h = a["h0"] if a["h0"] is not None else np.zeros((B, H), dtype)
        c = a["c0"] if a["c0"] is not None else np.zeros((B, H), dtype)
        step_kwargs = {k: kw[k] for k in ("peephole", "output_peephole_source", "zoneout_h", "zoneout_c")}
        damage = case["damage"]
        if damage == "rate":  # only the zoneout rates reach lstm_step
            expect = any(not 0 <= step_kwargs[k] < 1 for k in ("zoneout_h", "zoneout_c"))
        elif damage in ("variant", "type", "missing", "dtype", "ndim"):
            expect = True
        elif damage == "shape":
            expect = None  # a longer x sequence is still one valid step
        else:
            expect = False  # seeds and masks do not reach lstm_step
        result = outcome(lambda: ops.lstm_step(x, h, c, a["W"], a["U"], a["b"], a["p"], **step_kwargs),
                         expect_error=expect)
        if result is None:
            return
        h_new, c_new = result
        check_array(h_new, (B, H), dtype, case["finite"] and case["damage"] is None)
        check_array(c_new, (B, H), dtype, case["finite"] and case["damage"] is None)

    # -- absurd sizes --------------------------------------------------------------------------------------
    @fuzz_settings
    @given(st.sampled_from(["broadcast_x", "strided_x", "huge_hidden", "huge_batch_backward",
                            "huge_time_backward", "negative_sizes", "broadcast_core", "huge_step"]),
           st.integers(40, 58), st.sampled_from([np.float32, np.float64]))
    def fuzz_absurd_sizes(kind, log2, dtype):
        counts["absurd_sizes"] += 1
        n = 2 ** log2
        W, U = np.zeros((2, 8), dtype), np.zeros((2, 8), dtype)
        small = np.zeros((1, 1, 2), dtype)
        if kind == "broadcast_x":  # a 2**40+ element view of one value: copying it must fail cleanly
            shape = (2 ** (log2 // 2), 2 ** (log2 - log2 // 2), 2)
            outcome(lambda: ops.lstm_forward(np.broadcast_to(small, shape), W, U, peephole=None), expect_error=True)
        elif kind == "strided_x":
            x = np.lib.stride_tricks.as_strided(np.zeros(2, dtype), shape=(2 ** (log2 - 20), 2 ** 20, 2),
                                                strides=(0, 0, dtype().itemsize), writeable=False)
            outcome(lambda: ops.lstm_forward(x, W, U, peephole=None), expect_error=True)
            outcome(lambda: _core.forward(x=x, W=W, U=U, peephole="none"), expect_error=True)
        elif kind == "huge_hidden":  # outputs of B*T*H elements from small inputs: MemoryError
            H = 2 ** 11
            x = np.zeros((2 ** 12, 2 ** 10, 1), dtype)
            Wb, Ub = np.zeros((1, 4 * H), dtype), np.zeros((H, 4 * H), dtype)
            outcome(lambda: _core.forward(x=x, W=Wb, U=Ub, peephole="none", training=True), expect_error=None)
        elif kind in ("huge_batch_backward", "huge_time_backward"):
            forward = ops.lstm_forward(np.zeros((2, 3, 2), dtype), W, U, peephole=None, training=True)
            batch, time = (n, 3) if kind == "huge_batch_backward" else (2, n)
            outcome(lambda: _core.backward(W=W, U=U, workspace=forward.context._workspace, batch=batch, time=time,
                                           peephole="none"), expect_error=True)
        elif kind == "negative_sizes":
            forward = ops.lstm_forward(np.zeros((2, 3, 2), dtype), W, U, peephole=None, training=True)
            outcome(lambda: _core.backward(W=W, U=U, workspace=forward.context._workspace, batch=-n, time=-1,
                                           peephole="none"), expect_error=True)
            try:  # beyond int64: pybind11's own conversion error (a TypeError), never a crash
                _core.backward(W=W, U=U, workspace=forward.context._workspace, batch=2, time=2**64, peephole="none")
                raise AssertionError("time=2**64 accepted")
            except TypeError:
                outcomes["TypeError"] += 1
        elif kind == "broadcast_core":
            x = np.broadcast_to(small, (2 ** (log2 - 30), 2 ** 30, 2))
            outcome(lambda: _core.forward(x=x, W=W, U=U, peephole="none"), expect_error=True)
            outcome(lambda: ops.lstm_forward(x, W, U, peephole=None, training=True), expect_error=True)
        elif kind == "huge_step":
            x = np.broadcast_to(np.zeros((1, 2), dtype), (n, 2))
            h = np.broadcast_to(np.zeros((1, 2), dtype), (n, 2))
            outcome(lambda: ops.lstm_step(x, h, h, W, U, peephole=None), expect_error=True)

    # -- the native module directly: any object in any argument ------------------------------------------
    @st.composite
    def wild_values(draw, B, T, I, H, dtype):
        return draw(st.sampled_from([
            None, 0, 1.5, "x", [1.0, 2.0], np.float32(1), np.zeros((), dtype), np.zeros((0,), dtype),
            np.zeros((B, T, I), dtype), np.zeros((I, 4 * H), dtype), np.zeros((H, 4 * H), dtype),
            np.zeros((B, H), dtype), np.zeros((3, H), dtype), np.zeros((4 * H,), dtype),
            np.zeros((B, T), bool), np.zeros((B, T), np.uint8), np.zeros((B, T, I), dtype)[:, ::-1],
            np.zeros((B, T, I), dtype).astype(dtype.newbyteorder()), np.zeros((B, T, I), np.float16),
        ]))

    @fuzz_settings
    @given(st.data())
    def fuzz_core_direct(data):
        counts["core_direct"] += 1
        B, T, I, H = (data.draw(st.integers(1, 3)) for _ in range(4))
        dtype = np.dtype(data.draw(st.sampled_from(["float32", "float64"])))
        args = {"x": np.ones((B, T, I), dtype), "W": np.full((I, 4 * H), 0.1, dtype),
                "U": np.full((H, 4 * H), 0.1, dtype)}
        for name in data.draw(st.lists(st.sampled_from(["x", "W", "U", "b", "p", "h0", "c0", "mask"]),
                                       max_size=3, unique=True)):
            args[name] = data.draw(wild_values(B, T, I, H, dtype))
        args["peephole"] = data.draw(st.sampled_from(["none", "diagonal", "full", "bogus"]))
        if data.draw(st.booleans()):
            args["training"] = True
            args["dropout"] = data.draw(st.sampled_from([0.0, 0.5, -1.0, 2.0, math.nan]))
            args["seed"] = data.draw(st.sampled_from([0, 2**64 - 1]))
        result = outcome(lambda: _core.forward(**args), expect_error=None)
        if result is not None:
            y, h, c, workspace = result
            assert y.shape[-1] == h.shape[-1] == c.shape[-1]
            if workspace is not None and data.draw(st.booleans()):
                bwd = {k: args[k] for k in ("W", "U", "b", "p", "mask", "peephole", "dropout", "seed") if k in args}
                bwd["dy"] = data.draw(st.sampled_from([None, y, y[:, :1].copy(), np.zeros_like(h)]))
                bwd["batch"] = data.draw(st.sampled_from([y.shape[0], y.shape[0] + 1, 0]))
                bwd["time"] = data.draw(st.sampled_from([y.shape[1], y.shape[1] + 5, 1]))
                ws = workspace
                truncated = data.draw(st.booleans())
                if truncated:
                    ws = workspace[: data.draw(st.integers(0, max(workspace.size - 1, 0)))].copy()
                bwd["workspace"] = ws
                same_sizes = (bwd["batch"], bwd["time"]) == y.shape[:2]
                outcome(lambda: _core.backward(**bwd), expect_error=True if truncated and same_sizes else None)
        step_args = {"x": data.draw(wild_values(B, T, I, H, dtype)), "h": np.zeros((B, H), dtype),
                     "c": data.draw(wild_values(B, T, I, H, dtype)), "W": args["W"], "U": args["U"],
                     "peephole": "none"}
        outcome(lambda: _core.step(**step_args), expect_error=None)

    for fuzz in (fuzz_forward_backward, fuzz_step, fuzz_absurd_sizes, fuzz_core_direct):
        fuzz()
    counts["total"] = sum(counts.values())
    counts["outcomes"] = outcomes
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(_fuzz_main())
