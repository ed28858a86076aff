"""bench/throughput.py runs: a --quick run on the small config prints a row of positive numbers per variant."""

import subprocess
import sys
from pathlib import Path

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
