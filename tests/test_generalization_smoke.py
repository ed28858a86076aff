"""bench/generalization.py runs: a --quick run of the JapaneseVowels part prints a table row per config."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "generalization.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("generalization", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="JapaneseVowels ships with aeon")
def test_quick_vowels_run_prints_a_row_per_config(tmp_path):
    markdown = tmp_path / "tables.md"
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--part", "vowels", "--markdown", str(markdown)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = markdown.read_text()
    assert "lstm_native threads" in report
    for name in bench_module().VOWEL_STRATEGIES:
        row = re.search(rf"^\| {re.escape(name)} \| .*? \| (\d\.\d+) ± (\d\.\d+) \|", report, re.M)
        assert row, (name, report)
        assert 0 <= float(row.group(1)) <= 1


PROJECTION_SCRIPT = SCRIPT.with_name("projection.py")


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="JapaneseVowels ships with aeon")
def test_quick_projection_run_counts_fewer_parameters(tmp_path):
    """bench/projection.py: a row per config with its parameter counts, throughput and accuracy; the projected
    LSTM(128)s count the parameters of the formula 4H(I + P + 1) + H·P + 3H (diagonal peepholes)."""
    markdown = tmp_path / "projection.md"
    run = subprocess.run([sys.executable, str(PROJECTION_SCRIPT), "--quick", "--markdown", str(markdown)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = dict(re.findall(r"^\| (LSTM\(.*?\)) \| ([\d,]+) \|", markdown.read_text(), re.M))
    params = {name: int(count.replace(",", "")) for name, count in rows.items()}
    H, I = 128, 12
    assert params["LSTM(128)"] == 4 * H * (I + H + 1) + 3 * H
    for P in (64, 32):
        assert params[f"LSTM(128, proj_size={P})"] == 4 * H * (I + P + 1) + H * P + 3 * H
