"""The CUDA backend against the CPU backend: forward (inference and training) and every gradient, for all six
cell variants, with masks, h0/c0, zero_output_for_mask and every regularizer under the same seed (so both
draw the same masks), float32 (<= 1e-5 relative to the largest value) and float64; then device="cuda" in
lstm_native.ops, the LSTM layer and Sequential, and arrays on the GPU given through DLPack.

The GPU comparisons need a CUDA build (lstm_native.with_cuda) and a GPU; elsewhere they are skipped with the
reason. The availability API, the refusals where no GPU is usable and the checks of DLPack arrays that happen
before any device work are tested everywhere."""

from __future__ import annotations

import ctypes
import importlib
import json
import threading

import numpy as np
import pytest

import lstm_native
from lstm_native import _core, cuda, ops
from lstm_native.layers import LSTM, Bidirectional, Dense
from lstm_native.models import Sequential
import support
from reference import max_rel_error, random_inputs, random_mask, random_params

requires_gpu = pytest.mark.skipif(not cuda.is_available(), reason=cuda.unavailable_reason() or "")
requires_cuda_build = pytest.mark.skipif(not lstm_native.with_cuda, reason=cuda.unavailable_reason() or "")

GRAD_NAMES = ("dx", "dh0", "dc0", "dW", "dU", "db", "dp", "dW_hr")
RATES = {"none": {}, **support.RATES}
SEED = support.SEED
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
NATIVE_PASSES = {"cpu": ("forward", "backward"), "cuda": ("cuda_forward", "cuda_backward")}


def test_availability_api_never_raises():
    assert isinstance(lstm_native.with_cuda, bool)
    assert cuda.built() is lstm_native.with_cuda
    count = cuda.device_count()
    assert isinstance(count, int) and count >= 0
    assert cuda.is_available() == (count > 0)
    if not lstm_native.with_cuda:
        assert count == 0 and not cuda.is_available()
        assert not hasattr(_core, "cuda_forward")


def test_the_cuda_surface_is_the_cpus():
    """The GPU functions take the CPU functions' keyword arguments (one declaration in the binding): in a CUDA
    build their signatures are forward's and backward's; the old modes and benchmark timings are gone from
    _core. In a CPU-only build no CUDA name exists (and no benchmark module)."""
    for removed in ("cuda_forward_training", "CudaTrainingState", "timings"):
        assert not hasattr(_core, removed), removed
    if not lstm_native.with_cuda:
        for name in ("cuda_forward", "cuda_backward", "CudaWorkspace"):
            assert not hasattr(_core, name), name
        with pytest.raises(ImportError):
            importlib.import_module("lstm_native._cuda_bench")
        return
    signature = lambda function: function.__doc__.splitlines()[0].split("(", 1)[1]  # noqa: E731
    assert signature(_core.cuda_forward) == signature(_core.forward)
    assert signature(_core.cuda_backward) == signature(_core.backward)
    assert "repeats" not in signature(_core.cuda_forward)
    assert callable(importlib.import_module("lstm_native._cuda_bench").timings)


def test_cpu_only_build_reports_no_device():
    if lstm_native.with_cuda:
        pytest.skip("a CUDA build: the device count is the machine's")
    assert _core.cuda_device_count() == 0


def test_gpu_call_without_a_device_raises_cleanly(rng):
    """A CUDA build on a machine without a usable GPU: the GPU path raises RuntimeError, it does not crash."""
    if not lstm_native.with_cuda or cuda.is_available():
        pytest.skip("needs a CUDA build on a machine without a usable GPU")
    arrays, _ = case(rng, "diagonal", np.float32)
    with pytest.raises(RuntimeError, match="CUDA"):
        _core.cuda_forward(**arrays)


def test_device_cuda_where_unavailable_raises_clearly(rng):
    """Without a usable GPU: ops raise RuntimeError with the reason, layers and models ValueError; with one, the
    layer runs."""
    if cuda.is_available():
        layer = LSTM(4, device="cuda")
        x = rng.standard_normal((3, 5, 2)).astype(np.float32)
        y = layer(x)
        reference = LSTM(4)
        reference.build(x.shape)
        reference.set_weights(layer.get_weights())
        assert max_rel_error(y, reference(x)) <= 1e-5
        return
    reason = cuda.unavailable_reason()
    assert reason
    arrays, _ = case(rng, "diagonal", np.float32)
    with pytest.raises(RuntimeError, match="cuda") as error:
        ops.lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], device="cuda")
    assert reason in str(error.value)
    with pytest.raises(ValueError, match="device"):
        LSTM(4, device="cuda")
    with pytest.raises(ValueError, match="device"):
        Sequential([LSTM(4)], device="cuda")


@pytest.mark.parametrize("device", ["gpu", "CUDA", None, 0])
def test_unknown_devices_are_refused(rng, device):
    arrays, _ = case(rng, "diagonal", np.float32)
    with pytest.raises(ValueError, match="device"):
        ops.lstm_forward(arrays["x"], arrays["W"], arrays["U"], arrays["b"], arrays["p"], device=device)
    with pytest.raises(ValueError, match="device"):
        LSTM(4, device=device)
    if device is not None:  # Sequential's None: each layer keeps its own device
        with pytest.raises(ValueError, match="device"):
            Sequential([LSTM(4)], device=device)


def test_sequential_sets_every_lstms_device_and_never_saves_it(monkeypatch):
    """Every LSTM, those in Bidirectional and those added later included, gets the model's device; no config
    holds it, so a model rebuilt from its config (a saved file) runs on the CPU. (CUDA is pretended available:
    nothing runs here.)"""
    monkeypatch.setattr(cuda, "unavailable_reason", lambda: None)
    model = Sequential([Bidirectional(LSTM(3, return_sequences=True), input_shape=(5, 2)), LSTM(3, return_sequences=True)],
                       device="cuda")
    model.add(Bidirectional(LSTM(2)))
    model.add(Dense(1))
    lstms = [lstm for layer in model.layers for lstm in ([layer.forward_layer, layer.backward_layer]
                                                         if isinstance(layer, Bidirectional) else [layer])
             if isinstance(lstm, LSTM)]
    assert len(lstms) == 5 and all(lstm.device == "cuda" for lstm in lstms)
    config = model.get_config()
    assert "device" not in json.dumps(config)
    rebuilt = Sequential.from_config(config)
    assert rebuilt.device is None and rebuilt.layers[1].device == "cpu"


def case(rng, peephole, dtype, B=5, T=6, I=7, H=8, masked=True, P=None):
    x, h0, c0 = random_inputs(rng, B, T, I, H, dtype=dtype, P=P)
    params = random_params(rng, I, H, peephole, dtype=dtype, P=P)
    mask = random_mask(rng, B, T) if masked else None
    Ho = H if P is None else P
    dy = rng.standard_normal((B, T, Ho)).astype(dtype)
    dh_n = rng.standard_normal((B, Ho)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)
    return dict(x=x, h0=h0, c0=c0, mask=mask, **params), dict(dy=dy, dh_n=dh_n, dc_n=dc_n)


def core_run(device, arrays, grads_in, peephole, source, zero_output, training, rates):
    """The device's native forward, then with training its backward: the same calls on both devices."""
    forward, backward = (getattr(_core, name) for name in NATIVE_PASSES[device])
    kw = dict(peephole=peephole or "none", output_peephole_source=source, zero_output_for_mask=zero_output, **rates)
    y, h, c, ws = forward(**arrays, training=training, seed=SEED, **kw)
    assert (ws is None) == (not training)
    if not training:
        return (y, h, c)
    B, T = arrays["x"].shape[:2]
    weights = {k: arrays.get(k) for k in ("W", "U", "b", "p", "W_hr")}
    grads = backward(**weights, mask=arrays["mask"], **grads_in, workspace=ws, batch=B, time=T, seed=SEED, **kw)
    return (y, h, c) + tuple(grads[:8])


def cpu_run(*args):
    return core_run("cpu", *args)


def gpu_run(*args):
    return core_run("cuda", *args)


def assert_close(got, want, dtype, names):
    for name, g, w in zip(names, got, want):
        if w is None:
            assert g is None, name
            continue
        assert g.shape == w.shape and g.dtype == w.dtype, name
        assert max_rel_error(g, w) <= TOLERANCE[dtype], f"{name}: {max_rel_error(g, w):.3g}"


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("zero_output", [False, True], ids=["carry", "zero_output"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_gpu_matches_cpu_forward_and_gradients(rng, variant, dtype, zero_output, masked):
    peephole, source = variant
    arrays, grads_in = case(rng, peephole, dtype, masked=masked)
    for training in (False, True):
        want = cpu_run(arrays, grads_in, peephole, source, zero_output, training, {})
        got = gpu_run(arrays, grads_in, peephole, source, zero_output, training, {})
        assert_close(got, want, dtype, ("y", "h_n", "c_n") + (GRAD_NAMES if training else ()))


@requires_gpu
@pytest.mark.parametrize("rates", RATES.values(), ids=RATES)
def test_gpu_draws_the_cpus_masks(rng, variant, rates):
    """Training with every regularizer under one seed: identical masks, so identical results."""
    peephole, source = variant
    arrays, grads_in = case(rng, peephole, np.float32)
    want = cpu_run(arrays, grads_in, peephole, source, False, True, rates)
    got = gpu_run(arrays, grads_in, peephole, source, False, True, rates)
    assert_close(got, want, np.float32, ("y", "h_n", "c_n") + GRAD_NAMES)
    # inference: no dropout, zoneout as its expectation
    want = cpu_run(arrays, grads_in, peephole, source, False, False, rates)
    got = gpu_run(arrays, grads_in, peephole, source, False, False, rates)
    assert_close(got, want, np.float32, ("y", "h_n", "c_n"))


@requires_gpu
@pytest.mark.parametrize(("B", "T", "I", "H"), [(1, 1, 1, 1), (3, 17, 33, 65), (64, 20, 128, 256)])
def test_gpu_matches_cpu_at_other_sizes(rng, B, T, I, H):
    """Odd sizes (one element, H not a multiple of anything) and a medium one, float32, diagonal peepholes."""
    arrays, grads_in = case(rng, "diagonal", np.float32, B=B, T=T, I=I, H=H, masked=B >= 3 and T >= 2)
    want = cpu_run(arrays, grads_in, "diagonal", "current", False, True, dict(zoneout_h=0.1, recurrent_dropout=0.2))
    got = gpu_run(arrays, grads_in, "diagonal", "current", False, True, dict(zoneout_h=0.1, recurrent_dropout=0.2))
    assert_close(got, want, np.float32, ("y", "h_n", "c_n") + GRAD_NAMES)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("zero_output", [False, True], ids=["carry", "zero_output"])
@pytest.mark.parametrize("rates", [{}, dict(dropout=0.2, recurrent_dropout=0.3, weight_drop=0.4)],
                         ids=["plain", "regularized"])
def test_gpu_matches_cpu_with_a_projection(rng, variant, dtype, zero_output, rates):
    """LSTMP (P=3 < H=8): h_t = (o ⊙ tanh(c_t)) W_hr, and ∂L/∂W_hr (zoneout is not defined with it)."""
    peephole, source = variant
    arrays, grads_in = case(rng, peephole, dtype, P=3)
    for training in (False, True):
        want = cpu_run(arrays, grads_in, peephole, source, zero_output, training, rates)
        got = gpu_run(arrays, grads_in, peephole, source, zero_output, training, rates)
        assert_close(got, want, dtype, ("y", "h_n", "c_n") + (GRAD_NAMES if training else ()))


@requires_gpu
def test_gpu_rejects_bad_arguments(rng):
    arrays, _ = case(rng, "diagonal", np.float32)
    with pytest.raises(ValueError, match="x"):
        _core.cuda_forward(**{**arrays, "x": arrays["x"][:, :, :3].copy()})
    with pytest.raises(ValueError, match="zoneout"):
        P = 3
        U = rng.standard_normal((P, 32)).astype(np.float32)
        W_hr = rng.standard_normal((8, P)).astype(np.float32)
        _core.cuda_forward(**{**arrays, "U": U, "h0": None, "W_hr": W_hr}, zoneout_h=0.1)


# ---- device="cuda" in lstm_native.ops, the layers and Sequential ----

OPS_CASES = {  # (peephole, output_peephole_source, projection size, rates)
    "diagonal": ("diagonal", "current", None, {}),
    "full-previous-regularized": ("full", "previous", None, support.RATES["all"]),
    "none-projected-dropout": (None, "current", 3, dict(dropout=0.2, recurrent_dropout=0.3, weight_drop=0.4)),
}


def ops_run(arrays, grads_in, peephole, source, rates, device):
    weights = [arrays[k] for k in ("W", "U", "b", "p")]
    out = ops.lstm_forward(arrays["x"], *weights, W_hr=arrays.get("W_hr"), peephole=peephole,
                           output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], mask=arrays["mask"],
                           training=True, seed=SEED, device=device, **rates)
    inference = ops.lstm_forward(arrays["x"], *weights, W_hr=arrays.get("W_hr"), peephole=peephole,
                                 output_peephole_source=source, h0=arrays["h0"], c0=arrays["c0"], mask=arrays["mask"],
                                 device=device, **rates)
    grads = ops.lstm_backward(out.context, dy=grads_in["dy"], dh=grads_in["dh_n"], dc=grads_in["dc_n"])
    return out[:3] + inference[:3] + tuple(grads), out.context


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", OPS_CASES)
def test_ops_on_cuda_match_the_cpu(rng, dtype, name):
    peephole, source, P, rates = OPS_CASES[name]
    arrays, grads_in = case(rng, peephole, dtype, P=P)
    want, _ = ops_run(arrays, grads_in, peephole, source, rates, "cpu")
    got, context = ops_run(arrays, grads_in, peephole, source, rates, "cuda")
    assert_close(got, want, dtype, ("y", "h", "c", "y_inference", "h_inference", "c_inference") + GRAD_NAMES)
    assert context.device == "cuda" and context.consumed
    with pytest.raises(ValueError, match="consumed"):
        ops.lstm_backward(context, dy=grads_in["dy"])


def cuda_training_forward(arrays, **rates):
    """cuda_forward(training=True) -> (y, h, c, workspace) and the keyword arguments of its cuda_backward."""
    y, h, c, workspace = _core.cuda_forward(**arrays, training=True, seed=SEED, **rates)
    assert isinstance(workspace, _core.CudaWorkspace)
    B, T = arrays["x"].shape[:2]
    backward_args = dict({k: arrays[k] for k in ("W", "U", "b", "p", "mask")}, workspace=workspace, batch=B, time=T,
                         seed=SEED, **rates)
    return (y, h, c, workspace), backward_args


@requires_gpu
def test_cuda_backward_consumes_its_workspace_once(rng):
    arrays, grads_in = case(rng, "diagonal", np.float32)
    (y, h, c, _), backward_args = cuda_training_forward(arrays)
    with pytest.raises(ValueError, match="dy"):  # a bad argument leaves the workspace usable
        _core.cuda_backward(**backward_args, dy=grads_in["dy"][:, :-1].copy())
    with pytest.raises(TypeError, match="dy"):
        _core.cuda_backward(**backward_args, dy=grads_in["dy"].astype(np.float64))
    got = _core.cuda_backward(**backward_args, **grads_in)
    want = cpu_run(arrays, grads_in, "diagonal", "current", False, True, {})
    assert_close((y, h, c) + tuple(got), want, np.float32, ("y", "h_n", "c_n") + GRAD_NAMES)
    with pytest.raises(ValueError, match="consumed"):
        _core.cuda_backward(**backward_args, **grads_in)


@requires_gpu
@pytest.mark.parametrize(("edit", "name"), [
    (dict(batch=4), "batch"), (dict(time=7), "time"), (dict(seed=SEED + 1), "seed"),
    (dict(dropout=0.1), "dropout"), (dict(zoneout_c=0.2), "zoneout_c"), (dict(peephole="none", p=None), "peephole"),
    (dict(output_peephole_source="previous"), "output_peephole_source"),
    (dict(zero_output_for_mask=True), "zero_output_for_mask"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_cuda_backward_refuses_a_workspace_made_for_other_arguments(rng, edit, name):
    """A workspace belongs to the dims, configuration and regularization of its forward: another of them is
    refused (naming it) before the workspace is touched, which stays usable."""
    arrays, grads_in = case(rng, "diagonal", np.float32)
    _, backward_args = cuda_training_forward(arrays, zoneout_h=0.1)
    with pytest.raises(ValueError, match=f"^{name}: .*the workspace was made by a cuda_forward"):
        _core.cuda_backward(**{**backward_args, **edit}, **grads_in)
    got = _core.cuda_backward(**backward_args, **grads_in)
    assert_close(got, cpu_run(arrays, grads_in, "diagonal", "current", False, True, dict(zoneout_h=0.1))[3:],
                 np.float32, GRAD_NAMES)


@requires_gpu
def test_cuda_backward_refuses_a_workspace_of_other_sizes_or_dtype(rng):
    arrays, grads_in = case(rng, "diagonal", np.float32)
    _, backward_args = cuda_training_forward(arrays)
    wider = case(rng, "diagonal", np.float32, I=9)[0]
    with pytest.raises(ValueError, match="^W \\(input size\\): 9, but the workspace"):
        _core.cuda_backward(**{**backward_args, "W": wider["W"]}, **grads_in)
    as_float64 = {k: backward_args[k].astype(np.float64) for k in ("W", "U", "b", "p")}
    with pytest.raises(ValueError, match="workspace: made by a cuda_forward of another dtype"):
        _core.cuda_backward(**{**backward_args, **as_float64})
    _core.cuda_backward(**backward_args, **grads_in)  # still usable


@requires_gpu
def test_racing_cuda_backwards_consume_the_workspace_once(rng):
    arrays, grads_in = case(rng, "diagonal", np.float32, B=16, T=40, I=32, H=64)
    _, backward_args = cuda_training_forward(arrays)
    outcomes, barrier = [], threading.Barrier(4)

    def run():
        barrier.wait()
        try:
            outcomes.append(len(_core.cuda_backward(**backward_args, **grads_in)))
        except ValueError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(8) == 1, outcomes
    assert all("consumed" in outcome for outcome in outcomes if outcome != 8)


@requires_gpu
def test_cuda_forward_without_return_sequences(rng):
    arrays, _ = case(rng, "diagonal", np.float32)
    y, h, c, workspace = _core.cuda_forward(**arrays)
    none, h_final, c_final, no_workspace = _core.cuda_forward(**arrays, return_sequences=False)
    assert none is None and workspace is None and no_workspace is None
    assert_close((h_final, c_final), (h, c), np.float32, ("h_n", "c_n"))


@requires_cuda_build
def test_cuda_functions_refuse_workspaces_of_the_wrong_kind(rng):
    """Checked before any device work: cuda_forward allocates its own workspace (none is given), and
    cuda_backward takes only a CudaWorkspace."""
    arrays, grads_in = case(rng, "diagonal", np.float32)
    with pytest.raises(ValueError, match="workspace: cuda_forward allocates"):
        _core.cuda_forward(**arrays, training=True, workspace=np.zeros(10_000, np.float32))
    B, T = arrays["x"].shape[:2]
    cpu_workspace = _core.forward(**arrays, training=True)[3]
    with pytest.raises(TypeError, match="workspace: expected the CudaWorkspace of cuda_forward"):
        _core.cuda_backward(**{k: arrays[k] for k in ("W", "U", "b", "p", "mask")}, **grads_in,
                            workspace=cpu_workspace, batch=B, time=T)


def small_model(device, seed):
    return Sequential([LSTM(8, input_shape=(6, 4), return_sequences=True, recurrent_dropout=0.2, seed=seed),
                       Bidirectional(LSTM(5, zoneout_h=0.1, seed=seed + 1)),
                       Dense(3, activation="softmax")], device=device)


@requires_gpu
def test_sequential_fits_on_cuda_as_on_the_cpu(rng):
    """Two epochs from the same weights, with the layers' regularizers seeded alike: the same losses."""
    x = rng.standard_normal((40, 6, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]
    models = {device: small_model(device, seed=7) for device in ("cpu", "cuda")}
    models["cuda"].set_weights(models["cpu"].get_weights())
    losses = {}
    for device, model in models.items():
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        losses[device] = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert len(losses["cuda"]) == 2
    assert max_rel_error(losses["cuda"], losses["cpu"]) <= 1e-4
    assert max_rel_error(models["cuda"].predict(x), models["cpu"].predict(x)) <= 1e-4


# ---- arrays on the GPU through DLPack ----

class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype, _capsule_new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype, _capsule_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
_DLTENSOR = ctypes.create_string_buffer(b"dltensor")  # a capsule keeps a pointer to its name


class FakeCudaArray:
    """A DLPack producer (of a capsule without a destructor) that claims CUDA memory it does not have: every
    instance has a defect that the binding must find before any device work. It records the stream it is
    given and its deleter's calls; ``capsule`` is the capsule it returned."""

    def __init__(self, shape, bits=32, strides=None, byte_offset=0, device_type=2):
        self.shape = (ctypes.c_int64 * len(shape))(*shape)
        self.strides = None if strides is None else (ctypes.c_int64 * len(strides))(*strides)
        self.deleted, self.streams, self.capsule = 0, [], None
        self.deleter = _DELETER(self._delete)
        self.managed = _DLManagedTensor()
        tensor = self.managed.dl_tensor
        tensor.data, tensor.device, tensor.ndim = 1 << 20, _DLDevice(device_type, 0), len(shape)
        tensor.dtype, tensor.shape, tensor.byte_offset = _DLDataType(2, bits, 1), self.shape, byte_offset
        tensor.strides = self.strides
        self.managed.deleter = self.deleter

    def _delete(self, managed):
        self.deleted += 1

    def __dlpack_device__(self):
        return (self.managed.dl_tensor.device.device_type, 0)

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        self.capsule = _capsule_new(ctypes.addressof(self.managed), _DLTENSOR, None)
        return self.capsule


@requires_cuda_build
@pytest.mark.parametrize(("fake", "error", "match"), [
    (dict(bits=64), TypeError, "x: expected dtype float32"),
    (dict(strides=(24, 1, 6)), ValueError, "x: must be C-contiguous"),
    (dict(byte_offset=2), ValueError, "x: must be aligned"),
], ids=["dtype", "strides", "alignment"])
def test_dlpack_arrays_are_checked_taken_and_handed_back(rng, fake, error, match):
    """The capsule protocol: __dlpack__(stream=1) (the legacy default stream), the capsule renamed
    "used_dltensor", the deleter called once; and a defect found before any device work."""
    arrays, _ = case(rng, "diagonal", np.float32)
    x = FakeCudaArray(arrays["x"].shape, **fake)
    with pytest.raises(error, match=match):
        _core.cuda_forward(**{**arrays, "x": x})
    assert x.streams == [1] and x.deleted == 1
    assert _capsule_name(x.capsule) == b"used_dltensor"


@requires_cuda_build
def test_dlpack_arrays_off_the_gpu_are_refused(rng):
    arrays, _ = case(rng, "diagonal", np.float32)
    cpu = FakeCudaArray(arrays["h0"].shape, device_type=1)
    with pytest.raises(TypeError, match="h0: expected a numpy array or an array on a CUDA device"):
        _core.cuda_forward(**{**arrays, "h0": cpu})
    assert cpu.streams == [] and cpu.deleted == 0  # never exported
    with pytest.raises(TypeError, match="x: expected a numpy array or a CUDA array"):
        _core.cuda_forward(**{**arrays, "x": arrays["x"].tolist()})


def test_ops_on_the_cpu_refuse_gpu_arrays(rng):
    arrays, _ = case(rng, "diagonal", np.float32)
    x = FakeCudaArray(arrays["x"].shape)
    with pytest.raises(TypeError, match="x: an array on a CUDA device needs device='cuda'"):
        ops.lstm_forward(x, arrays["W"], arrays["U"], arrays["b"], arrays["p"])
    assert x.streams == []


@requires_gpu
def test_torch_cuda_tensors_are_read_in_place(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA")
    arrays, grads_in = case(rng, "diagonal", np.float32)
    on_gpu = {k: torch.from_numpy(arrays[k]).cuda() for k in ("x", "h0", "c0")}
    weights = [arrays[k] for k in ("W", "U", "b", "p")]
    for training in (False, True):
        want = ops.lstm_forward(arrays["x"], *weights, h0=arrays["h0"], c0=arrays["c0"], mask=arrays["mask"],
                                training=training, device="cuda")
        got = ops.lstm_forward(on_gpu["x"], *weights, h0=on_gpu["h0"], c0=on_gpu["c0"], mask=arrays["mask"],
                               training=training, device="cuda")
        assert_close(got[:3], want[:3], np.float32, ("y", "h", "c"))
    dy = torch.from_numpy(grads_in["dy"]).cuda()
    assert_close(ops.lstm_backward(got.context, dy=dy), ops.lstm_backward(want.context, dy=grads_in["dy"]),
                 np.float32, GRAD_NAMES)
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        _core.cuda_forward(**{**arrays, "x": on_gpu["x"].double()})
    with pytest.raises(ValueError, match="x: must be C-contiguous"):
        _core.cuda_forward(**{**arrays, "x": on_gpu["x"].transpose(0, 1).contiguous().transpose(0, 1)})
    if torch.cuda.device_count() > 1:
        with pytest.raises(ValueError, match="x: on CUDA device 1"):
            _core.cuda_forward(**{**arrays, "x": on_gpu["x"].to("cuda:1")})
    with pytest.raises(TypeError, match="x: expected a numpy array or an array on a CUDA device"):
        _core.cuda_forward(**{**arrays, "x": torch.from_numpy(arrays["x"])})
