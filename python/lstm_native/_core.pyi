"""Type stubs of the native module lstm_native._core (cpp/bindings/module.cpp, cuda_bindings.cpp, model_bindings.cpp)."""

from typing import Any, Dict, List, Optional, Tuple

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

class CellOptions(TypedDict, total=False):
    """The cell's keyword arguments besides W and U, which every function of the cell (forward, backward, step,
    trace, cuda_forward, cuda_backward) declares alike. step runs as forward(training=False): the dropouts
    and seed do not act, zoneout acts as its expectation. trace refuses (ValueError) the regularization
    arguments and zero_output_for_mask."""

    b: Optional[np.ndarray]  # default None
    p: Optional[np.ndarray]  # default None
    W_hr: Optional[np.ndarray]  # default None
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
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def max_num_threads() -> int: ...
def forward(
    *,
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    h0: Optional[np.ndarray] = None,
    c0: Optional[np.ndarray] = None,
    mask: Optional[np.ndarray] = None,
    training: bool = False,
    workspace: Optional[np.ndarray] = None,
    return_sequences: bool = True,
    **options: Unpack[CellOptions],
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, Optional[np.ndarray]]: ...
def backward(
    *,
    W: np.ndarray,
    U: np.ndarray,
    mask: Optional[np.ndarray] = None,
    dy: Optional[np.ndarray] = None,
    dh_n: Optional[np.ndarray] = None,
    dc_n: Optional[np.ndarray] = None,
    workspace: np.ndarray,
    batch: int,
    time: int,
    **options: Unpack[CellOptions],
) -> Gradients: ...
def step(
    *, x: np.ndarray, h: np.ndarray, c: np.ndarray, W: np.ndarray, U: np.ndarray, **options: Unpack[CellOptions]
) -> Tuple[np.ndarray, np.ndarray]: ...
def trace(
    *,
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    h0: Optional[np.ndarray] = None,
    c0: Optional[np.ndarray] = None,
    mask: Optional[np.ndarray] = None,
    **options: Unpack[CellOptions],
) -> Dict[str, np.ndarray]: ...

# Only in a CUDA build (with_cuda True): the GPU path, with forward's and backward's arguments and results. Numpy
# arrays are copied to the device and the outputs (numpy) back once per call; x, h0, c0, dy, dh_n, dc_n may also
# be CUDA arrays with __dlpack__ (read in place).
class CudaWorkspace: ...

def cuda_forward(
    *,
    x: Any,
    W: np.ndarray,
    U: np.ndarray,
    h0: Optional[Any] = None,
    c0: Optional[Any] = None,
    mask: Optional[np.ndarray] = None,
    training: bool = False,
    workspace: None = None,
    return_sequences: bool = True,
    **options: Unpack[CellOptions],
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, Optional[CudaWorkspace]]: ...
def cuda_backward(
    *,
    W: np.ndarray,
    U: np.ndarray,
    mask: Optional[np.ndarray] = None,
    dy: Optional[Any] = None,
    dh_n: Optional[Any] = None,
    dc_n: Optional[Any] = None,
    workspace: CudaWorkspace,
    batch: int,
    time: int,
    **options: Unpack[CellOptions],
) -> Gradients: ...
def philox4x32_10(counter: List[int], key: List[int]) -> List[int]: ...
def training_workspace_size(
    batch: int, time: int, input_size: int, hidden_size: int, projection_size: int = 0, zoneout: bool = False
) -> int: ...

# Only in a build with the model loader (with_model_io True): cpp/bindings/model_bindings.cpp, float32 throughout.
class Model:
    """A model read by the C++ loader (lstm_native/model.hpp)."""

    @staticmethod
    def from_bytes(data: bytes, name: str) -> Model: ...
    def predict(self, x: np.ndarray) -> np.ndarray: ...
    def stream(self, batch: int) -> Stream: ...
    def summary(self) -> str: ...

class Stream:
    """A Model run step by step, every LSTM's state kept between calls."""

    def step(self, x: np.ndarray) -> np.ndarray: ...
    def steps(self, x: np.ndarray) -> np.ndarray: ...
    def reset(self) -> None: ...
    def state(self) -> np.ndarray: ...
    def set_state(self, state: np.ndarray) -> None: ...
    @property
    def batch(self) -> int: ...
    @property
    def state_size(self) -> int: ...
    @property
    def step_input_shape(self) -> List[int]: ...
    @property
    def step_output_shape(self) -> List[int]: ...
    @property
    def sequence_output(self) -> bool: ...
