"""TerminateOnNaN."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _arguments
from ._printing import print_message
from .callback import Callback, Logs


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite (``raise_error=True``: raises RuntimeError)."""

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = _arguments.boolean("raise_error", raise_error)

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print_message(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
