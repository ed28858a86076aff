"""bench/throughput.py and bench/torch_module.py run: a --quick run on the small config prints a row of positive
numbers per variant."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"


def test_quick_run_prints_a_row_per_variant():
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--configs", "small"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith("| small"):
            _, peephole, mode, *numbers = (cell.strip() for cell in line.strip("|").split("|"))
            rows[peephole, mode] = numbers
    assert set(rows) == {(peephole, mode) for peephole in ("None", "diagonal") for mode in ("forward", "train")}
    for (peephole, mode), (seqs, seqs_range, gflops, gflops_range, percent) in rows.items():
        values = [float(seqs), *map(float, seqs_range.split("-")), float(gflops), *map(float, gflops_range.split("-"))]
        assert all(value > 0 for value in values), (peephole, mode, values)
        assert percent.endswith("%"), (peephole, mode, percent)


TORCH_MODULE = SCRIPT.parent / "torch_module.py"


def test_torch_module_quick_run_prints_every_row_with_a_ratio():
    """bench/torch_module.py: ours against nn.LSTM, the scripted peephole cell, eager (for torch.compile) and
    keras.layers.LSTM (a Keras-on-torch subprocess), training and inference, every row measured."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    run = subprocess.run([sys.executable, str(TORCH_MODULE), "--quick", "--configs", "small"],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith("| small"):
            _, row, mode, _, ours, _, peer, ratio, _ = (cell.strip() for cell in line.strip("|").split("|"))
            rows[row, mode] = (float(ours), float(peer), float(ratio))
    assert set(rows) == {(row, mode) for row in ("plain", "diagonal", "compiled", "keras") for mode in ("train", "infer")}
    for key, (ours, peer, ratio) in rows.items():
        assert ours > 0 and peer > 0 and abs(ratio - ours / peer) <= 0.01 * ratio + 0.005, (key, ours, peer, ratio)
    assert "--quick" in run.stdout and "2 thread(s)" in run.stdout
