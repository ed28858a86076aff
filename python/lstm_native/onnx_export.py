"""Export of a Sequential model to ONNX (public as lstm_native.onnx.export), checked with onnxruntime.

The graph takes the model's batch-first input (float32; int64 ids when the model starts with an Embedding)
with a dynamic batch dimension ("batch", and "timesteps" where the model leaves the time axis open), and
gives its prediction as "output". Layers map to ONNX operators:

- LSTM and Bidirectional: ONNX's LSTM operator (direction "forward", over the reversed input for
  go_backwards, or "bidirectional"), its inputs W, R, B, P in ONNX's gate orders (lstm_native.gate_orders),
  the batch-first input transposed to ONNX's time-major [T, B, I] and the outputs back;
  return_sequences=False gives Y_h. Bidirectional's merge modes are a Reshape (concat) or ReduceSum,
  ReduceProd, ReduceMean over the directions. The initial states are zero: a stateful layer that carries
  states from earlier calls is refused (reset_states() first), unless the graph is a streaming one.
- What ONNX's LSTM operator cannot express: a projection (proj_size: h_t = (o_t * tanh(c_t)) W_hr),
  peephole="full", output_peephole_source="previous" (its output gate peeks at C_t) and zoneout (whose
  expectation at inference mixes the previous state in: h_t = z_h * h_{t-1} + (1 - z_h) * h~_t, c_t likewise):
  a Scan per direction (opset 11's, over axis 1 of the batch-first input) whose body computes one step of our
  cell with standard operators (MatMul, Add, Mul, Split in our gate order, Sigmoid, Tanh); x W + b is one
  MatMul before the Scan. A Bidirectional's two Scans are merged as above.
- Dense: MatMul + Add (rank 2 or 3 inputs), then its activation (see _ACTIVATIONS).
- Embedding: Gather. Dropout: nothing (identity at inference). Masking: the mask computed in the graph.

Masks (Masking, Embedding(mask_zero=True)), of any pattern (right or left padding, gaps): the graph moves each
sequence's valid steps to its front (ScatterElements, positions from a CumSum of the mask), runs ONNX's
LSTM with sequence_lens = the number of valid steps, and moves the outputs back (GatherElements): at a
masked step the last valid step's output, as our LSTM carries its state over masked steps (the initial h
before the first valid step), or zero with zero_output_for_mask (which Bidirectional sets). The states are ours
exactly, since ONNX's LSTM over the compacted sequence sees the valid steps in order, and nothing else. A
go_backwards LSTM runs forward over the reversed input and mask. A Scan takes the mask as a second scanned
input: at a masked step its body carries h and c (Where) and outputs the carried h, or zero.

Streaming (export(..., streaming=True)): the initial and final states of every LSTM are graph inputs and
outputs, batch-first, named by the LSTM's position k among the model's LSTMs (0 for the first):

    inputs   "input" [batch, timesteps, ...], "h0_<k>" [batch, Ho], "c0_<k>" [batch, H]
    outputs  "output", "h_n_<k>" [batch, Ho], "c_n_<k>" [batch, H]

(H = units, Ho = proj_size or units; unsqueezed inside the graph to ONNX's [1, batch, size]). A runtime runs a
stream chunk by chunk, of any number of steps, feeding chunk k's h_n_*, c_n_* as chunk k+1's h0_*, c0_*; the
outputs are predict's on the whole sequence: the chunk's output sequence with return_sequences=True, else
the output of the chunk's last step (through the layers after the LSTM). Masks work: a sequence with no valid
step in a chunk gives its initial states as h_n, c_n. Bidirectional and go_backwards LSTMs need the future of
the sequence and raise ValueError.

Not exported (ValueError naming the layer): layers other than those above, Dense activations missing from
_ACTIVATIONS and Bidirectional's merge_mode=None. A Bidirectional whose layers go the other way than ONNX's
bidirectional LSTM (the first forward, the second backward) is two Scans.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any, List, Tuple, Union

import numpy as np

from . import gate_orders
from .layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking

if TYPE_CHECKING:
    import onnx

    from .models import Sequential

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

    def __init__(self, opset: int, names=None, initializers=None):
        self.opset = opset
        self.nodes: List[Any] = []  # onnx NodeProto
        self.initializers = [] if initializers is None else initializers
        self._names = itertools.count(1) if names is None else names

    def _name(self, hint: str) -> str:
        return f"{hint}_{next(self._names)}"

    def subgraph(self) -> _Graph:
        """A graph for a Scan body: its own nodes; its constants and names in this graph's (a body reads the
        outer graph's initializers by name)."""
        return _Graph(self.opset, self._names, self.initializers)

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

    def squeeze(self, x: str, axis: int) -> str:
        return self.axes_op("Squeeze", x, [axis], 13)

    def split(self, x: str, sizes, axis: int) -> list:
        """Split into blocks of `sizes` along `axis` (an attribute before opset 13, an input from it on)."""
        if self.opset >= 13:
            return self.op("Split", [x, self.constant("split", np.array(sizes, np.int64))], outputs=len(sizes),
                           axis=axis)
        return self.op("Split", [x], outputs=len(sizes), axis=axis, split=list(sizes))

    def zeros(self, like: str, width: int) -> str:
        """float32 zeros [B, width], B the first dimension of `like`."""
        batch = self.op("Gather", [self.op("Shape", [like]), self.constant("batch_axis", np.array([0], np.int64))])
        shape = self.op("Concat", [batch, self.constant("width", np.array([width], np.int64))], axis=0)
        return self.op("ConstantOfShape", [shape])


def _check_recurrent(layer: LSTM, streaming: bool) -> None:
    if layer.go_backwards and streaming:
        raise ValueError(f"{layer.name}: go_backwards cannot stream: it needs the future of the sequence (its "
                         "last step first); export it with streaming=False")
    if layer.stateful and layer.states is not None and not streaming:
        raise ValueError(f"{layer.name}: stateful, it carries states from earlier calls, and the exported graph "
                         "starts from zero states; call reset_states() before exporting (or export with "
                         "streaming=True, whose graph takes the states as inputs)")


def _needs_scan(lstm: LSTM) -> bool:
    """Whether ONNX's LSTM operator cannot compute `lstm`: a projection, full peepholes, an output gate peeking
    at c_{t-1}, or zoneout (whose expectation at inference mixes the previous state in)."""
    return bool(lstm.proj_size or lstm.peephole == "full" or lstm.zoneout_h or lstm.zoneout_c
                or (lstm.peephole is not None and lstm.output_peephole_source == "previous"))


class _StreamStates:
    """The state inputs and outputs of a streaming graph: h0_<k>, c0_<k> in and h_n_<k>, c_n_<k> out for the
    k-th LSTM of the model (counted from 0), batch-first: h [batch, output_size], c [batch, units]."""

    def __init__(self, graph: _Graph):
        self.graph = graph
        self.inputs: List[Any] = []  # onnx ValueInfoProto
        self.outputs: List[Any] = []

    def initial(self, lstm: LSTM) -> Tuple[str, str]:
        """(h0, c0): the names of this LSTM's initial states, added to the graph's inputs."""
        from onnx import TensorProto, helper

        k = len(self.inputs) // 2
        names = f"h0_{k}", f"c0_{k}"
        self.inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
                        for name, width in zip(names, (lstm.output_size, lstm.units))]
        return names

    def final(self, lstm: LSTM, h_n: str, c_n: str) -> None:
        """Gives the LSTM's final states h_n [B, output_size], c_n [B, units] as the graph's outputs."""
        from onnx import TensorProto, helper

        k = len(self.outputs) // 2
        for value, name, width in ((h_n, f"h_n_{k}", lstm.output_size), (c_n, f"c_n_{k}", lstm.units)):
            self.graph.nodes.append(helper.make_node("Identity", [value], [name]))
            self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width]))


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

    def expand(self, y: str, zero_output_for_mask: bool, h0=None) -> str:
        """y [B, T, F] of the compacted sequence back at the steps of the mask: a masked step gets the last
        valid step's output (before the first, the initial state h0 [B, F], zero without one), or zero."""
        keep = self.mask if zero_output_for_mask else self.graph.op(
            "Greater", [self.valid_before, self.graph.constant("zero", np.array(0, np.int64))])
        zero = self.graph.constant("zero", np.array(0, np.float32))
        fill = zero if zero_output_for_mask or h0 is None else self.graph.unsqueeze(h0, 1)
        return self.graph.op("Where", [self.graph.unsqueeze(keep, -1),
                                       _along_time(self.graph, "GatherElements", y, self.last_valid), fill])

    def carried(self, final: str, initial: str) -> str:
        """A final state [B, F], or the initial state where a sequence has no valid step (ONNX leaves the LSTM
        operator's Y_h and Y_c of an empty sequence unspecified)."""
        has_steps = self.graph.op("Greater", [self.lengths, self.graph.constant("zero", np.array(0, np.int32))])
        return self.graph.op("Where", [self.graph.unsqueeze(has_steps, -1), final, initial])


def _recurrent(graph: _Graph, layer, x: str, mask, states):
    """An LSTM or a Bidirectional of two, batch-first in and out: ONNX's LSTM operator where it computes the
    layers, else a Scan per direction. `states`: a streaming graph's _StreamStates, or None (zero states)."""
    bidirectional = isinstance(layer, Bidirectional)
    if bidirectional and states is not None:
        raise ValueError(f"{layer.name}: a Bidirectional cannot stream: its backward layer needs the future of the "
                         "sequence; export it with streaming=False")
    directions = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    for direction in directions:
        _check_recurrent(direction, streaming=states is not None)
    if bidirectional and layer.merge_mode not in ("concat", *_MERGE_REDUCTIONS):
        raise ValueError(f"{layer.name}: merge_mode={layer.merge_mode!r} gives several outputs; ONNX export needs "
                         "one of 'concat', 'sum', 'mul', 'ave'")
    # ONNX's bidirectional LSTM runs its first layer forward and its second backward
    reversed_directions = bidirectional and (layer.forward_layer.go_backwards
                                             or not layer.backward_layer.go_backwards)
    if reversed_directions or any(map(_needs_scan, directions)):
        return _scan_recurrent(graph, layer, directions, x, mask, states)
    return _lstm_operator(graph, layer, directions, x, mask, states)


def _lstm_operator(graph: _Graph, layer, directions, x: str, mask, states):
    """The layer as one ONNX LSTM node. A go_backwards LSTM runs forward over the reversed sequence (its outputs
    are in processing order, as ours); a mask becomes sequence_lens over the compacted sequence (see
    _Compaction). A streaming graph (one direction) gives the node its initial states and takes its final ones."""
    bidirectional = isinstance(layer, Bidirectional)
    lstm = directions[0]
    if lstm.go_backwards and not bidirectional:
        x = _reverse_time(graph, x)
        mask = None if mask is None else _reverse_time(graph, mask)
    compaction = None if mask is None else _Compaction(graph, mask)
    h0, c0 = (None, None) if states is None else states.initial(lstm)
    # the node's optional initial_h and initial_c inputs ("": absent), [1, B, F] as the operator takes them
    initial = ("", "") if h0 is None or c0 is None else (graph.unsqueeze(h0, 0), graph.unsqueeze(c0, 0))
    W, R, B, P = (np.stack(arrays) for arrays in zip(*map(_onnx_weights, directions)))  # one row per direction
    peepholes = any(d.peephole is not None for d in directions)
    Y, Y_h, *Y_c = graph.op(
        "LSTM", [graph.op("Transpose", [x if compaction is None else compaction.compact(x)], perm=[1, 0, 2]),
                 graph.constant("W", W), graph.constant("R", R), graph.constant("B", B),
                 "" if compaction is None else compaction.lengths,
                 *initial,
                 graph.constant("P", P) if peepholes else ""],
        outputs=2 if states is None else 3, hidden_size=lstm.units,
        direction="bidirectional" if bidirectional else "forward")
    if states is not None:
        h_n, c_n = graph.squeeze(Y_h, 0), graph.squeeze(Y_c[0], 0)
        if compaction is not None:
            assert h0 is not None and c0 is not None  # a streaming graph's: states.initial gave them
            h_n, c_n = compaction.carried(h_n, h0), compaction.carried(c_n, c0)
        states.final(lstm, h_n, c_n)
        if not layer.return_sequences:
            return h_n
    merge_mode = layer.merge_mode if bidirectional else "concat"  # one direction: concat just drops the axis
    if not layer.return_sequences:
        return _merge(graph, graph.op("Transpose", [Y_h], perm=[1, 0, 2]), merge_mode, [0, -1])  # [B, dirs, H]
    y = _merge(graph, graph.op("Transpose", [Y], perm=[2, 0, 1, 3]), merge_mode, [0, 0, -1])  # [B, T, H']
    # a Bidirectional's layers have zero_output_for_mask=True
    return y if compaction is None else compaction.expand(y, bidirectional or lstm.zero_output_for_mask, h0)


def _scan_recurrent(graph: _Graph, layer, directions, x: str, mask, states):
    """Every direction as a Scan (_scan_lstm) over the sequence in its processing order; a Bidirectional's second
    layer's output sequence reversed (as Bidirectional aligns it), and the directions merged as ONNX's
    bidirectional LSTM's are."""
    outputs = []
    for lstm in directions:
        steps, step_mask = x, mask
        if lstm.go_backwards:
            steps, step_mask = _reverse_time(graph, x), None if mask is None else _reverse_time(graph, mask)
        if states is None:
            h0, c0 = graph.zeros(x, lstm.output_size), graph.zeros(x, lstm.units)
        else:
            h0, c0 = states.initial(lstm)
        y, h_n, c_n = _scan_lstm(graph, lstm, steps, step_mask, h0, c0)
        if states is not None:
            states.final(lstm, h_n, c_n)
        if not layer.return_sequences:
            outputs.append(h_n)
        else:
            outputs.append(_reverse_time(graph, y) if lstm is directions[-1] and len(directions) == 2 else y)
    if len(outputs) == 1:
        return outputs[0]
    # [B, (T,) 2, H']
    directions_axis = graph.op("Concat", [graph.unsqueeze(output, -2) for output in outputs], axis=-2)
    return _merge(graph, directions_axis, layer.merge_mode, [0, 0, -1] if layer.return_sequences else [0, -1])


def _scan_lstm(graph: _Graph, lstm: LSTM, x: str, mask, h0: str, c0: str):
    """One LSTM over x [B, T, I] (in processing order) from h0 [B, Ho], c0 [B, H] as ONNX's Scan (opset 11's):
    x W + b for every step at once, then the body (_lstm_step) step by step along axis 1 of x and of the mask
    [B, T]. A masked step carries h and c; its output is the carried h, or zero with zero_output_for_mask.
    Returns (y [B, T, Ho], h_n [B, Ho], c_n [B, H])."""
    from onnx import TensorProto, helper

    H, Ho = lstm.units, lstm.output_size
    xw = graph.op("MatMul", [x, graph.constant("kernel", lstm.kernel.value.astype(np.float32))])
    if lstm.bias is not None:
        xw = graph.op("Add", [xw, graph.constant("bias", lstm.bias.value.astype(np.float32))])
    body = graph.subgraph()
    h_prev, c_prev, xw_t, mask_t = (body._name(hint) for hint in ("h_prev", "c_prev", "xw_t", "mask_t"))
    h, c = _lstm_step(body, lstm, h_prev, c_prev, xw_t)
    y = None
    if mask is not None:
        keep = body.unsqueeze(mask_t, -1)  # [B, 1]
        h, c = body.op("Where", [keep, h, h_prev]), body.op("Where", [keep, c, c_prev])
        if lstm.zero_output_for_mask:
            y = body.op("Where", [keep, h, body.constant("zero", np.array(0, np.float32))])
    y = body.op("Identity", [h]) if y is None else y  # a body output apart from the state h

    def value(name, width, element=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, element, [None] if width is None else [None, width])

    inputs, scanned = [value(h_prev, Ho), value(c_prev, H), value(xw_t, 4 * H)], [xw]
    if mask is not None:
        inputs.append(value(mask_t, None, TensorProto.BOOL))
        scanned.append(mask)
    step = helper.make_graph(body.nodes, graph._name(f"{lstm.name}_step"), inputs,
                             [value(h, Ho), value(c, H), value(y, Ho)])
    h_n, c_n, y = graph.op("Scan", [h0, c0, *scanned], outputs=3, body=step, num_scan_inputs=len(scanned),
                           scan_input_axes=[1] * len(scanned), scan_output_axes=[1])
    return y, h_n, c_n


def _lstm_step(body: _Graph, lstm: LSTM, h_prev: str, c_prev: str, xw_t: str):
    """(h_t, c_t) of one step from xw_t = x_t W + b [B, 4H]: our cell (tests/reference.py) with any peephole,
    output_peephole_source, projection h_t = (o_t * tanh(c_t)) W_hr and zoneout's expectation at inference."""
    recurrent_kernel = body.constant("recurrent_kernel", lstm.recurrent_kernel.value.astype(np.float32))
    z = body.op("Add", [xw_t, body.op("MatMul", [h_prev, recurrent_kernel])])
    blocks = dict(zip(gate_orders.OURS, body.split(z, [lstm.units] * 4, axis=1)))
    i, f = _gate(body, lstm, blocks["i"], "i", c_prev), _gate(body, lstm, blocks["f"], "f", c_prev)
    c = body.op("Add", [body.op("Mul", [f, c_prev]), body.op("Mul", [i, body.op("Tanh", [blocks["g"]])])])
    o = _gate(body, lstm, blocks["o"], "o", c if lstm.output_peephole_source == "current" else c_prev)
    h = body.op("Mul", [o, body.op("Tanh", [c])])
    if lstm.projection is not None:
        h = body.op("MatMul", [h, body.constant("projection", lstm.projection.value.astype(np.float32))])
    return _zoneout(body, lstm.zoneout_h, h_prev, h), _zoneout(body, lstm.zoneout_c, c_prev, c)


def _gate(body: _Graph, lstm: LSTM, z: str, gate: str, c: str) -> str:
    """sigmoid(z + the gate's peephole on c): p_gate * c (diagonal), c p_gate (full), nothing (None)."""
    if lstm.peephole_weights is not None:
        p = lstm.peephole_weights.value[gate_orders.OUR_PEEPHOLES.index(gate)].astype(np.float32)
        z = body.op("Add", [z, body.op("Mul" if lstm.peephole == "diagonal" else "MatMul",
                                       [c, body.constant("peephole", p)])])
    return body.op("Sigmoid", [z])


def _zoneout(body: _Graph, rate: float, previous: str, new: str) -> str:
    """Zoneout's expectation at inference: rate * previous + (1 - rate) * new (new itself at rate 0)."""
    if not rate:
        return new
    return body.op("Add", [body.op("Mul", [previous, body.constant("rate", np.float32(rate))]),
                           body.op("Mul", [new, body.constant("keep_rate", np.float32(1 - rate))])])


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
    operator = _ACTIVATIONS[activation]
    if operator is not None:
        op_type, attributes = operator
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


def _export_layer(graph: _Graph, layer, x: str, mask, states):
    """(output, mask or None) of `layer` applied to x: the Sequential's mask propagation, in the graph.
    `states`: a streaming graph's _StreamStates, or None."""
    if isinstance(layer, (LSTM, Bidirectional)):
        return _recurrent(graph, layer, x, mask, states), mask if layer.return_sequences else None
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


def export(model: Sequential, path: Union[str, os.PathLike], opset: int = DEFAULT_OPSET,
           streaming: bool = False) -> onnx.ModelProto:
    """Writes `model` (a built Sequential) to `path` as an ONNX model and returns the onnx.ModelProto.

    streaming=True: the initial and final states of every LSTM are graph inputs and outputs, so that a runtime
    runs a stream chunk by chunk (of any number of steps), each chunk's final states fed to the next one.
    See the module's docstring for the graph, its names, the masks and what cannot be exported.
    """
    import onnx
    from onnx import TensorProto, helper

    if not model.built:
        raise ValueError("export: build the model first (give it an input shape, or call it once)")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset: expected {MIN_OPSET}..{onnx.defs.onnx_opset_version()}, got {opset}")
    if not isinstance(streaming, bool):
        raise TypeError(f"streaming: expected True or False, got {streaming!r}")
    input_shape = model._built_shape
    if streaming:  # chunks of any length
        input_shape = (input_shape[0], None, *input_shape[2:])
    output_shape = input_shape
    for layer in model.layers:
        output_shape = layer.compute_output_shape(output_shape)
    graph = _Graph(opset)
    states = _StreamStates(graph) if streaming else None
    x, mask = "input", None
    for layer in model.layers:
        x, mask = _export_layer(graph, layer, x, mask, states)
    graph.nodes.append(helper.make_node("Identity", [x], ["output"]))
    ids = bool(model.layers) and isinstance(model.layers[0], Embedding)
    inputs = [helper.make_tensor_value_info("input", TensorProto.INT64 if ids else TensorProto.FLOAT,
                                            _symbolic(input_shape))]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, _symbolic(output_shape))]
    if states is not None:
        inputs, outputs = inputs + states.inputs, outputs + states.outputs
    onnx_model = helper.make_model(helper.make_graph(graph.nodes, model.name, inputs, outputs, graph.initializers),
                                   opset_imports=[helper.make_opsetid("", opset)], producer_name="lstm_native")
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, str(path))
    return onnx_model
