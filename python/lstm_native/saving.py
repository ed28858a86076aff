"""Models in files: one safetensors file per model (DESIGN.md section 5).

The tensors of a file:

    layers.<k>.<weight>     the weights of layer k of ``model.layers`` under their Variable names (kernel,
                            recurrent_kernel, bias, peephole, embeddings); a Bidirectional's under
                            layers.<k>.forward.<weight> and layers.<k>.backward.<weight>
    optimizer.<name>        the optimizer's state, ``Optimizer.variables()``: iterations, learning_rate, and
                            each weight's slots as optimizer.<weight's tensor name>/<slot> (e.g.
                            optimizer.layers.0.kernel/momentum), so that the state fits any model of the
                            architecture, whatever its layers' names

and its header metadata (strings, JSON where noted):

    format, format_version  "lstm_native", "1"
    config                  JSON, ``Sequential.get_config()``                      model.save
    build_input_shape       JSON, the input shape the model was built for          model.save
    compile                 JSON, the optimizer, loss and metrics configs          model.save of a compiled model
    training_state          JSON, the epoch and generator states to resume from    BackupAndRestore

Saving writes a temporary file next to the target, flushes it to disk and renames it over the target: a
crash leaves the old file or the new one, never a mix (lstm_native._files: permissions, symlinks, special
files, stale temporaries). A name with another format's extension (.keras, .h5, ...) is refused. Loading reads
the whole file (a regular file only; not memory-mapped) and checks the format and version, the JSON (the
layers, losses, metrics and optimizers it describes are rebuilt from the library's own classes only), and
every tensor's name, dtype and shape before it changes a model; a bad file raises ValueError naming the file.
"""

from __future__ import annotations

import contextlib
import json
import reprlib
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import safetensors
from safetensors import SafetensorError

from . import _files, _serialization, layers, losses, metrics, models, optimizers
from .layers.base import check_shape, zero_initialized
from .variables import Variable

__all__ = ["FORMAT", "FORMAT_VERSION", "save_model", "load_model", "save_weights", "load_weights",
           "save_checkpoint", "read_checkpoint", "named_parts", "check_file_name"]

FORMAT = "lstm_native"
FORMAT_VERSION = "1"
_METADATA_KEYS = {"format", "format_version", "config", "build_input_shape", "compile", "training_state"}
_DTYPE_CODES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
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
    metadata = {"config": _checked_json(path, "the model", model.get_config, _rebuild_layers),
                "build_input_shape": json.dumps(list(model._built_shape))}
    if with_optimizer:
        metadata["compile"] = _checked_json(path, "the compile arguments", lambda: _compile_config(model),
                                            _compile_arguments, " (include_optimizer=False leaves them out)")
    _write_atomically(path, _tensors(model, with_optimizer), _header(metadata))


def save_weights(model, filepath) -> None:
    """Writes the weights of ``model`` only (no config, no optimizer state), for :func:`load_weights`."""
    _require_built(model, "save the weights of")
    _write_atomically(filepath, _tensors(model, with_optimizer=False), _header({}))


def save_checkpoint(model, filepath, training_state: dict) -> None:
    """Writes the weights, the optimizer's state (if compiled) and ``training_state`` (JSON-serializable):
    what BackupAndRestore resumes an interrupted fit from. :func:`read_checkpoint` reads it back."""
    _require_built(model, "save a checkpoint of")
    header = _header({"training_state": json.dumps(training_state)})
    _write_atomically(filepath, _tensors(model, with_optimizer=model.compiled), header)


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
            "metrics": [m if isinstance(m, str) else _serialization.serialize(metrics.get(m))
                        for m in model._metric_identifiers]}


def _rebuild_layers(config: dict) -> list:
    """The layers of a model config, not built (so without allocating or drawing anything)."""
    return [layers.deserialize(entry) for entry in config["layers"]]


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
    header, offset = {"__metadata__": metadata}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": _DTYPE_CODES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    file.write(len(text).to_bytes(8, "little") + text)
    for array in arrays.values():
        file.write(memoryview(array.reshape(-1)).cast("B"))


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
        unknown = sorted(self.metadata.keys() - _METADATA_KEYS)
        if unknown:
            raise self.error(f"unknown header entries {unknown}")

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
            return json.loads(self.metadata[key])
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
    optimizer: Optional[optimizers.Optimizer]
    optimizer_state: Optional[dict]

    def apply(self) -> None:
        if self.optimizer is not None:
            self.optimizer.set_state(self.optimizer_state)
        for variable, value in self.weights:
            variable.assign(value)


def _read(file: _File, model, optimizer=None) -> _Restore:
    """Checks the file's tensors against the model's weights (and, given an optimizer, its state tensors
    against the model and that optimizer) and reads them. Without an optimizer, optimizer.* is left out."""
    weights = _weights_by_name(model)
    weight_names = {n for n in file.names if n.startswith("layers.")}
    state_names = {n for n in file.names if n.startswith("optimizer.")}
    unknown = sorted(file.names - weight_names - state_names)
    if unknown:
        raise file.error(f"unexpected tensors {unknown[:5]} (names start with 'layers.' or 'optimizer.')")
    missing, unexpected = sorted(weights.keys() - weight_names), sorted(weight_names - weights.keys())
    if missing:
        raise file.error(f"lacks the tensors {missing[:5]} of the model's weights "
                         f"{[weights[n].path for n in missing[:5]]}: not a file of this architecture")
    if unexpected:
        raise file.error(f"has tensors {unexpected[:5]} that the model has no weights for: not a file of this "
                         "architecture")
    for name, variable in weights.items():
        file.check_tensor(name, variable.shape, variable.dtype, f"the model's {variable.path}")
    state = None if optimizer is None else _read_optimizer_state(file, weights, optimizer, state_names)
    return _Restore([(variable, file.tensor(name)) for name, variable in weights.items()], optimizer, state)


def _read_optimizer_state(file: _File, weights: Dict[str, Variable], optimizer, names) -> dict:
    """The optimizer's state (Optimizer.variables() keys) from the optimizer.* tensors."""
    state = {}
    for name in sorted(names):
        key = name[len("optimizer."):]
        if key in ("iterations", "learning_rate"):
            file.check_tensor(name, (), np.int64 if key == "iterations" else np.float32, "the optimizer's")
            state[key] = file.tensor(name)
            continue
        weight, _, slot = key.rpartition("/")
        variable = weights.get(weight)
        if variable is None:
            raise file.error(f"tensor {name}: optimizer state of a weight the model does not have")
        file.check_tensor(name, variable.shape, variable.dtype, f"the optimizer's, of {variable.path}")
        state[f"{variable.path}/{slot}"] = file.tensor(name)
    if "iterations" in state and state["iterations"] < 0:
        raise file.error(f"optimizer.iterations is negative ({state['iterations']})")
    # set_state checks the slot names; a copy of the optimizer tries first, so the real one changes only later
    with file.checking("the optimizer state"):
        type(optimizer).from_config(optimizer.get_config()).set_state(state)
    return state


def _compile_arguments(config) -> dict:
    """model.compile's arguments from a saved compile config."""
    if not (isinstance(config, dict) and set(config) == {"optimizer", "loss", "metrics"}
            and isinstance(config["metrics"], list)):
        raise ValueError("expected {'optimizer': ..., 'loss': ..., 'metrics': [...]}")
    return {"optimizer": optimizers.get(config["optimizer"]), "loss": losses.get(config["loss"]),
            "metrics": [_metric(identifier) for identifier in config["metrics"]]}


def _metric(identifier):
    """A saved metric: a name (kept as such: compile resolves "accuracy" from the data) or a metric config."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return identifier
    metric = metrics.get(identifier)  # raises ValueError for an unknown name, class or anything else
    return identifier if isinstance(identifier, str) else metric


def load_model(filepath, compile: bool = True):
    """The model that :func:`save_model` wrote; see ``lstm_native.models.load_model``."""
    with _open(filepath) as file:
        config = file.json("config")
        if not (isinstance(config, dict) and isinstance(config.get("name"), str)
                and isinstance(config.get("layers"), list)):
            raise file.error("the config is not {'name': str, 'layers': [...]}")
        input_shape = file.json("build_input_shape")
        with file.checking("the model config"), zero_initialized():
            if not isinstance(input_shape, list) or len(input_shape) < 2:
                raise ValueError("build_input_shape must be a list of at least 2 dimensions, got "
                                 f"{reprlib.repr(input_shape)}")
            input_shape = check_shape(input_shape, "build_input_shape")
            model = models.Sequential.from_config(config)
            if not model.built:
                model.build(input_shape)
        compile_config = file.json("compile", required=False) if compile else None
        if compile_config is not None:
            with file.checking("the compile config"):
                model.compile(**_compile_arguments(compile_config))
        _read(file, model, model.optimizer).apply()
    return model


def load_weights(model, filepath) -> None:
    """Loads the weights of a file from save_weights, save_model or save_checkpoint into ``model`` (built, of
    the architecture that wrote the file); the optimizer state is left out. Nothing changes on an error."""
    _require_built(model, "load weights into")
    with _open(filepath) as file:
        _read(file, model).apply()


def read_checkpoint(model, filepath) -> Tuple[_Restore, dict]:
    """A checkpoint of :func:`save_checkpoint`, checked against ``model`` (and its optimizer, if compiled):
    ``(restore, training_state)``; ``restore.apply()`` puts the weights and optimizer state into the model."""
    _require_built(model, "restore a checkpoint into")
    with _open(filepath) as file:
        training_state = file.json("training_state")
        return _read(file, model, model.optimizer if model.compiled else None), training_state
