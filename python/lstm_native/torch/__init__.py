"""lstm_native for PyTorch: ``LSTM``, a drop-in ``torch.nn.LSTM`` with peepholes and fused regularization, and
``functional.lstm``, one layer in the core's layout. Importing it needs torch (``pip install ".[torch]"``);
``import lstm_native`` alone never imports torch.

Both run on the registered operators ``torch.ops.lstm_native.lstm_forward`` / ``lstm_backward`` (custom ops with
fake implementations and an autograd formula): autograd, ``torch.compile(model, fullgraph=True)`` (padded input;
a PackedSequence's unpacking depends on its data) and ``torch.export.export`` trace them without a graph break.

Parameters of ``LSTM`` (layer k, ``_reverse`` for the second direction of a bidirectional one), as nn.LSTM's:
``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, Ho), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (4H,),
``weight_hr_l{k}`` (P, H) with ``proj_size=P`` (Ho = P, else H); gate blocks i, f, g, o. With a peephole also
``weight_peephole_l{k}``: (3, H) for ``peephole="diagonal"``, (3, H, H) for ``"full"``, rows for the gates i, f,
o. Without peepholes a state dict loads both ways with nn.LSTM's.

Precision: float32 and float64 (``model.to(dtype)``). Under ``torch.autocast`` a half-precision input
(float16, bfloat16) is computed in float32 and the outputs are float32: the core has no half-precision path.

Devices: the CPU. Tensors on a CUDA device raise ``RuntimeError``: the core's CUDA backend, which would read
them in place on the current stream, is not yet reachable from these operators.
"""

from . import functional
from .lstm import LSTM

__all__ = ["LSTM", "functional"]
