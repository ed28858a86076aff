"""The examples run to completion and do what they say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_learns_the_digits():
    done = subprocess.run([sys.executable, EXAMPLES / "quickstart.py"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"final test accuracy: ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.93, done.stdout  # chance is 0.1; the default 12 epochs reach 0.975


def test_seed_program_trains_on_japanese_vowels():
    """The seed article's section-4 program, imports changed, on real data (chance: 1/9)."""
    done = subprocess.run([sys.executable, EXAMPLES / "seed_program.py"], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    assert "Epoch 10/10" in done.stdout  # verbose=1 progress output, one block per epoch
    accuracy = float(re.search(r"validation accuracy: ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.8, done.stdout


def test_plots_example_writes_both_pictures(tmp_path):
    done = subprocess.run([sys.executable, EXAMPLES / "plots.py", "--out", tmp_path, "--epochs", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for name in ("japanese_vowels_curves.png", "japanese_vowels_gates.png"):
        assert (tmp_path / name).stat().st_size > 10_000
