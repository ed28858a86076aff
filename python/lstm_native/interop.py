"""Weights in from and out to Keras 3 and PyTorch, with identical predictions.

    ours = interop.from_keras(keras_model)           # a Sequential of LSTM/Dense/Embedding/... layers
    keras_model = interop.to_keras(ours)             # LSTMs with peephole=None only
    layers = interop.from_torch_lstm(torch_lstm.state_dict())
    torch_lstm.load_state_dict(interop.to_torch_lstm(layers))

Keras keeps our weight layout (the gate order of gate_orders.KERAS is ours), so its weights copy layer by
layer. PyTorch stores W and U transposed, as weight_ih_l{k} (4H, I) and weight_hh_l{k} (4H, H), and splits
the bias into bias_ih_l{k} + bias_hh_l{k}. Keras and PyTorch are imported lazily, inside the functions.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Tuple

import numpy as np
from numpy.typing import ArrayLike

from . import gate_orders
from .layers import LSTM, Bidirectional, Dense, Dropout, Embedding, InputLayer, Masking
from .layers.bidirectional import recurrent_layers
from .layers.base import Layer
from .models import Sequential

if TYPE_CHECKING:
    import keras
    import torch

# The constructor arguments that carry over, for each layer type both libraries have (same names, same
# meaning; a Bidirectional's are its merge mode and its two LSTMs). Keras' LSTM config also names its
# activations, so that our LSTM rejects what its native cell does not compute, and return_state, which a
# Sequential rejects; dropouts, regularizers and trainable carry for further training.
_ARGUMENTS = {
    "LSTM": ("units", "use_bias", "return_sequences", "return_state", "go_backwards", "stateful", "unit_forget_bias",
             "activation", "recurrent_activation", "dropout", "recurrent_dropout", "seed", "zero_output_for_mask",
             "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "trainable"),
    "Dense": ("units", "activation", "use_bias", "kernel_regularizer", "bias_regularizer", "trainable"),
    "Embedding": ("input_dim", "output_dim", "mask_zero", "embeddings_regularizer", "trainable"),
    "Dropout": ("rate", "noise_shape", "seed", "trainable"),
    "Masking": ("mask_value", "trainable"),
}
# The arguments that matter neither to the outputs nor to training once the weights are copied: initializers
# draw weights that the copy replaces, unroll only chooses how Keras runs the loop, the name and dtype are
# set apart. Any other argument (constraints, quantization, LoRA, our peephole, zoneout, weight drop, ...)
# must have its inert value (see _INERT), or the conversion refuses: the other library has no counterpart.
_NEUTRAL = {"name", "dtype", "batch_input_shape", "unroll", "kernel_initializer", "recurrent_initializer", "bias_initializer",
            "embeddings_initializer", "peephole_initializer", "projection_initializer"}
_INERT = {"peephole": None, "output_peephole_source": "current", "peephole_regularizer": None, "proj_size": 0,
          "projection_regularizer": None, "zoneout_h": 0.0, "zoneout_c": 0.0, "weight_drop": 0.0,
          "activation_regularization": 0.0, "temporal_activation_regularization": 0.0}
_OUR_CLASSES = {"LSTM": functools.partial(LSTM, peephole=None), "Bidirectional": Bidirectional, "Dense": Dense,
                "Embedding": Embedding, "Dropout": Dropout, "Masking": Masking}  # Keras' LSTM has no peepholes


def _carried_arguments(layer, kind: str, where: str) -> dict:
    """The arguments of `layer`'s config that carry over; a ValueError for one that would be dropped."""
    config = layer.get_config()
    for key, value in config.items():
        if key not in _ARGUMENTS[kind] and key not in _NEUTRAL and value != _INERT.get(key):
            raise ValueError(f"{where}: {layer.name} has {key}={value!r}, which the other library's {kind} has no "
                             f"counterpart for; set it to {_INERT.get(key)!r} to convert")
    return {key: _regularizer_config(config[key]) if key.endswith("regularizer") else config[key]
            for key in _ARGUMENTS[kind] if key in config}


def _regularizer_config(config):
    """A regularizer's config in the form both libraries read: {"class_name", "config"} (Keras adds more)."""
    return config if config is None else {"class_name": config["class_name"], "config": config["config"]}


def _convert_layer(layer, classes: dict, where: str, name=None):
    """A new, unbuilt layer from `classes` (class names to classes: ours, or keras.layers') of the type and
    with the arguments of `layer` (Keras', or ours); `name` replaces the layer's name."""
    kind = type(layer).__name__
    name = name or layer.name
    if kind == "Bidirectional":
        forward = _convert_layer(layer.forward_layer, classes, where, layer.forward_layer.name.removeprefix("forward_"))
        return classes[kind](forward, merge_mode=layer.merge_mode, dtype=np.dtype(layer.dtype).name,
                             backward_layer=_convert_layer(layer.backward_layer, classes, where), name=name)
    if kind not in _ARGUMENTS:
        raise ValueError(f"{layer.name}: layers of type {kind} have no counterpart; supported: LSTM, Bidirectional, "
                         "Dense, Embedding, Dropout, Masking")
    arguments = _carried_arguments(layer, kind, where)
    try:
        return classes[kind](**arguments, name=name, dtype=np.dtype(layer.dtype).name)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {layer.name}: {error}") from None


def _copy_weights(source, target) -> None:
    target.set_weights([np.asarray(w) for w in source.get_weights()])


def _check_dtype_policy(keras_layer) -> None:
    """Keras computes a mixed-precision layer in another dtype than its weights'; ours computes in one."""
    policy = getattr(keras_layer, "dtype_policy", None)
    if policy is not None and policy.compute_dtype != policy.variable_dtype:
        raise ValueError(f"from_keras: {keras_layer.name} computes in {policy.compute_dtype} with "
                         f"{policy.variable_dtype} weights (dtype policy {policy.name!r}); ours computes in the "
                         "weights' dtype: convert a model built with a float32 or float64 policy")


def _keras_lstms(keras_layer) -> list:
    kind = type(keras_layer).__name__
    return ([keras_layer.forward_layer, keras_layer.backward_layer] if kind == "Bidirectional"
            else [keras_layer] if kind == "LSTM" else [])


def _stateful(model) -> list:
    return [lstm for layer in model.layers for lstm in recurrent_layers(layer) if lstm.stateful]


def from_keras(keras_model: keras.Sequential) -> Sequential:
    """Our Sequential with the layers, arguments and weights of a Keras 3 Sequential model.

    Supported layers: LSTM (imported with peephole=None: Keras' cell), Dense (activations by name), Embedding,
    Dropout, Masking, Bidirectional; the model needs a defined input (keras.Input or a built model).
    """
    try:
        keras_input = keras_model.inputs[0]
    except (AttributeError, IndexError, ValueError) as error:
        raise ValueError("from_keras: the Keras model has no defined input; start it with keras.Input(shape) "
                         "or build it") from error
    for keras_layer in keras_model.layers:
        _check_dtype_policy(keras_layer)
    pairs = [(keras_layer, _convert_layer(keras_layer, _OUR_CLASSES, "from_keras"))
             for keras_layer in keras_model.layers]
    model = Sequential([InputLayer(shape=tuple(keras_input.shape[1:]), batch_size=keras_input.shape[0],
                                   dtype=keras_input.dtype)] + [ours for _, ours in pairs], name=keras_model.name)
    for keras_layer, ours in pairs:
        _copy_weights(keras_layer, ours)
        for keras_lstm, lstm in zip(_keras_lstms(keras_layer), recurrent_layers(ours)):
            if keras_lstm.stateful:  # the states it carries into its next call
                lstm.states = [np.array(state.numpy()) for state in keras_lstm.states]
    return model


def to_keras(model: Sequential) -> keras.Sequential:
    """A keras.Sequential with the layers, arguments and weights of our (built) model.

    Its LSTMs must have peephole=None and no zoneout: others have no Keras counterpart and raise ValueError.
    """
    import keras

    if not model.built:
        raise ValueError("to_keras: build the model first (give it an input shape, or call it once)")
    for layer in model.layers:
        for lstm in recurrent_layers(layer):
            _check_plain(lstm, "to_keras", "Keras' LSTM")
    first = model.layers[0]
    input_dtype = "int32" if isinstance(first, Embedding) else first.dtype.name
    batch_shape = model._built_shape
    batch_size = batch_shape[0] or next((len(lstm.states[0]) for lstm in _stateful(model) if lstm.states), None)
    if batch_size is None and _stateful(model):
        raise ValueError(f"to_keras: {_stateful(model)[0].name} is stateful, and Keras' stateful LSTM needs a "
                         "fixed batch size: build the model with Input(shape, batch_size=N) (or call it once)")
    keras_model = keras.Sequential(
        [keras.Input(shape=batch_shape[1:], batch_size=batch_size, dtype=input_dtype)]
        + [_convert_layer(layer, vars(keras.layers), "to_keras") for layer in model.layers], name=model.name)
    for layer, keras_layer in zip(model.layers, keras_model.layers):
        _copy_weights(layer, keras_layer)
        for lstm, keras_lstm in zip(recurrent_layers(layer), _keras_lstms(keras_layer)):
            for state, keras_state in zip(lstm.states or [], keras_lstm.states if lstm.stateful else []):
                keras_state.assign(state)
    return keras_model


def _check_expressible(lstm, where: str, target: str, projection: bool = False) -> None:
    """Zoneout changes the function at inference too (h and c are their expectation): Keras and PyTorch lack it.
    A projection (proj_size) exports only where the target has one (`projection`: PyTorch's proj_size)."""
    for name in ("zoneout_h", "zoneout_c"):
        if lstm.rates[name]:
            raise ValueError(f"{where}: {lstm.name} has {name}={lstm.rates[name]}, which {target} cannot express")
    if lstm.proj_size and not projection:
        raise ValueError(f"{where}: {lstm.name} has proj_size={lstm.proj_size}, which {target} cannot express")


def _check_plain(lstm, where: str, target: str, projection: bool = False) -> None:
    """Keras' and PyTorch's LSTMs compute ours with peephole=None and no zoneout (PyTorch's with its
    proj_size too)."""
    if lstm.peephole is not None:
        raise ValueError(f"{where}: {lstm.name} has peephole={lstm.peephole!r}, which {target} cannot express; only "
                         "LSTMs with peephole=None export")
    _check_expressible(lstm, where, target, projection)


# ------------------------------------------------------------------------------------------------ PyTorch

_TORCH_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def from_torch_lstm(state_dict: Mapping[str, ArrayLike], return_sequences: bool = True) -> List[Layer]:
    """Our layers computing a PyTorch nn.LSTM from its state_dict: one LSTM(peephole=None) per layer, or a
    Bidirectional (merge_mode="concat") per layer of a bidirectional nn.LSTM, built and with the weights set.

    The number of layers, bidirectionality, sizes, bias and proj_size come from the keys and shapes. Our layers are
    batch-first: feed them what an nn.LSTM(batch_first=True) takes. With return_sequences=True (default) the
    last layer returns nn.LSTM's `output`; with False it returns h_n of the last layer (both directions
    concatenated). Every other layer returns sequences, as nn.LSTM stacks them. The first layer declares its
    input shape (batch, timesteps, input_size), so that a Sequential of the layers is built at once.
    """
    directions: Dict[Tuple[int, bool], Dict[str, np.ndarray]] = {}  # (layer, reverse) -> {"weight_ih": array, ...}
    for key, value in state_dict.items():
        match = _TORCH_KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"from_torch_lstm: unexpected key {key!r}: expected nn.LSTM's weight_ih_l0, "
                             "weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_hr_l0 (with _reverse for bidirectional)")
        directions.setdefault((int(match[2]), bool(match[3])), {})[match[1]] = _numpy(value)
    if not directions:
        raise ValueError("from_torch_lstm: the state_dict holds no nn.LSTM weights")
    num_layers = 1 + max(k for k, _ in directions)
    reverses = (False, True) if any(reverse for _, reverse in directions) else (False,)
    layers = []
    for k in range(num_layers):
        first = directions.get((k, False), {})
        layers.append(_assemble([_torch_direction(directions.get((k, reverse), {}), f"layer {k}{' reverse' * reverse}")
                                 for reverse in reverses], return_sequences or k < num_layers - 1,
                                use_bias="bias_ih" in first,
                                proj_size=first["weight_hr"].shape[0] if "weight_hr" in first else 0))
    layers[0].batch_input_shape = (None, None, layers[0].weights[0].shape[0])  # Sequential(layers) builds itself
    return layers


def _torch_direction(weights: dict, where: str) -> list:
    """[kernel, recurrent_kernel(, bias)(, projection)] of one direction of one nn.LSTM layer, in our
    layout (the order of LSTM.weights)."""
    try:
        arrays = [weights["weight_ih"], weights["weight_hh"]]
    except KeyError as missing:
        raise ValueError(f"from_torch_lstm: {where} lacks {missing.args[0]}") from None
    if "bias_ih" in weights:
        arrays.append(weights["bias_ih"] + weights["bias_hh"])
    arrays = [gate_orders.permute(a, gate_orders.TORCH, gate_orders.OURS, axis=0).T for a in arrays]
    if "weight_hr" in weights:  # (P, H): h = weight_hr @ m, ours h = m @ W_hr
        arrays.append(weights["weight_hr"].T)
    return arrays


def _assemble(directions: list, return_sequences: bool, use_bias: bool, proj_size: int):
    """An LSTM (one direction) or a Bidirectional (two), built, with the weights of `directions`."""
    kernel = directions[0][0]
    dtype = "float64" if kernel.dtype == np.float64 else "float32"
    lstm = LSTM(kernel.shape[1] // 4, peephole=None, use_bias=use_bias, proj_size=proj_size,
                return_sequences=return_sequences, dtype=dtype)
    layer = lstm if len(directions) == 1 else Bidirectional(lstm, dtype=dtype)
    layer.build((None, None, kernel.shape[0]))
    layer.set_weights([w for direction in directions for w in direction])
    return layer


def to_torch_lstm(layers: Iterable[Layer]) -> Dict[str, torch.Tensor]:
    """The state_dict (torch tensors) of the nn.LSTM that computes `layers`, for its load_state_dict.

    `layers`: built LSTM layers with peephole=None (and no zoneout), or Bidirectional layers of them with
    merge_mode="concat" (not a mix), each feeding the next, as nn.LSTM stacks them. The nn.LSTM to load it into has
    num_layers=len(layers), bidirectional as the layers are, bias as use_bias, and batch_first=True to take
    the same arrays as ours.
    """
    import torch

    layers = list(layers)
    bidirectional = isinstance(layers[0], Bidirectional)
    state_dict = {}
    for k, layer in enumerate(layers):
        lstms = recurrent_layers(layer)
        if isinstance(layer, Bidirectional) != bidirectional or not lstms:
            raise ValueError(f"to_torch_lstm: {layer.name}: expected only LSTM layers or only Bidirectional layers")
        if isinstance(layer, Bidirectional) and layer.merge_mode != "concat":
            raise ValueError(f"to_torch_lstm: {layer.name}: nn.LSTM concatenates its directions; got merge_mode="
                             f"{layer.merge_mode!r}")
        for lstm, suffix in zip(lstms, ("", "_reverse")):
            _check_plain(lstm, "to_torch_lstm", "nn.LSTM", projection=True)
            if lstm.go_backwards != bool(suffix):
                raise ValueError(f"to_torch_lstm: {lstm.name}: go_backwards={lstm.go_backwards} has no nn.LSTM "
                                 "counterpart here")
            arrays = {"weight_ih": lstm.kernel.value, "weight_hh": lstm.recurrent_kernel.value}
            if lstm.bias is not None:
                arrays.update(bias_ih=lstm.bias.value, bias_hh=np.zeros_like(lstm.bias.value))
            for name, array in arrays.items():
                torch_array = gate_orders.permute(array, gate_orders.OURS, gate_orders.TORCH, axis=-1).T
                state_dict[f"{name}_l{k}{suffix}"] = torch.from_numpy(np.ascontiguousarray(torch_array))
            if lstm.projection is not None:
                state_dict[f"weight_hr_l{k}{suffix}"] = torch.from_numpy(np.ascontiguousarray(lstm.projection.value.T))
    return state_dict
