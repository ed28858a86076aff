"""Type stubs of the native module lstm_native._core (cpp/bindings/module.cpp)."""

from typing import Dict, List, Optional, Tuple

import numpy as np

__version__: str
with_cuda: bool
with_openmp: bool
with_model_io: bool

def cpu_supports(isa: str) -> bool: ...
def cuda_device_count() -> int: ...
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
