"""lstm_native.torch.LSTM under DistributedDataParallel: 2 CPU processes (gloo), each on half of a global batch,
compute the gradients (and after two SGD steps the parameters) that one process computes on the whole batch.
The processes run in a subprocess (tests/ddp_script.py) with a timeout, so that a hung rendezvous fails the test
instead of hanging it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import REPO

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch built without gloo", allow_module_level=True)

TOLERANCE = {"torch.float32": 1e-6, "torch.float64": 1e-10}


def test_ddp_gradients_equal_one_process_on_the_global_batch(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_script.py"), str(tmp_path / "rendezvous")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    results = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert set(results) == set(TOLERANCE)
    for dtype, measured in results.items():
        assert measured["count"] == 7, measured  # the LSTM's 4 and its peephole weights, the Linear head's 2
        assert measured["gradient_scale"] > 1e-3, measured  # gradients that could differ
        tolerance = TOLERANCE[dtype] * max(1.0, measured["gradient_scale"])
        assert measured["gradients"] <= tolerance and measured["parameters"] <= tolerance, (dtype, measured)
