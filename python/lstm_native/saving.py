"""Models in files: one safetensors file per model (docs/DESIGN.md §5).

The tensors of a file:

    layers.<k>.<weight>     the weights of layer k of ``model.layers`` under their Variable names (kernel,
                            recurrent_kernel, bias, peephole, embeddings); a Bidirectional's under
                            layers.<k>.forward.<weight> and layers.<k>.backward.<weight>
    optimizer.<name>        the optimizer's state, ``Optimizer.variables()``: iterations, learning_rate, and
                            each weight's slots as optimizer.<weight's tensor name>/<slot> (e.g.
                            optimizer.layers.0.kernel/momentum), so that the state fits any model of the
                            architecture, whatever its layers' names
    training_state.<n>      the arrays of a checkpoint's training state (e.g. EarlyStopping's best weights),
                            each written in the training_state JSON as {"__tensor__": "training_state.<n>"}
                            (load_model and load_weights leave them out)

and its header metadata (strings, JSON where noted):

    format, format_version  "lstm_native", "1"
    config                  JSON, ``Sequential.get_config()``                      model.save
    build_input_shape       JSON, the input shape the model was built for          model.save
    compile                 JSON, optimizer, loss, metrics, loss weight           model.save of a compiled model
    training_state          JSON, the epoch, generator and callback states         BackupAndRestore

Saving writes a temporary file next to the target, flushes it to disk and renames it over the target: a
crash leaves the old file or the new one, never a mix (lstm_native._files: permissions, symlinks, special
files, stale temporaries). A name with another format's extension (.keras, .h5, ...) is refused. Loading reads
the whole file (a regular file only; not memory-mapped) and checks the format and version, the JSON (the
layers, losses, metrics and optimizers it describes are rebuilt from the library's own classes only), and
every tensor's name, dtype, shape and finiteness before it changes a model; a bad file raises ValueError
naming the file. What a file may hold (keys, values, limits) is lstm_native.file_rules, which the C++ loader
enforces too.
"""

from __future__ import annotations

import contextlib
import io
import json
import reprlib
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import safetensors
from safetensors import SafetensorError

from . import _files, _serialization, file_rules, layers, losses, metrics, optimizers
from .layers.base import zero_initialized
from .variables import Variable

__all__ = ["FORMAT", "FORMAT_VERSION", "save_model", "read_model", "save_weights", "load_weights",
           "save_checkpoint", "read_checkpoint", "named_parts", "check_file_name"]

FORMAT = "lstm_native"
FORMAT_VERSION = "1"
_DTYPE_CODES: Dict[np.dtype, str] = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
_DTYPES = {code: dtype.newbyteorder("<") for dtype, code in _DTYPE_CODES.items()}  # safetensors: little-endian
# What a malformed config makes the constructors raise.
_CONFIG_ERRORS = (TypeError, ValueError, KeyError, OverflowError, MemoryError)


# ------------------------------------------------------------------------------------------------ saving

def save_model(model, filepath, include_optimizer: bool = True) -> None:
    """Writes ``model`` (built) to ``filepath``: config, weights and, when ``include_optimizer`` and the
    model is compiled, the compile arguments and the optimizer's state (so that training resumes)."""
    path = _files.user_path(filepath)
    _require_built(model, "save")
    with_optimizer = include_optimizer and model.compiled
    _write_atomically(path, _tensors(model, with_optimizer), _model_header(model, path, with_optimizer))


def model_bytes(model, name: str) -> bytes:
    """The file ``save_model(model, path, include_optimizer=False)`` writes, as bytes (what the C++ loader reads
    from memory); ``name`` stands for the file in errors."""
    _require_built(model, "serialize")
    buffer = io.BytesIO()
    _write_safetensors(buffer, _tensors(model, with_optimizer=False), _model_header(model, name, False))
    return buffer.getvalue()


def _model_header(model, path: str, with_optimizer: bool) -> Dict[str, str]:
    # The input shape the config declares, where it declares one: a model built for longer or shorter sequences
    # (build((None, 9, 3)) under Input((None, 3))) has the same weights, and the loaders require that shape.
    input_shape = model._declared_input_shape() or model._built_shape
    metadata = {"config": _checked_json(path, "the model", model.get_config, _rebuild_layers),
                "build_input_shape": json.dumps(list(input_shape))}
    if with_optimizer:
        metadata["compile"] = _checked_json(path, "the compile arguments", lambda: _compile_config(model),
                                            _compile_arguments, " (include_optimizer=False leaves them out)")
    return _header(metadata)


def save_weights(model, filepath) -> None:
    """Writes the weights of ``model`` only (no config, no optimizer state), for :func:`load_weights`."""
    _require_built(model, "save the weights of")
    _write_atomically(filepath, _tensors(model, with_optimizer=False), _header({}))


def save_checkpoint(model, filepath, training_state: dict) -> None:
    """Writes the weights, the optimizer's state (if compiled) and ``training_state`` (JSON values and numpy
    arrays, the arrays as tensors of their own): what BackupAndRestore resumes an interrupted fit from.
    :func:`read_checkpoint` reads it back."""
    _require_built(model, "save a checkpoint of")
    tensors = _tensors(model, with_optimizer=model.compiled)
    header = _header({"training_state": json.dumps(_state_without_arrays(training_state, tensors))})
    _write_atomically(filepath, tensors, header)


_STATE_TENSOR = "__tensor__"  # {"__tensor__": name} in a training state stands for the tensor of that name
_STATE_TENSOR_PREFIX = "training_state."


def _state_without_arrays(state, tensors: Dict[str, np.ndarray]):
    """``state`` with each numpy array replaced by a reference to a new tensor, added to ``tensors``."""
    if isinstance(state, np.ndarray):
        name = f"{_STATE_TENSOR_PREFIX}{len(tensors)}"  # tensors grows by one each time: a new name
        tensors[name] = state
        return {_STATE_TENSOR: name}
    if isinstance(state, dict):
        return {key: _state_without_arrays(value, tensors) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return [_state_without_arrays(value, tensors) for value in state]
    return state


def _state_with_arrays(file: "_File", state):
    """The inverse of :func:`_state_without_arrays`: each reference replaced by the file's tensor."""
    if isinstance(state, dict):
        if _STATE_TENSOR in state:
            name = state[_STATE_TENSOR]
            if len(state) != 1 or not (isinstance(name, str) and name.startswith(_STATE_TENSOR_PREFIX)
                                       and name in file.names):
                raise file.error(f"training_state: {reprlib.repr(state)} refers to no training_state tensor")
            return file.tensor(name)
        return {key: _state_with_arrays(file, value) for key, value in state.items()}
    if isinstance(state, list):
        return [_state_with_arrays(file, value) for value in state]
    return state


def _require_built(model, action: str) -> None:
    if not model.built:
        raise ValueError(f"cannot {action} a model that is not built: give its first layer an input_shape, or "
                         "call build() or fit() first")


def _header(metadata: Dict[str, str]) -> Dict[str, str]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}


def _checked_json(path: str, what: str, make, rebuild, hint: str = "") -> str:
    """``make()`` as JSON, once ``rebuild`` (what loading does with it) has worked on it: what saves, loads."""
    try:
        text = json.dumps(make())
        rebuild(json.loads(text))
    except (*_CONFIG_ERRORS, NotImplementedError) as error:  # NotImplementedError: a schedule's get_config
        raise ValueError(f"{path}: cannot save {what}: {error}{hint}") from None
    return text


def _compile_config(model) -> dict:
    return {"optimizer": optimizers.serialize(model.optimizer), "loss": _serialization.serialize(model.loss),
            "metrics": _metric_configs(model._metric_identifiers),
            "weighted_metrics": _metric_configs(model._weighted_metric_identifiers),
            "loss_weights": None if model.loss_weights is None else model._loss_weight}


def _metric_configs(identifiers) -> list:
    return [m if isinstance(m, str) else _serialization.serialize(metrics.get(m)) for m in identifiers]


def _rebuild_layers(config: dict) -> list:
    """The layers of a model config, not built (so without allocating or drawing anything); the config must
    also pass the rules of what a file may hold (lstm_native.file_rules)."""
    file_rules.check_model_structure(config)
    rebuilt = [layers.deserialize(entry) for entry in config["layers"]]
    file_rules.check_layers(config)
    return rebuilt


def named_parts(model):
    """(name prefix, layer) of each layer that holds weights of its own: layer k of model.layers as
    "layers.<k>.", a Bidirectional's two directions as "layers.<k>.forward." and "layers.<k>.backward."."""
    for k, layer in enumerate(model.layers):
        if isinstance(layer, layers.Bidirectional):
            yield f"layers.{k}.forward.", layer.forward_layer
            yield f"layers.{k}.backward.", layer.backward_layer
        else:
            yield f"layers.{k}.", layer


def _weights_by_name(model) -> Dict[str, Variable]:
    """The model's weights under their tensor names, layers.<k>[.forward|.backward].<weight>."""
    return {prefix + variable.name: variable for prefix, part in named_parts(model) for variable in part.weights}


def _tensors(model, with_optimizer: bool) -> Dict[str, np.ndarray]:
    weights = _weights_by_name(model)
    tensors = {name: variable.value for name, variable in weights.items()}
    if with_optimizer:
        tensors.update(_optimizer_tensors(model.optimizer, weights))
    return tensors


def _optimizer_tensors(optimizer, weights: Dict[str, Variable]) -> Dict[str, np.ndarray]:
    """optimizer.iterations, optimizer.learning_rate and optimizer.<weight's tensor name>/<slot>."""
    tensor_names = {variable.path: name for name, variable in weights.items()}
    tensors = {}
    for key, value in optimizer.variables().items():
        path, _, slot = key.rpartition("/")
        if not path:  # iterations, learning_rate
            tensors[f"optimizer.{key}"] = value
        elif path in tensor_names:  # (slots of weights no longer in the model are left out)
            tensors[f"optimizer.{tensor_names[path]}/{slot}"] = value
    return tensors


def check_file_name(filepath) -> None:
    """Refuses a name whose extension means another format (``m.keras``, ``m.h5``, ...): what every save
    entry point (save, save_weights, the checkpoint callbacks) writes is a safetensors file."""
    path = _files.user_path(filepath)
    _files.check_suffix(path, ".safetensors",
                        f"{FORMAT} writes models in the safetensors format: name the file *.safetensors. A Keras "
                        "file comes from lstm_native.interop.to_keras(model), saved by Keras (.save('m.keras')); "
                        "an ONNX file from lstm_native.onnx_export.export(model, 'm.onnx')")


def _write_atomically(filepath, tensors: Dict[str, np.ndarray], header: Dict[str, str]) -> None:
    check_file_name(filepath)
    _files.replace_file(filepath, lambda file: _write_safetensors(file, tensors, header))


def _write_safetensors(file, tensors: Dict[str, np.ndarray], metadata: Dict[str, str]) -> None:
    """The safetensors format (https://huggingface.co/docs/safetensors): the header's size (8 bytes, little
    endian), the JSON header (each tensor's dtype, shape and byte range, and "__metadata__") padded with spaces
    to a multiple of 8 bytes, then the tensors' bytes. Written tensor by tensor, without a copy of the model
    (safetensors' own writer would rename its own temporary file over the one being written)."""
    arrays = {name: np.require(value, np.asarray(value).dtype.newbyteorder("<"), "C") for name, value in tensors.items()}
    header: Dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, array in arrays.items():
        header[name] = {"dtype": _DTYPE_CODES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    file.write(len(text).to_bytes(8, "little") + text)
    for array in arrays.values():
        # ndarray has the buffer protocol; numpy's stubs declare its __buffer__ for Python 3.12+ only.
        file.write(memoryview(array.reshape(-1)).cast("B"))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- loading

class _File:
    """An open file of this format (format and version checked); its errors name the file."""

    def __init__(self, path: str, tensors: Dict[str, dict], metadata: Dict[str, str]):
        self.path = path
        self._tensors = tensors  # name -> safetensors.deserialize's {"dtype", "shape", "data"}
        self.names = set(tensors)
        self.metadata = metadata
        found = self.metadata.get("format"), self.metadata.get("format_version")
        if found[0] != FORMAT:
            raise self.error(f"not an {FORMAT} file (its header's format is {found[0]!r})")
        if found[1] != FORMAT_VERSION:
            raise self.error(f"format version {found[1]!r}; this version of {FORMAT} reads version "
                             f"{FORMAT_VERSION}")
        try:
            file_rules.check_metadata_keys(self.metadata)
        except ValueError as error:
            raise self.error(str(error)) from None

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.path}: {message}")

    @contextlib.contextmanager
    def checking(self, what: str):
        """Turns the errors that bad values make constructors and checks raise into this file's ValueError."""
        try:
            yield
        except _CONFIG_ERRORS as error:
            raise self.error(f"{what}: {error}") from None

    def json(self, key: str, required: bool = True):
        if key not in self.metadata:
            if required:
                raise self.error(f"the header has no {key!r} entry")
            return None
        try:
            return json.loads(self.metadata[key], parse_constant=_refuse_non_finite, parse_float=_finite_float)
        except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError; too deep a nesting
            raise self.error(f"header entry {key!r} is not valid JSON ({type(error).__name__}: {error})") from None

    def check_tensor(self, name: str, shape: tuple, dtype, what: str) -> None:
        tensor = self._tensors[name]
        found_shape, found_code = tuple(tensor["shape"]), tensor["dtype"]
        expected_code = _DTYPE_CODES[np.dtype(dtype)]
        if found_code != expected_code:
            raise self.error(f"tensor {name} ({what}) has dtype {found_code}, expected {expected_code} "
                             f"({np.dtype(dtype).name})")
        if found_shape != tuple(shape):
            raise self.error(f"tensor {name} ({what}) has shape {found_shape}, expected {tuple(shape)}")

    def tensor(self, name: str) -> np.ndarray:
        """The tensor (of a dtype that check_tensor has checked)."""
        tensor = self._tensors[name]
        return np.frombuffer(tensor["data"], dtype=_DTYPES[tensor["dtype"]]).reshape(tensor["shape"])

    def finite_tensor(self, name: str, what: str, allow_nonfinite: bool = False) -> np.ndarray:
        """The tensor, which must hold finite float32 values (the C++ loader's float32 too) unless
        ``allow_nonfinite``."""
        value = self.tensor(name)
        bad = ~(np.abs(value) <= np.finfo(np.float32).max)  # NaN compares false
        if bad.any() and not allow_nonfinite:
            raise self.error(f"tensor {name} ({what}) holds {int(bad.sum())} values that are not finite float32 "
                             f"numbers (the first: {value[bad].flat[0]!r}); load_model(..., allow_nonfinite=True) "
                             "accepts them")
        return value


def _refuse_non_finite(constant: str):
    raise ValueError(f"{constant} is not a JSON number (non-finite values are not allowed)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"{text[:40]} is beyond the range of a float64")
    return value


@contextlib.contextmanager
def _open(filepath):
    """The file, read whole (see lstm_native._files.read_regular_file: a regular file only, never mapped)."""
    path = _files.user_path(filepath)
    data = _files.read_regular_file(path)
    try:
        tensors = dict(safetensors.deserialize(data))
    except SafetensorError as error:
        raise ValueError(f"{path}: not a valid safetensors file ({error})") from None
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])  # valid: deserialize has checked it
    yield _File(path, tensors, header.get("__metadata__") or {})


class _Restore(NamedTuple):
    """Checked values, ready to go into a model: applying them cannot fail."""

    weights: List[Tuple[Variable, np.ndarray]]
    optimizer_state: Optional[Tuple[optimizers.Optimizer, Dict[str, np.ndarray]]]  # (the optimizer, its state)

    def apply(self) -> None:
        if self.optimizer_state is not None:
            optimizer, state = self.optimizer_state
            optimizer.set_state(state)
        for variable, value in self.weights:
            variable.assign(value)


def _read(file: _File, model, optimizer=None, allow_nonfinite: bool = False) -> _Restore:
    """Checks the file's tensors against the model's weights (and, given an optimizer, its state tensors
    against the model and that optimizer) and reads them. Without an optimizer, optimizer.* is left out.
    Weights and optimizer slots must be finite unless ``allow_nonfinite``; the optimizer's learning rate
    must be, always."""
    weights = _weights_by_name(model)
    weight_names = {n for n in file.names if n.startswith("layers.")}
    state_names = {n for n in file.names if n.startswith("optimizer.")}
    training_state_names = {n for n in file.names if n.startswith(_STATE_TENSOR_PREFIX)}  # read_checkpoint's
    unknown = sorted(file.names - weight_names - state_names - training_state_names)
    if unknown:
        raise file.error(f"unexpected tensors {unknown[:5]} (names start with 'layers.', 'optimizer.' or "
                         f"'{_STATE_TENSOR_PREFIX}')")
    missing, unexpected = sorted(weights.keys() - weight_names), sorted(weight_names - weights.keys())
    if missing:
        raise file.error(f"lacks the tensors {missing[:5]} of the model's weights "
                         f"{[weights[n].path for n in missing[:5]]}: not a file of this architecture")
    if unexpected:
        raise file.error(f"has tensors {unexpected[:5]} that the model has no weights for: not a file of this "
                         "architecture")
    for name, variable in weights.items():
        file.check_tensor(name, variable.shape, variable.dtype, f"the model's {variable.path}")
    state = (None if optimizer is None else
             (optimizer, _read_optimizer_state(file, weights, optimizer, state_names, allow_nonfinite)))
    return _Restore([(variable, file.finite_tensor(name, f"the model's {variable.path}", allow_nonfinite))
                     for name, variable in weights.items()], state)


def _read_optimizer_state(file: _File, weights: Dict[str, Variable], optimizer, names,
                          allow_nonfinite: bool) -> Dict[str, np.ndarray]:
    """The optimizer's state (Optimizer.variables() keys) from the optimizer.* tensors."""
    state: Dict[str, np.ndarray] = {}
    for name in sorted(names):
        key = name[len("optimizer."):]
        if key in ("iterations", "learning_rate"):
            file.check_tensor(name, (), np.int64 if key == "iterations" else np.float32, "the optimizer's")
            state[key] = file.tensor(name) if key == "iterations" else file.finite_tensor(name, "the optimizer's")
            continue
        weight, _, slot = key.rpartition("/")
        variable = weights.get(weight)
        if variable is None:
            raise file.error(f"tensor {name}: optimizer state of a weight the model does not have")
        what = f"the optimizer's, of {variable.path}"
        file.check_tensor(name, variable.shape, variable.dtype, what)
        state[f"{variable.path}/{slot}"] = file.finite_tensor(name, what, allow_nonfinite)
    if "iterations" in state and state["iterations"] < 0:
        raise file.error(f"optimizer.iterations is negative ({state['iterations']})")
    # set_state checks the slot names; a copy of the optimizer tries first, so the real one changes only later
    with file.checking("the optimizer state"):
        type(optimizer).from_config(optimizer.get_config()).set_state(state)
    return state


def _compile_arguments(config) -> dict:
    """model.compile's arguments from a saved compile config (files written before weighted_metrics and
    loss_weights were saved lack them)."""
    optional = {"weighted_metrics", "loss_weights"}
    if not (isinstance(config, dict) and {"optimizer", "loss", "metrics"} <= set(config)
            <= {"optimizer", "loss", "metrics"} | optional
            and all(isinstance(config.get(key, []), list) for key in ("metrics", "weighted_metrics"))):
        raise ValueError("expected {'optimizer': ..., 'loss': ..., 'metrics': [...], 'weighted_metrics': [...], "
                         "'loss_weights': number or null}")
    return {"optimizer": optimizers.get(config["optimizer"]), "loss": losses.get(config["loss"]),
            "metrics": [_metric(identifier) for identifier in config["metrics"]],
            "weighted_metrics": [_metric(identifier) for identifier in config.get("weighted_metrics", [])],
            "loss_weights": config.get("loss_weights")}


def _metric(identifier):
    """A saved metric: a name (kept as such: compile resolves "accuracy" from the data) or a metric config."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return identifier
    metric = metrics.get(identifier)  # raises ValueError for an unknown name, class or anything else
    return identifier if isinstance(identifier, str) else metric


def read_model(filepath, from_config, compile: bool = True, allow_nonfinite: bool = False):
    """The model that :func:`save_model` wrote, made by ``from_config(config)`` (the model class's, which this
    module does not know); ``lstm_native.models.load_model`` is the public entry point."""
    with _open(filepath) as file:
        config = file.json("config")
        input_shape = file.json("build_input_shape")
        with file.checking("the model config"), zero_initialized(file_rules.LIMITS["parameters"]):
            file_rules.check_model_structure(config)
            input_shape = file_rules.check_input_shape(input_shape)
            model = from_config(config)  # the constructors' checks, then the file's rules
            file_rules.check_layers(config)
            if not model.built:
                model.build(input_shape)
            elif model._built_shape != input_shape:
                raise ValueError(f"build_input_shape {list(input_shape)} is not the input shape that the config "
                                 f"declares, {list(model._built_shape)}")
        compile_config = file.json("compile", required=False) if compile else None
        if compile_config is not None:
            with file.checking("the compile config"):
                model.compile(**_compile_arguments(compile_config))
        _read(file, model, model.optimizer, allow_nonfinite).apply()
    return model


def load_weights(model, filepath, allow_nonfinite: bool = False) -> None:
    """Loads the weights of a file from save_weights, save_model or save_checkpoint into ``model`` (built, of
    the architecture that wrote the file); the optimizer state is left out. Nothing changes on an error."""
    _require_built(model, "load weights into")
    with _open(filepath) as file:
        _read(file, model, allow_nonfinite=allow_nonfinite).apply()


def read_checkpoint(model, filepath) -> Tuple[_Restore, dict]:
    """A checkpoint of :func:`save_checkpoint`, checked against ``model`` (and its optimizer, if compiled):
    ``(restore, training_state)``; ``restore.apply()`` puts the weights and optimizer state into the model."""
    _require_built(model, "restore a checkpoint into")
    with _open(filepath) as file:
        training_state = _state_with_arrays(file, file.json("training_state"))
        return _read(file, model, model.optimizer if model.compiled else None), training_state
