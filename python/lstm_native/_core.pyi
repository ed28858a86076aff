"""Type stubs of the native module lstm_native._core (cpp/bindings/module.cpp, cuda_bindings.cpp)."""

from typing import Any, Dict, List, Optional, Tuple, Union

from typing_extensions import TypedDict, Unpack

import numpy as np

__version__: str
with_cuda: bool
with_openmp: bool
with_model_io: bool

# (dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None)
Gradients = Tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
    Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray],
]

class ForwardOptions(TypedDict, total=False):
    """The keyword arguments that forward, cuda_forward and cuda_forward_training share besides x, W and U (with
    the CUDA functions h0 and c0 may also be CUDA arrays with __dlpack__)."""

    b: Optional[np.ndarray]  # default None
    p: Optional[np.ndarray]  # default None
    W_hr: Optional[np.ndarray]  # default None
    h0: Optional[Any]  # default None
    c0: Optional[Any]  # default None
    mask: Optional[np.ndarray]  # default None
    peephole: str  # default "diagonal"
    output_peephole_source: str  # default "current"
    zero_output_for_mask: bool  # default False
    dropout: float  # default 0.0
    recurrent_dropout: float  # default 0.0
    zoneout_h: float  # default 0.0
    zoneout_c: float  # default 0.0
    weight_drop: float  # default 0.0
    seed: int  # default 0

def cpu_supports(isa: str) -> bool: ...
def cuda_device_count() -> int: ...
# Only in a CUDA build (with_cuda True): the GPU path. Numpy arrays are copied to the device and the outputs (numpy)
# back once per call; x, h0, c0, dy, dh_n, dc_n may also be CUDA arrays with __dlpack__ (read in place).
class CudaTrainingState: ...

def cuda_forward_training(
    *, x: Any, W: np.ndarray, U: np.ndarray, **options: Unpack[ForwardOptions]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, CudaTrainingState]: ...
def cuda_backward(
    state: CudaTrainingState, *, dy: Optional[Any] = ..., dh_n: Optional[Any] = ..., dc_n: Optional[Any] = ...
) -> Gradients: ...
def cuda_forward(
    *,
    x: Any,
    W: np.ndarray,
    U: np.ndarray,
    training: bool = ...,
    dy: Optional[Any] = ...,
    dh_n: Optional[Any] = ...,
    dc_n: Optional[Any] = ...,
    repeats: int = ...,
    **options: Unpack[ForwardOptions],
) -> Union[Tuple[np.ndarray, ...], List[float]]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def max_num_threads() -> int: ...
def forward(
    *,
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    training: bool = False,
    workspace: Optional[np.ndarray] = None,
    return_sequences: bool = True,
    **options: Unpack[ForwardOptions],
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, Optional[np.ndarray]]: ...
def backward(
    *,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray] = None,
    p: Optional[np.ndarray] = None,
    W_hr: Optional[np.ndarray] = None,
    mask: Optional[np.ndarray] = None,
    dy: Optional[np.ndarray] = None,
    dh_n: Optional[np.ndarray] = None,
    dc_n: Optional[np.ndarray] = None,
    workspace: np.ndarray,
    batch: int,
    time: int,
    peephole: str = "diagonal",
    output_peephole_source: str = "current",
    zero_output_for_mask: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
    weight_drop: float = 0.0,
    seed: int = 0,
) -> Gradients: ...
def step(
    *,
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray] = None,
    p: Optional[np.ndarray] = None,
    W_hr: Optional[np.ndarray] = None,
    peephole: str = "diagonal",
    output_peephole_source: str = "current",
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray]: ...
def trace(
    *,
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray] = None,
    p: Optional[np.ndarray] = None,
    W_hr: Optional[np.ndarray] = None,
    h0: Optional[np.ndarray] = None,
    c0: Optional[np.ndarray] = None,
    mask: Optional[np.ndarray] = None,
    peephole: str = "diagonal",
    output_peephole_source: str = "current",
) -> Dict[str, np.ndarray]: ...
def philox4x32_10(counter: List[int], key: List[int]) -> List[int]: ...
def training_workspace_size(
    batch: int, time: int, input_size: int, hidden_size: int, projection_size: int = 0, zoneout: bool = False
) -> int: ...
