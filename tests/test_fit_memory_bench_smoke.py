"""bench/fit_vs_keras.py and bench/peak_memory.py run: --quick runs print positive, finite figures."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_quick(script: str, tmp_path: Path, *extra: str) -> tuple:
    """stdout and the JSON lines of a --quick run."""
    out = tmp_path / "out.jsonl"
    run = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--threads", "1", "--json", str(out), *extra],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout, [json.loads(line) for line in out.read_text().splitlines()]


def table_rows(stdout: str, first_cell: str) -> list:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith(f"| {first_cell}")]


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None,
                    reason="needs Keras 3 and TensorFlow")
def test_fit_vs_keras_quick(tmp_path):
    stdout, records = run_quick("fit_vs_keras.py", tmp_path)
    for label in ("lstm_native", "Keras 3 / TensorFlow"):
        (row,) = table_rows(stdout, label)
        median, low_high = float(row[1]), row[2].split("-")
        assert positive(median) and all(positive(float(v)) for v in low_high), row
        assert float(low_high[0]) <= median <= float(low_high[1]), row
    fits = {r["framework"]: r for r in records if r["part"] == "fit"}
    assert set(fits) == {"ours", "keras"}
    for fit in fits.values():
        assert fit["sequences"] == 320 and len(fit["epoch_s"]) == 2
        assert all(positive(s) for s in fit["epoch_s"]) and positive(fit["seq_per_s"]["median"])
        assert math.isfinite(fit["last_epoch_logs"]["loss"]) and 0 <= fit["last_epoch_logs"]["accuracy"] <= 1
    (ratio,) = [r["ratio_ours_keras"] for r in records if r["part"] == "fit_ratio"]
    assert positive(ratio) and f"ratio ours/Keras (medians of seq/s): {ratio:.2f}x" in stdout
    (share,) = [r for r in records if r["part"] == "share"]
    assert positive(share["step_median_s"]) and positive(share["core_median_s"])
    assert math.isfinite(share["python_share"]) and share["python_share"] < 1
    assert len(share["step_s"]) == len(share["core_s"]) == 3
    assert "train_on_batch:" in stdout and "core lstm_forward(training=True) + lstm_backward:" in stdout


def test_fit_vs_keras_profile_names_the_core(tmp_path):
    stdout, _ = run_quick("fit_vs_keras.py", tmp_path, "--part", "share", "--profile")
    assert "cProfile of 3 train_on_batch calls" in stdout
    assert "lstm_backward" in stdout and "lstm_forward" in stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs PyTorch")
def test_peak_memory_quick(tmp_path):
    stdout, records = run_quick("peak_memory.py", tmp_path)
    (row,) = table_rows(stdout, "small")
    ours, theirs, ratio = float(row[1]), float(row[2]), float(row[3].split()[0])
    assert positive(ours) and positive(theirs) and positive(ratio)
    # the table prints MiB to 0.1 and the ratio to 0.01: allow exactly that rounding
    rounding = (ours / theirs) * (0.05 / ours + 0.05 / theirs) + 0.005
    assert ratio == pytest.approx(ours / theirs, abs=rounding)
    (record,) = records
    assert (record["B"], record["T"], record["I"], record["H"]) == (32, 50, 32, 64)
    for framework in ("ours", "torch"):
        for step in ("first", "second"):
            assert positive(record["peak_mib"][framework][step]["median"]), (framework, step)
    # The workspace and the returned arrays are memory the step must touch: its peak cannot be below them
    # by more than the RSS granularity, and a measure that missed them (a stale peak) would fail here.
    assert record["peak_mib"]["ours"]["first"]["median"] >= 0.9 * record["ours_analytic_mib"]
    assert positive(record["torch_saved_mib"])
