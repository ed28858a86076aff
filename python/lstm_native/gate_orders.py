"""The gate orders of every system lstm_native exchanges LSTM weights with, named once, and the conversion.

An order is a string of gate letters, one per equal block of a weight array: i input gate, f forget gate,
g candidate (the cell input: ONNX calls it c, TF1 j or ci), o output gate. The peephole orders list the
three gates that peek at the cell state.

| system                                   | W, U, b blocks | peepholes                              |
|------------------------------------------|----------------|----------------------------------------|
| lstm_native (kernel, recurrent_kernel)   | i f g o        | i f o (rows of `peephole`)             |
| Keras (kernel, recurrent_kernel, bias)   | i f g o        | none                                   |
| PyTorch nn.LSTM (weight_ih/hh rows)      | i f g o        | none                                   |
| ONNX LSTM (W, R, B rows)                 | i o f g        | i o f (blocks of P)                    |
| TF1 LSTMCell, BlockLSTM (kernel columns) | i g f o        | i f o (w_i/f/o_diag, wci/wcf/wco)      |

TF1's kernel multiplies [x, h] concatenated, and its `forget_bias` (default 1) is added to the forget gate's
pre-activation on top of the bias. TF's BlockLSTMV2 (behind TF2's fused LSTM) uses the Keras order.
"""

from __future__ import annotations

import numpy as np

OURS = KERAS = TORCH = "ifgo"
ONNX = "iofg"
TF1 = "igfo"

OUR_PEEPHOLES = TF1_PEEPHOLES = "ifo"
ONNX_PEEPHOLES = "iof"


def permute(array, source: str, target: str, axis: int = -1) -> np.ndarray:
    """`array` with its len(source) equal blocks along `axis` reordered from the order `source` to `target`.

    permute(kernel, OURS, TF1) reorders a (I, 4H) kernel's column blocks; for ONNX's row blocks permute the
    transposed kernel along axis 0.
    """
    if sorted(source) != sorted(target) or len(set(source)) != len(source):
        raise ValueError(f"gate orders {source!r} and {target!r} must name the same distinct gates")
    array = np.asarray(array)
    if array.shape[axis] % len(source):
        raise ValueError(f"axis {axis} of length {array.shape[axis]} does not split into {len(source)} gate blocks")
    blocks = dict(zip(source, np.split(array, len(source), axis=axis)))
    return np.concatenate([blocks[gate] for gate in target], axis=axis)
