"""Export of a Sequential model to ONNX (public as lstm_native.onnx.export), checked with onnxruntime.

The graph takes the model's batch-first input (float32; int64 ids when the model starts with an Embedding)
with a dynamic batch dimension ("batch", and "timesteps" where the model leaves the time axis open), and
gives its prediction as "output". Layers map to ONNX operators:

- LSTM and Bidirectional: ONNX's LSTM operator (direction "forward", over the reversed input for
  go_backwards, or "bidirectional"), its inputs W, R, B, P in ONNX's gate orders (lstm_native.gate_orders),
  the batch-first input transposed to ONNX's time-major [T, B, I] and the outputs back;
  return_sequences=False gives Y_h. Bidirectional's merge modes are a Reshape (concat) or ReduceSum,
  ReduceProd, ReduceMean over the directions. The initial states are zero: a stateful layer that carries
  states from earlier calls is refused (reset_states() first).
- Dense: MatMul + Add (rank 2 or 3 inputs), then its activation (see _ACTIVATIONS).
- Embedding: Gather. Dropout: nothing (identity at inference). Masking: the mask computed in the graph.

Masks (Masking, Embedding(mask_zero=True)), of any pattern (right or left padding, gaps): the graph moves each
sequence's valid steps to its front (ScatterElements, positions from a CumSum of the mask), runs ONNX's
LSTM with sequence_lens = the number of valid steps, and moves the outputs back (GatherElements): at a
masked step the last valid step's output, as our LSTM carries its state over masked steps (zero before the
first valid step), or zero with zero_output_for_mask (which Bidirectional sets). The states are ours exactly,
since ONNX's LSTM over the compacted sequence sees the valid steps in order, and nothing else. A
go_backwards LSTM runs forward over the reversed input and mask.

Variants ONNX's LSTM cannot express raise ValueError naming the variant: peephole="full" (its P holds
diagonal peepholes only), output_peephole_source="previous" (its output gate peeks at C_t) and zoneout
(whose expectation at inference mixes the previous state in).
"""

from __future__ import annotations

import numpy as np

from . import gate_orders
from .interop import _check_expressible
from .layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking

DEFAULT_OPSET = 17
MIN_OPSET = 11  # Equal on floats

# Our activation names -> (ONNX operator, its attributes); linear adds no node.
_ACTIVATIONS = {
    "linear": None, "relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
    "softmax": ("Softmax", {"axis": -1}), "log_softmax": ("LogSoftmax", {"axis": -1}), "elu": ("Elu", {}),
    "selu": ("Selu", {}), "softplus": ("Softplus", {}), "softsign": ("Softsign", {}), "exponential": ("Exp", {}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),  # Keras 3's relu6(x + 3) / 6
}
_MERGE_REDUCTIONS = {"sum": "ReduceSum", "mul": "ReduceProd", "ave": "ReduceMean"}


class _Graph:
    """The nodes and initializers of the graph being built; every tensor gets a fresh name."""

    def __init__(self, opset: int):
        self.opset, self.nodes, self.initializers = opset, [], []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, array) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs, outputs: int = 1, **attributes):
        """Adds a node; returns its output's name, or the list of them when outputs > 1. An input "" is an
        optional input left out."""
        from onnx import helper

        inputs = list(inputs)
        while inputs[-1] == "":
            inputs.pop()
        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def axes_op(self, op_type: str, x: str, axes, since: int, **attributes) -> str:
        """A node whose axes are an attribute before opset `since` and an int64 input from it on."""
        if self.opset >= since:
            return self.op(op_type, [x, self.constant("axes", np.array(axes, np.int64))], **attributes)
        return self.op(op_type, [x], axes=list(axes), **attributes)

    def reduce(self, op_type: str, x: str, axis: int) -> str:
        return self.axes_op(op_type, x, [axis], 13 if op_type == "ReduceSum" else 18, keepdims=0)

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.axes_op("Unsqueeze", x, [axis], 13)


def _check_recurrent(layer: LSTM) -> None:
    _check_expressible(layer, "export", "ONNX's LSTM operator")
    if layer.stateful and layer.states is not None:
        raise ValueError(f"{layer.name}: stateful, it carries states from earlier calls, and the exported graph "
                         "starts from zero states; call reset_states() before exporting")
    if layer.peephole == "full":
        raise ValueError(f"{layer.name}: peephole='full' (H x H peephole matrices) cannot be exported to ONNX: "
                         "the LSTM operator's P holds diagonal peepholes only")
    if layer.peephole is not None and layer.output_peephole_source == "previous":
        raise ValueError(f"{layer.name}: output_peephole_source='previous' cannot be exported to ONNX: the LSTM "
                         "operator's output gate peeks at the current cell state C_t")


def _onnx_weights(layer: LSTM):
    """W [4H, I], R [4H, H], B [8H] and P [3H] of one direction, in ONNX's gate orders (float32)."""
    H = layer.units

    def rows(array, source=gate_orders.OURS, target=gate_orders.ONNX):
        return gate_orders.permute(np.asarray(array, np.float32), source, target, axis=0)

    bias = np.zeros(4 * H) if layer.bias is None else layer.bias.value
    peephole = np.zeros(3 * H) if layer.peephole_weights is None else layer.peephole_weights.value.reshape(-1)
    return (rows(layer.kernel.value.T), rows(layer.recurrent_kernel.value.T),
            np.concatenate([rows(bias), np.zeros(4 * H, np.float32)]),  # ONNX adds Wb + Rb
            rows(peephole, gate_orders.OUR_PEEPHOLES, gate_orders.ONNX_PEEPHOLES))


def _sequence_lengths(graph: _Graph, mask: str) -> str:
    """int32 [B]: the number of valid steps of each sequence, from a bool mask [B, T]."""
    from onnx import TensorProto

    return graph.reduce("ReduceSum", graph.op("Cast", [mask], to=TensorProto.INT32), axis=1)


def _along_time(graph: _Graph, op_type: str, x: str, positions: str) -> str:
    """GatherElements or ScatterElements of x [B, T, F] along time at positions [B, T] (the same for every F)."""
    shape = graph.op("Shape", [x])
    index = graph.op("Expand", [graph.unsqueeze(positions, -1), shape])
    if op_type == "GatherElements":
        return graph.op(op_type, [x, index], axis=1)
    return graph.op(op_type, [x, index, x], axis=1)


class _Compaction:
    """A mask's valid steps moved to the front of each sequence, in order, and back.

    Our LSTM carries its state unchanged over a masked step, wherever it lies: over the compacted sequence
    ONNX's LSTM with sequence_lens computes the same states at the valid steps. valid_before [B, T] counts the
    valid steps up to and including each step (a CumSum), so a valid step t lands at valid_before - 1 and a
    masked one after all the valid steps; back at step t comes the output of compacted step valid_before - 1,
    the last valid step at or before t (-1 before the first valid step: GatherElements' last, then zeroed).
    """

    def __init__(self, graph: _Graph, mask: str):
        from onnx import TensorProto

        self.graph, self.mask = graph, mask
        steps = graph.op("Cast", [mask], to=TensorProto.INT64)
        one, time_axis = (graph.constant(name, np.array(1, np.int64)) for name in ("one", "time_axis"))
        self.valid_before = graph.op("CumSum", [steps, time_axis])
        self.lengths = _sequence_lengths(graph, mask)
        masked_before = graph.op("Sub", [graph.op("CumSum", [graph.op("Sub", [one, steps]), time_axis]), one])
        self.last_valid = graph.op("Sub", [self.valid_before, one])
        first_masked = graph.unsqueeze(graph.op("Cast", [self.lengths], to=TensorProto.INT64), -1)
        self.positions = graph.op("Where", [mask, self.last_valid, graph.op("Add", [masked_before, first_masked])])

    def compact(self, x: str) -> str:
        return _along_time(self.graph, "ScatterElements", x, self.positions)

    def expand(self, y: str, zero_output_for_mask: bool) -> str:
        """y [B, T, F] of the compacted sequence back at the steps of the mask: a masked step gets the last
        valid step's output (zero before the first, the zero initial state's h), or zero."""
        keep = self.mask if zero_output_for_mask else self.graph.op(
            "Greater", [self.valid_before, self.graph.constant("zero", np.array(0, np.int64))])
        zero = self.graph.constant("zero", np.array(0, np.float32))
        return self.graph.op("Where", [self.graph.unsqueeze(keep, -1),
                                       _along_time(self.graph, "GatherElements", y, self.last_valid), zero])


def _recurrent(graph: _Graph, layer, x: str, mask):
    """An LSTM or a Bidirectional of two as one ONNX LSTM node, batch-first in and out. A go_backwards LSTM
    runs forward over the reversed sequence (its outputs are in processing order, as ours); a mask becomes
    sequence_lens over the compacted sequence (see _Compaction)."""
    bidirectional = isinstance(layer, Bidirectional)
    directions = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    for direction in directions:
        _check_recurrent(direction)
    if bidirectional and (layer.forward_layer.go_backwards or not layer.backward_layer.go_backwards):
        raise ValueError(f"{layer.name}: ONNX's bidirectional LSTM runs its first layer forward and its second "
                         "backward; this Bidirectional's layers go the other way")
    if bidirectional and layer.merge_mode not in ("concat", *_MERGE_REDUCTIONS):
        raise ValueError(f"{layer.name}: merge_mode={layer.merge_mode!r} gives several outputs; ONNX export needs "
                         "one of 'concat', 'sum', 'mul', 'ave'")
    lstm = directions[0]
    if lstm.go_backwards and not bidirectional:
        x = _reverse_time(graph, x)
        mask = None if mask is None else _reverse_time(graph, mask)
    compaction = None if mask is None else _Compaction(graph, mask)
    W, R, B, P = (np.stack(arrays) for arrays in zip(*map(_onnx_weights, directions)))  # one row per direction
    peepholes = any(d.peephole is not None for d in directions)
    Y, Y_h = graph.op("LSTM", [graph.op("Transpose", [x if compaction is None else compaction.compact(x)],
                                        perm=[1, 0, 2]),
                               graph.constant("W", W), graph.constant("R", R), graph.constant("B", B),
                               "" if compaction is None else compaction.lengths, "", "",
                               graph.constant("P", P) if peepholes else ""],
                      outputs=2, hidden_size=lstm.units, direction="bidirectional" if bidirectional else "forward")
    merge_mode = layer.merge_mode if bidirectional else "concat"  # one direction: concat just drops the axis
    if not layer.return_sequences:
        return _merge(graph, graph.op("Transpose", [Y_h], perm=[1, 0, 2]), merge_mode, [0, -1])  # [B, dirs, H]
    y = _merge(graph, graph.op("Transpose", [Y], perm=[2, 0, 1, 3]), merge_mode, [0, 0, -1])  # [B, T, H']
    # a Bidirectional's layers have zero_output_for_mask=True
    return y if compaction is None else compaction.expand(y, bidirectional or lstm.zero_output_for_mask)


def _reverse_time(graph: _Graph, y: str) -> str:
    """y [B, T, ...] with its time axis reversed: Slice(starts=-1, ends=-inf, axes=1, steps=-1)."""
    bounds = (-1, np.iinfo(np.int64).min, 1, -1)
    return graph.op("Slice", [y] + [graph.constant(name, np.array([value], np.int64))
                                    for name, value in zip(("starts", "ends", "axes", "steps"), bounds)])


def _merge(graph: _Graph, y: str, merge_mode: str, concat_shape) -> str:
    """y [..., directions, H] merged over its directions axis (one direction: just dropped)."""
    if merge_mode == "concat":
        return graph.op("Reshape", [y, graph.constant("shape", np.array(concat_shape, np.int64))])
    return graph.reduce(_MERGE_REDUCTIONS[merge_mode], y, axis=-2)


def _dense(graph: _Graph, layer: Dense, x: str, mask):
    activation = layer.activation.name
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{layer.name}: activation {activation!r} has no ONNX export; supported: "
                         f"{', '.join(_ACTIVATIONS)}")
    y = graph.op("MatMul", [x, graph.constant("kernel", layer.kernel.value.astype(np.float32))])
    if layer.bias is not None:
        y = graph.op("Add", [y, graph.constant("bias", layer.bias.value.astype(np.float32))])
    if _ACTIVATIONS[activation] is not None:
        op_type, attributes = _ACTIVATIONS[activation]
        y = graph.op(op_type, [y], **attributes)
    return y, mask


def _embedding(graph: _Graph, layer: Embedding, ids: str, mask):
    y = graph.op("Gather", [graph.constant("embeddings", layer.embeddings.value.astype(np.float32)), ids], axis=0)
    if layer.mask_zero:
        mask = graph.op("Not", [graph.op("Equal", [ids, graph.constant("zero", np.array(0, np.int64))])])
    return y, mask


def _masking(graph: _Graph, layer: Masking, x: str, mask):
    """Keeps the steps with a feature != mask_value, zeroes the others; their mask is the new mask."""
    from onnx import TensorProto

    differs = graph.op("Not", [graph.op("Equal", [x, graph.constant("mask_value", np.float32(layer.mask_value))])])
    keep = graph.reduce("ReduceMax", graph.op("Cast", [differs], to=TensorProto.FLOAT), axis=-1)  # [B, T], 0 or 1
    return graph.op("Mul", [x, graph.unsqueeze(keep, -1)]), graph.op("Cast", [keep], to=TensorProto.BOOL)


def _export_layer(graph: _Graph, layer, x: str, mask):
    """(output, mask or None) of `layer` applied to x: the Sequential's mask propagation, in the graph."""
    if isinstance(layer, (LSTM, Bidirectional)):
        return _recurrent(graph, layer, x, mask), mask if layer.return_sequences else None
    if isinstance(layer, Dense):
        return _dense(graph, layer, x, mask)
    if isinstance(layer, Embedding):
        return _embedding(graph, layer, x, mask)
    if isinstance(layer, Masking):
        return _masking(graph, layer, x, mask)
    if isinstance(layer, Dropout):
        return x, mask
    raise ValueError(f"{layer.name}: layers of type {type(layer).__name__} have no ONNX export")


def _symbolic(shape) -> list:
    """A shape for ONNX: the batch axis "batch", an open time axis "timesteps"."""
    return ["batch"] + ["timesteps" if d is None else int(d) for d in shape[1:]]


def export(model, path, opset: int = DEFAULT_OPSET):
    """Writes `model` (a built Sequential) to `path` as an ONNX model and returns the onnx.ModelProto.

    See the module's docstring for the graph, the masks and what cannot be exported.
    """
    import onnx
    from onnx import TensorProto, helper

    if not model.built:
        raise ValueError("export: build the model first (give it an input shape, or call it once)")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset: expected {MIN_OPSET}..{onnx.defs.onnx_opset_version()}, got {opset}")
    input_shape = model._built_shape
    output_shape = input_shape
    for layer in model.layers:
        output_shape = layer.compute_output_shape(output_shape)
    graph = _Graph(opset)
    x, mask = "input", None
    for layer in model.layers:
        x, mask = _export_layer(graph, layer, x, mask)
    graph.nodes.append(helper.make_node("Identity", [x], ["output"]))
    ids = bool(model.layers) and isinstance(model.layers[0], Embedding)
    onnx_model = helper.make_model(
        helper.make_graph(graph.nodes, model.name,
                          [helper.make_tensor_value_info("input", TensorProto.INT64 if ids else TensorProto.FLOAT,
                                                         _symbolic(input_shape))],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, _symbolic(output_shape))],
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)], producer_name="lstm_native")
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, str(path))
    return onnx_model
