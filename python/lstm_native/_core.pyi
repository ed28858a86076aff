"""Type stubs of the native module lstm_native._core (cpp/bindings/module.cpp)."""

from typing import Dict, List, Optional, Tuple, Union

import numpy as np

__version__: str
with_cuda: bool
with_openmp: bool
with_model_io: bool

def cpu_supports(isa: str) -> bool: ...
def cuda_device_count() -> int: ...
# Only in a CUDA build (with_cuda True): the GPU path on host arrays, copied to the device and back once per call.
def cuda_forward(
    *,
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray] = ...,
    p: Optional[np.ndarray] = ...,
    W_hr: Optional[np.ndarray] = ...,
    h0: Optional[np.ndarray] = ...,
    c0: Optional[np.ndarray] = ...,
    mask: Optional[np.ndarray] = ...,
    peephole: str = ...,
    output_peephole_source: str = ...,
    zero_output_for_mask: bool = ...,
    training: bool = ...,
    dropout: float = ...,
    recurrent_dropout: float = ...,
    zoneout_h: float = ...,
    zoneout_c: float = ...,
    weight_drop: float = ...,
    seed: int = ...,
    dy: Optional[np.ndarray] = ...,
    dh_n: Optional[np.ndarray] = ...,
    dc_n: Optional[np.ndarray] = ...,
    repeats: int = ...,
) -> Union[Tuple[np.ndarray, ...], List[float]]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def forward(
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
    zero_output_for_mask: bool = False,
    training: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
    weight_drop: float = 0.0,
    seed: int = 0,
    workspace: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]: ...
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
) -> Tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
    Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray],
]: ...
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
