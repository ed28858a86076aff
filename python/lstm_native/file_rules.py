"""What a model file may hold: the one definition that both loaders enforce.

The Python loader (lstm_native.saving) checks a file's metadata keys, its config and its limits with
:func:`check_metadata_keys`, :func:`check_model_config` and :data:`LIMITS`; the C++ loader
(cpp/src/model.cpp) reads the same rules as JSON from cpp/src/model_file_rules.inc, which this module
writes:

    python -c "from lstm_native import file_rules; print(file_rules.cpp_source(), end='')" > cpp/src/model_file_rules.inc

(tests/test_loader_agreement.py checks that the file is up to date, and that both loaders accept and
refuse the same files.) A rule names a value's kind: one of the names in :data:`_KIND_CHECKS`, or a list
of the values allowed. Every key of a config must have a rule; keys a rule lists as required must be there.
"""

from __future__ import annotations

import inspect
import json
import math
import reprlib
from typing import Dict, List, Union

from . import activations, initializers, regularizers
from .layers.serialization import LAYER_CLASSES

LIMITS = {
    "layers": 1 << 16,       # layers of a model
    "parameters": 1 << 31,   # weights of a model, all layers together
    # units, proj_size, output_dim and an Embedding's input_dim: the C++ loader carries token ids as float32,
    # which tells integers apart up to 2**24
    "units": 1 << 24,
    "dimension": 1 << 31,    # a size in an input shape
    "rank": 8,               # dimensions of an input shape, the batch's included
}
METADATA_KEYS = ["format", "format_version", "config", "build_input_shape", "compile", "training_state"]
MODEL_KEYS = {"name": "string", "layers": "layers"}
_FLOAT32_MAX = 3.4028234663852886e38
_INT64_MAX = (1 << 63) - 1

# A config's rules: {key: the kind of its value (a _KIND_CHECKS name), or the list of the values allowed}
ConfigRules = Dict[str, Union[str, List[object]]]
_BASE_KEYS: ConfigRules = {"name": "string", "trainable": "bool", "dtype": ["float32", "float64"],
                           "batch_input_shape": "batch_shape"}
_LSTM_KEYS: ConfigRules = {
    **_BASE_KEYS, "units": "size", "activation": ["tanh"], "recurrent_activation": ["sigmoid"], "use_bias": "bool",
    "kernel_initializer": "initializer", "recurrent_initializer": "initializer", "bias_initializer": "initializer",
    "unit_forget_bias": "bool", "kernel_regularizer": "regularizer", "recurrent_regularizer": "regularizer",
    "bias_regularizer": "regularizer", "dropout": "rate", "recurrent_dropout": "rate", "return_sequences": "bool",
    "return_state": [False], "go_backwards": "bool", "stateful": "bool", "unroll": [False], "seed": "seed",
    "peephole": ["diagonal", "full", None], "output_peephole_source": ["current", "previous"],
    "peephole_initializer": "initializer", "peephole_regularizer": "regularizer", "zero_output_for_mask": "bool",
    "zoneout_h": "rate", "zoneout_c": "rate", "weight_drop": "rate", "activity_regularizer": "regularizer",
    "activation_regularization": "coefficient", "temporal_activation_regularization": "coefficient",
    "proj_size": "size_or_zero", "projection_initializer": "initializer", "projection_regularizer": "regularizer",
}
LAYER_KEYS: Dict[str, ConfigRules] = {
    "InputLayer": {"shape": "shape", "batch_size": "batch_size", "name": "string",
                   "dtype": ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
                             "uint32", "uint64", "bool"]},
    "LSTM": _LSTM_KEYS,
    "Bidirectional": {**_BASE_KEYS, "layer": "lstm", "backward_layer": "lstm",
                      "merge_mode": ["concat", "sum", "mul", "ave"]},
    "Dense": {**_BASE_KEYS, "units": "size", "activation": "activation", "use_bias": "bool",
              "kernel_initializer": "initializer", "bias_initializer": "initializer",
              "kernel_regularizer": "regularizer", "bias_regularizer": "regularizer"},
    "Dropout": {**_BASE_KEYS, "rate": "rate", "noise_shape": "noise_shape", "seed": "seed"},
    "Embedding": {**_BASE_KEYS, "input_dim": "vocabulary", "output_dim": "size", "embeddings_initializer": "initializer",
                  "embeddings_regularizer": "regularizer", "mask_zero": "bool"},
    "Masking": {**_BASE_KEYS, "mask_value": "float32"},
}
REQUIRED_KEYS = {"InputLayer": ["shape"], "LSTM": ["units"], "Bidirectional": ["layer", "backward_layer"],
                 "Dense": ["units"], "Dropout": ["rate"], "Embedding": ["input_dim", "output_dim"], "Masking": []}
_SEEDED = {"seed": "seed"}
INITIALIZER_KEYS = {
    "Zeros": {}, "Ones": {}, "Constant": {"value": "float32"},
    "RandomUniform": {"minval": "float32", "maxval": "float32", **_SEEDED},
    "RandomNormal": {"mean": "float32", "stddev": "float32", **_SEEDED},
    "TruncatedNormal": {"mean": "float32", "stddev": "float32", **_SEEDED},
    "VarianceScaling": {"scale": "coefficient", "mode": ["fan_in", "fan_out", "fan_avg"],
                        "distribution": ["truncated_normal", "untruncated_normal", "uniform"], **_SEEDED},
    "GlorotUniform": _SEEDED, "GlorotNormal": _SEEDED, "HeUniform": _SEEDED, "HeNormal": _SEEDED,
    "LecunUniform": _SEEDED, "LecunNormal": _SEEDED,
    "Orthogonal": {"gain": "float32", **_SEEDED}, "Identity": {"gain": "float32"},
}
REGULARIZER_KEYS = {"L1": {"l1": "coefficient"}, "L2": {"l2": "coefficient"},
                    "L1L2": {"l1": "coefficient", "l2": "coefficient"}}


def _by_identifier(aliases: dict, keys_by_class: dict) -> dict:
    """{identifier a file may use (a Keras name or a class name): the keys of that class's config}."""
    return {name: keys_by_class[cls.__name__] for name, cls in sorted(aliases.items())}


INITIALIZERS = _by_identifier(initializers._ALIASES, INITIALIZER_KEYS)
REGULARIZERS = _by_identifier(regularizers._ALIASES, REGULARIZER_KEYS)
ACTIVATIONS = sorted(activations._ACTIVATIONS)


# ------------------------------------------------------------------------------------------------ checking

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_size(value, low: int, high: int) -> bool:
    return _is_int(value) and low <= value <= high


def _is_shape(value, min_rank: int, max_rank: int) -> bool:
    return (isinstance(value, list) and min_rank <= len(value) <= max_rank
            and all(d is None or _is_size(d, 1, LIMITS["dimension"]) for d in value))


def _identifier_problem(value, table: dict, what: str):
    """None for a name in `table` or a {"class_name": name, "config": {...}} dict of one; else the problem."""
    if isinstance(value, str):
        return None if value in table else f"unknown {what} {reprlib.repr(value)}"
    if not (isinstance(value, dict) and isinstance(value.get("class_name"), str) and set(value) <= {"class_name", "config"}):
        return f"expected a {what} name or {{'class_name': str, 'config': {{...}}}}, got {reprlib.repr(value)}"
    if value["class_name"] not in table:
        return f"unknown {what} class {reprlib.repr(value['class_name'])}"
    return _config_problem(value.get("config", {}), table[value["class_name"]], [])


_KIND_CHECKS = {
    "string": lambda v: None if isinstance(v, str) else "expected a string",
    "bool": lambda v: None if isinstance(v, bool) else "expected true or false",
    "size": lambda v: None if _is_size(v, 1, LIMITS["units"]) else f"expected an integer in [1, {LIMITS['units']}]",
    "vocabulary": lambda v: (None if _is_size(v, 1, LIMITS["units"]) else
                             f"expected an integer in [1, {LIMITS['units']}] (the C++ loader carries token ids as "
                             "float32, which tells integers apart up to 2**24)"),
    "size_or_zero": lambda v: None if _is_size(v, 0, LIMITS["units"]) else f"expected an integer in [0, {LIMITS['units']}]",
    "rate": lambda v: None if _is_number(v) and 0 <= v < 1 else "expected a rate in [0, 1)",
    "coefficient": lambda v: None if _is_number(v) and 0 <= v <= _FLOAT32_MAX else "expected a finite number >= 0",
    "float32": lambda v: None if _is_number(v) and abs(v) <= _FLOAT32_MAX else "expected a finite float32 number",
    "seed": lambda v: None if v is None or _is_size(v, 0, _INT64_MAX) else "expected null or an integer in [0, 2**63)",
    "shape": lambda v: None if _is_shape(v, 1, LIMITS["rank"] - 1) else "expected a shape (no batch size): 1 to 7 sizes, null or positive integers",
    "batch_shape": lambda v: (None if _is_shape(v, 2, LIMITS["rank"]) else
                              "expected [batch, ...]: 2 to 8 sizes, null or positive integers"),
    "noise_shape": lambda v: None if v is None or _is_shape(v, 1, LIMITS["rank"]) else "expected null or a shape",
    "batch_size": lambda v: (None if v is None or _is_size(v, 1, LIMITS["dimension"]) else
                             "expected null or a positive integer"),
    "activation": lambda v: (None if v is None or v in ACTIVATIONS else
                             f"expected null or one of {', '.join(ACTIVATIONS)}"),
    "initializer": lambda v: _identifier_problem(v, INITIALIZERS, "initializer"),
    "regularizer": lambda v: None if v is None else _identifier_problem(v, REGULARIZERS, "regularizer"),
    "lstm": lambda v: (layer_problem(v) if isinstance(v, dict) and v.get("class_name") == "LSTM" else
                       "expected {'class_name': 'LSTM', 'config': {...}}"),
}


def _value_problem(kind, value):
    if isinstance(kind, list):  # the values allowed (compared with their JSON types: true is not 1)
        allowed = any(type(value) is type(choice) and value == choice for choice in kind)
        return None if allowed else f"expected one of {json.dumps(kind)}"
    return _KIND_CHECKS[kind](value)


def _config_problem(config, rules: dict, required: list):
    if not isinstance(config, dict):
        return f"expected a config object, got {reprlib.repr(config)}"
    for key in required:
        if key not in config:
            return f"lacks {key!r}"
    for key, value in config.items():
        if key not in rules:
            return f"unknown key {reprlib.repr(key)} (known: {', '.join(sorted(rules))})"
        problem = _value_problem(rules[key], value)
        if problem:
            return f"{key}: {problem}, got {reprlib.repr(value)}"
    return None


def layer_problem(entry):
    """None for a layer entry {"class_name": ..., "config": {...}} that a file may hold; else the problem."""
    if not (isinstance(entry, dict) and set(entry) == {"class_name", "config"} and isinstance(entry["class_name"], str)):
        return f"expected {{'class_name': str, 'config': {{...}}}}, got {reprlib.repr(entry)}"
    kind = entry["class_name"]
    if kind not in LAYER_KEYS:
        return f"unknown layer class {reprlib.repr(kind)}; known: {', '.join(sorted(LAYER_KEYS))}"
    problem = _config_problem(entry["config"], LAYER_KEYS[kind], REQUIRED_KEYS[kind])
    return problem and f"{kind}: {problem}"


def check_model_structure(config) -> None:
    """ValueError unless ``config`` is {"name": str, "layers": [...]} with at most LIMITS["layers"] layers."""
    if not (isinstance(config, dict) and set(config) == set(MODEL_KEYS) and isinstance(config["name"], str)
            and isinstance(config["layers"], list)):
        raise ValueError("the config is not {'name': str, 'layers': [...]}")
    if len(config["layers"]) > LIMITS["layers"]:
        raise ValueError(f"the config holds {len(config['layers'])} layers, more than the limit of {LIMITS['layers']}")


def check_layers(config) -> None:
    """ValueError unless every layer of a model config (of :func:`check_model_structure`) is one that a
    file may hold."""
    for k, entry in enumerate(config["layers"]):
        problem = layer_problem(entry)
        if problem:
            raise ValueError(f"layer {k}: {problem}")
        if entry["class_name"] == "InputLayer" and k:
            raise ValueError(f"layer {k}: an InputLayer must come first")


def check_input_shape(shape) -> tuple:
    """build_input_shape (a list [batch, ...]) as a tuple; ValueError unless a file may hold it."""
    problem = _KIND_CHECKS["batch_shape"](shape)
    if problem:
        raise ValueError(f"build_input_shape: {problem}, got {reprlib.repr(shape)}")
    return tuple(shape)


def check_metadata_keys(keys) -> None:
    unknown = sorted(set(keys) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"unknown header entries {reprlib.repr(unknown)}; known: {', '.join(METADATA_KEYS)}")


# ----------------------------------------------------------------------------------------- the C++ copy

def _defaults(cls) -> dict:
    """The constructor's defaults: what a key missing from a config means (the C++ loader needs them)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def rules() -> dict:
    """Every rule, as the JSON the C++ loader reads."""
    return {"limits": LIMITS, "metadata": METADATA_KEYS, "model": MODEL_KEYS, "layers": LAYER_KEYS,
            "required": REQUIRED_KEYS, "initializers": INITIALIZERS, "regularizers": REGULARIZERS,
            "activations": ACTIVATIONS,
            "defaults": {name: {key: value for key, value in _defaults(LAYER_CLASSES[name]).items() if key in keys}
                         for name, keys in LAYER_KEYS.items()}}


def cpp_source() -> str:
    """cpp/src/model_file_rules.inc: the rules as a C++ string literal."""
    text = json.dumps(rules(), indent=1, sort_keys=True)
    return ("// Generated from python/lstm_native/file_rules.py by its cpp_source()\n"
            "// (the command is in its docstring): edit that, not this.\n"
            f'R"rules({text})rules"\n')

